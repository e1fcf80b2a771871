#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz/ and runs each (the Kafka request
# decoder, the record-batch decoder) for a bounded time, from seeds of valid inputs that each
# fuzzer writes itself (SLUICE_FUZZ_SEEDS_DIR mode), so no binary corpus lives in the repository.
#
# Usage: scripts/fuzz.sh [seconds]   (default 60, per target). Findings (crash-*, leak-*,
# timeout-*) are left in build-fuzz/findings/TARGET/; the exit status is non-zero when a fuzzer
# found one.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-fuzz"
jobs="${SLUICE_FUZZ_BUILD_JOBS:-2}"

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSLUICE_BUILD_FUZZ=ON -DSLUICE_BUILD_TESTS=OFF -DSLUICE_BUILD_BENCH=OFF \
  -DSLUICE_BUILD_TOOLS=OFF >/dev/null
ninja -C "$build" -j "$jobs" kafka_request_fuzz kafka_records_fuzz

# Each target: seeds regenerated every time; the corpus grows across runs in build-fuzz/.
status=0
for target in kafka_request_fuzz kafka_records_fuzz; do
  fuzzer="$build/tests/fuzz/$target"
  corpus="$build/corpus/$target"
  seeds="$build/seeds/$target"
  findings="$build/findings/$target"
  rm -rf "$seeds"
  mkdir -p "$corpus" "$seeds" "$findings"
  SLUICE_FUZZ_SEEDS_DIR="$seeds" "$fuzzer"
  echo "== $target: ${seconds} s"
  "$fuzzer" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$findings/" -print_final_stats=1 "$corpus" "$seeds" 2>&1 | tail -40 ||
    status=1
done
exit $status
