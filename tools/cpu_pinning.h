// CPU placement for the benchmarking tools (`sluice perf`, bench/log_bench): how many CPUs are
// online, and pinning the calling thread to one of them. Pinned producer and consumer keep
// their caches and their distance fixed for a whole run.
//
// bench/peers/ has its own copy in peer_common.h: the peer programs depend on nothing of
// Sluice's, so that each measures its system alone.
#pragma once

namespace sluice::tools {

// The number of online CPUs (at least 1).
int cpu_count();

// Pins the calling thread to CPU `cpu % cpu_count()`. A refusal (e.g. a cpuset without that
// CPU) leaves the thread where it was: a benchmark then runs unpinned rather than not at all.
void pin_to_cpu(int cpu);

}  // namespace sluice::tools
