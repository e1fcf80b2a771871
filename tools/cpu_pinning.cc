#include "tools/cpu_pinning.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cstddef>

namespace sluice::tools {

int cpu_count() {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<std::size_t>(cpu % cpu_count()), &set);
  (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

}  // namespace sluice::tools
