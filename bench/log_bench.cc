// Micro-benchmarks of the partition log, and the physical references they are judged by, in
// one run:
//
//   Ref/CacheLinePingPong/...  two CPUs bouncing one cache line: the floor for one-way latency
//   Ref/Memcpy/...             memcpy bandwidth into a cache-sized ring and into a large buffer
//   Ref/Clock/...              clock costs (what a per-record timestamp costs)
//   Ref/Crc32c/...             CRC-32C of one buffer: the inline path, our streams, ISA-L
//   Ref/MapSegment/...         mapping a new segment, pre-faulted or not, and first writes
//   Throughput/...             producer thread(s) on CPU 0, one consumer thread on CPU 1 that
//                              reads every record concurrently; items/s and bytes/s
//   ProducerOnly/... ConsumerOnly/...   each half alone on one thread, for attribution
//   Latency/...                two processes (fork) ping-pong over two partitions: A appends to
//                              P1, B spins on P1 and appends to P2, A reads P2; one-way = half
//                              the round trip; p50/p99/p99.9/max as counters. "append" sends
//                              with append(), "claim" with claim() + copy + commit()
//
// Names spell out what varies: path (batchN = claim_batch of N records, append_batchN =
// append_batch of N copied records, append = append(),
// claim = claim/commit of one record), ts (the appender's TimestampMode: per_batch, wall,
// coarse; given = the caller passes RecordMeta::timestamp_ns), value size, producers,
// segments, and consume (touch = the consumer reads each value's first 8 bytes; copy = it
// copies the value out). Segments (S MiB x R retained):
//   recycled-spare    the consumer's handle has LogOptions{retain_segments = R,
//                     recycle_segments = true} and calls prepare_after_roll() after each
//                     poll (prepare_next() after each roll), which recycles the oldest segment
//                     into spare.seg; the producers' handles have no retention, so a roll that
//                     finds no spare (the consumer polls up to 4096 records between two looks)
//                     creates a file.
//   recycled-inplace  every handle has {R, recycle}; nobody calls prepare_next(): each roll
//                     recycles the oldest segment in place.
//   recycled-both     every handle has {R, recycle} and the consumer calls prepare_next(): the
//                     two recycling paths race (see roll_failed).
//   fresh             the consumer's handle has {R, recycle_segments = false}: prepare_next()
//                     deletes old segments and creates each spare anew (fresh pages).
//
// Flow control: the benchmark adds the one an application with bounded retention needs (the
// log's own roll_gate works per segment and is not used here): a producer does not run more
// than (retain - 2) segments ahead of the consumer's published position (it spins, then
// yields). Without it retention would take segments a slow consumer has not read (the
// consumer's pin keeps such a file from being reused, so rolls would create new files).
// "idle:backoffN" variants: a consumer that has caught up pauses N µs instead of spinning on the
// next frame.
//
// Latency: "sampled" times each round trip (p50/p90/p99/p99.9/max/mean counters); "loop" has
// no per-sample timer and reports only the loop's mean (one_way_ns), like the "loop"
// ping-pong reference. wait:poll-spin spins on poll() instead of LogReader::wait().
//
// Pinning: producers on CPU 0, the consumer (or the echo process) on CPU 1. With 2 producers
// the two share CPU 0 (the machine has 2 CPUs).
//
// Timing: Throughput uses manual time, from the first record of the timed part until the
// consumer has read the last one (the drain is in the last iteration), so items_per_second is
// what the consumer received. Latency counters come from per-round-trip samples taken with
// rdtscp (calibrated against steady_clock at start-up); the sampled ping-pong reference is
// measured the same way, so the two compare directly.
//
// Files: log_bench_refs.cc, log_bench_throughput.cc, log_bench_latency.cc (each with the
// registration of its benchmarks), log_bench_util.h (what they share).
//
// Usage: build/bench/log_bench [--benchmark_filter=REGEX]. SLUICE_DATA_DIR (default
// /dev/shm/sluice) holds the temporary partitions; each benchmark removes its own.
#include <benchmark/benchmark.h>

#include "bench/log_bench_util.h"

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  log_bench::calibrate_tsc();
  log_bench::register_reference_benchmarks();
  log_bench::register_throughput_benchmarks();
  log_bench::register_latency_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
