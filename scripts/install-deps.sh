#!/usr/bin/env bash
# Installs every Debian package RaftMetrics needs to build, test and benchmark,
# then fetches the pinned DuckDB. Idempotent and quick when everything is present:
# apt is only called for packages that are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Why each package is here: see README.md, "Dependencies".
PACKAGES=(
  build-essential cmake ninja-build pkg-config git curl ca-certificates
  nodejs npm                       # npm fetches the pinned DuckDB build
  libboost-dev                     # Asio + Beast: HTTP server and client
  libprotobuf-dev protobuf-compiler # wire formats (.proto is the contract)
  libspdlog-dev libfmt-dev         # logging
  nlohmann-json3-dev               # JSON responses and small requests
  libsimdjson-dev                  # JSON parsing on the ingest hot path
  libcli11-dev                     # command line
  libxxhash-dev                    # stable partition hash (xxHash3)
  libgtest-dev libgmock-dev        # unit tests
  libbenchmark-dev                 # micro benchmarks
  python3                          # integration tests drive real processes
  libuv1-dev liblz4-dev            # raft 0.22.1 (consensus) runs on libuv
  autoconf automake libtool dpkg-dev perl  # build raft from Debian's source package
  debian-archive-keyring           # verifies trixie's source index (scripts/fetch-raft.sh)
  clang libclang-rt-dev llvm       # libFuzzer targets (scripts/fuzz.sh), symbolized reports
)
if [ "${WITH_BENCH:-0}" = 1 ]; then
  PACKAGES+=(victoria-metrics)     # peer for bench/compare.sh
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from elsewhere (nodesource, nvm): accept a working npm on PATH.
if command -v npm >/dev/null 2>&1; then
  keep=(); for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || keep+=("$p"); done
  missing=("${keep[@]}")
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

scripts/fetch-duckdb.sh
scripts/fetch-raft.sh
