// How `sluice perf` prints numbers, shared by the local run (perf_command.cc) and the Kafka
// run (perf_kafka.cc), so that both print the same way.
#pragma once

#include <cstdint>
#include <string>

namespace sluice::tools {

// 1234567 -> "1,234,567".
std::string group_digits(std::int64_t v);
// 3 significant digits with a unit: 812 ns, 1.23 µs, 45.6 ms, 2.00 s.
std::string format_ns(double ns);
// "1.23 M", "512": the caller appends what is counted.
std::string format_rate(double per_s);

}  // namespace sluice::tools
