#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/) with clang into build-fuzz/ and runs
# each of them. See docs/fuzzing.md.
#
#   scripts/fuzz.sh smoke            every target FUZZ_SMOKE_SECONDS (15) s from its seed
#                                    corpus, copied to a temp dir (make test, make fuzz-smoke)
#   scripts/fuzz.sh long [seconds]   every target `seconds` (600) s; the corpus grows in
#                                    build-fuzz/corpus/<target> and is reused by the next run
#   scripts/fuzz.sh build            configure and build only
#
# FUZZ_TARGETS="fuzz_point_parser ..." restricts the targets. Exits non-zero when
# any target crashes, leaks, trips ASan/UBSan, times out (-timeout) or exceeds the
# memory limits; the input is kept in build-fuzz/artifacts/ (replay it with
# `build-fuzz/tests/fuzz/<target> <file>`). The repository is never modified.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-smoke}
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
TARGETS=(${FUZZ_TARGETS:-fuzz_point_parser fuzz_query_params fuzz_http_request})
SMOKE_SECONDS=${FUZZ_SMOKE_SECONDS:-15}
LONG_SECONDS=${2:-600}
# Per input: 10 s is a hang; memory: RSS and any single allocation are bounded.
LIMITS=(-timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=512)

case "$MODE" in
  smoke|long|build) ;;
  *) echo "usage: scripts/fuzz.sh smoke | long [seconds] | build" >&2; exit 2 ;;
esac

# clang and the libFuzzer runtime (install-deps.sh installs without recommends,
# and clang only recommends libclang-rt).
need=()
command -v clang++ >/dev/null 2>&1 || need+=(clang)
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || need+=(libclang-rt-dev)
command -v llvm-symbolizer >/dev/null 2>&1 || need+=(llvm)
if [ ${#need[@]} -gt 0 ]; then
  echo "fuzz: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DRM_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
ninja -C "$BUILD_DIR" -j "$(nproc)" "${TARGETS[@]}"
[ "$MODE" = build ] && exit 0

# Every sanitizer report is fatal and symbolized.
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:symbolize=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
command -v llvm-symbolizer >/dev/null 2>&1 && export ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer)

mkdir -p "$BUILD_DIR/artifacts" "$BUILD_DIR/logs"
artifacts=$(cd "$BUILD_DIR/artifacts" && pwd)
if [ "$MODE" = smoke ]; then
  seconds=$SMOKE_SECONDS
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
else
  seconds=$LONG_SECONDS
  work="$BUILD_DIR/corpus"
fi

failed=()
for t in "${TARGETS[@]}"; do
  corpus="$work/$t"
  mkdir -p "$corpus"
  cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  log="$BUILD_DIR/logs/$t.$MODE.log"
  start=$(date +%s)
  if "$BUILD_DIR/tests/fuzz/$t" "${LIMITS[@]}" -max_total_time="$seconds" -print_final_stats=1 \
       -artifact_prefix="$artifacts/$t-" "$corpus" >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
    echo "fuzz: $t ok: $runs inputs in $(( $(date +%s) - start )) s, coverage $cov, corpus $(ls "$corpus" | wc -l) (log $log)"
  else
    echo "fuzz: $t FAILED (log $log):" >&2
    grep -E 'ERROR|runtime error|SUMMARY|Test unit written|deadly signal|out-of-memory|timeout' "$log" | head -20 >&2 || true
    tail -40 "$log" >&2
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}; inputs in $artifacts" >&2
  exit 1
fi
