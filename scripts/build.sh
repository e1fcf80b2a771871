#!/usr/bin/env bash
# Configures and builds one flavour of Sluice.
# Usage: scripts/build.sh [release|asan|tsan] [ninja targets...]
#   release: everything (build/); asan: ASan + UBSan, no benchmarks (build-asan/);
#   tsan: TSan, the libraries and the tests of shared-memory concurrency only (build-tsan/).
# The sanitizer builds are at -Og -g1: line tables for the reports, and the least compile time
# that still optimizes. On 2 cores the ASan build took 11 min at -O1 -g1 and 7 at -Og -g1, the
# TSan build 4.7 min at -O2 -g and 2.6 at -Og -g1; the tests ran as fast (ASan 132 s against
# 141 s at -O1). Compilation, not the tests, is most of CI's time.
# Unity builds (CMake's UNITY_BUILD, 8 files a unit) by default: every file of a unit shares the
# parse of the headers and the code of the inline functions they use. On 2 cores, built back
# to back, file by file against in units: Release 421 s of wall time against 270 s (user CPU
# 731 s against 470 s), ASan 529 s against 338 s (908 against 578); TSan (its three test
# targets) took 113 s in units. SLUICE_UNITY_BUILD=OFF builds file by file, for quicker rebuilds
# after editing one file. So that any grouping of a target's files compiles, names at
# namespace scope in its .cc files (anonymous namespaces included) must not collide, and
# using-declarations there must not change what another file's names mean.
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
shift || true
sanitizer_flags="-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-Og -g1 -DNDEBUG"
case "$flavour" in
  release) dir=build;      args=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan)    dir=build-asan; args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "${sanitizer_flags}" -DSLUICE_SANITIZE=address -DSLUICE_BUILD_BENCH=OFF) ;;
  tsan)    dir=build-tsan; args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "${sanitizer_flags}" -DSLUICE_SANITIZE=thread -DSLUICE_BUILD_BENCH=OFF -DSLUICE_BUILD_TOOLS=OFF) ;;
  *) echo "build.sh: unknown flavour '$flavour' (release, asan or tsan)" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja "${args[@]}" -DCMAKE_UNITY_BUILD="${SLUICE_UNITY_BUILD:-ON}" \
  -DCMAKE_UNITY_BUILD_BATCH_SIZE=8 >/dev/null
ninja -C "$dir" "$@"
