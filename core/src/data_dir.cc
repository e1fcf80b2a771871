#include <cstdlib>
#include <string>

#include "sluice/types.h"

namespace sluice {

std::string default_data_dir() {
  const char* env = std::getenv("SLUICE_DATA_DIR");
  return env != nullptr && *env != '\0' ? env : "/dev/shm/sluice";
}

}  // namespace sluice
