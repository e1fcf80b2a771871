#!/usr/bin/env bash
# Installs every Debian package Sluice needs to build, test and benchmark.
# Idempotent: runs apt-get update at most once, and only when something is missing.
# Usage: scripts/install-deps.sh            (build + test dependencies)
#        SLUICE_PEERS=1 scripts/install-deps.sh   (also the peer systems for bench/compare)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libboost-dev                 # Interprocess (mapped files), Asio
  catch2                       # v2, the test framework
  libbenchmark-dev             # Google Benchmark
  libmimalloc-dev              # broker and gateway heap
  libconcurrentqueue-dev       # moodycamel, in-process hand-off only
  libfmt-dev libspdlog-dev libcli11-dev nlohmann-json3-dev
  libisal-dev                  # Intel ISA-L: CRC-32C of frames and Kafka batches
  zlib1g-dev libsnappy-dev liblz4-dev libzstd-dev   # Kafka batch compression codecs
  librdkafka-dev kcat          # real Kafka clients: gateway tests, sluice perf --kafka
  python3-kafka                # kafka-python, a pure-Python Kafka client: a gateway test
  golang-go golang-github-shopify-sarama-dev   # Sarama, the Go Kafka client: a gateway test
  clang libclang-rt-14-dev     # libFuzzer for the Kafka request decoder
)
# Node.js + npm run the kafkajs gateway test (versions pinned in its package-lock.json). A
# machine that has them already (e.g. from NodeSource, whose nodejs bundles npm and conflicts
# with Debian's npm package) keeps its own.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi
if [[ "${SLUICE_PEERS:-0}" == 1 ]]; then
  packages+=(libzmq3-dev gnuplot-nox iceoryx libiceoryx-posh-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}; run this script as root (or install them)" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
