#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz/ and runs the Kafka request decoder
# fuzzer for a bounded time, from a seed corpus of valid requests that the fuzzer itself writes
# (SLUICE_FUZZ_SEEDS_DIR mode), so no binary corpus lives in the repository.
#
# Usage: scripts/fuzz.sh [seconds]   (default 60). Findings (crash-*, leak-*, timeout-*) are left
# in build-fuzz/findings/; the exit status is non-zero when the fuzzer found one.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-fuzz"
jobs="${SLUICE_FUZZ_BUILD_JOBS:-2}"

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSLUICE_BUILD_FUZZ=ON -DSLUICE_BUILD_TESTS=OFF -DSLUICE_BUILD_BENCH=OFF \
  -DSLUICE_BUILD_TOOLS=OFF >/dev/null
ninja -C "$build" -j "$jobs" kafka_request_fuzz

fuzzer="$build/tests/fuzz/kafka_request_fuzz"
corpus="$build/corpus/kafka_request"
seeds="$build/seeds/kafka_request"
findings="$build/findings"
rm -rf "$seeds"
mkdir -p "$corpus" "$seeds" "$findings"
SLUICE_FUZZ_SEEDS_DIR="$seeds" "$fuzzer"

# The corpus grows across runs in build-fuzz/; the seeds are regenerated every time.
"$fuzzer" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$findings/" -print_final_stats=1 "$corpus" "$seeds"
