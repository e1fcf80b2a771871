#!/usr/bin/env bash
# Configures and builds one flavour of Sluice.
# Usage: scripts/build.sh [release|asan|tsan] [ninja targets...]
#   release: everything (build/); asan: ASan + UBSan, no benchmarks (build-asan/), at -O1 -g1
#   (line tables for the reports; half the build time of -O2 -g, which kept CI near 30 min);
#   tsan: TSan, the libraries and the tests of shared-memory concurrency only (build-tsan/).
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
shift || true
case "$flavour" in
  release) dir=build;      args=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan)    dir=build-asan; args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" -DSLUICE_SANITIZE=address -DSLUICE_BUILD_BENCH=OFF) ;;
  tsan)    dir=build-tsan; args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_SANITIZE=thread -DSLUICE_BUILD_BENCH=OFF -DSLUICE_BUILD_TOOLS=OFF) ;;
  *) echo "build.sh: unknown flavour '$flavour' (release, asan or tsan)" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja "${args[@]}" >/dev/null
ninja -C "$dir" "$@"
