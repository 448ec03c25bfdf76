# RaftMetrics: the short commands. Each installs what is missing first.
#   make run    build and start the embedded default cluster (control :8080, workers :8081, :8082)
#   make test   build and run every test (unit + integration), then the same suite under
#               ASan + UBSan (build-asan/), then the fuzz smoke run (ASAN_SUITE=0 / FUZZ_SMOKE=0 skip them)
#   make build  build only
#   make bench  the side-by-side benchmark (bench/compare.sh)
#   make asan   build and test under AddressSanitizer + UBSan (build-asan/)
#   make fuzz-smoke  the libFuzzer targets, 15 s each (build-fuzz/, clang; docs/fuzzing.md)
#   make fuzz   the libFuzzer targets, FUZZ_SECONDS (600) s each
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
FUZZ_SMOKE ?= 1
ASAN_SUITE ?= 1
FUZZ_SECONDS ?= 600

.PHONY: deps build run test unit integration bench asan fuzz-smoke fuzz format clean

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja: CMakeLists.txt | deps
	@cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS) >/dev/null

build: deps $(BUILD)/build.ninja
	@ninja -C $(BUILD) -j $(JOBS)

run: build
	@$(BUILD)/raftmetrics local

test: build
	@cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 300
	@if [ "$(ASAN_SUITE)" = 1 ]; then $(MAKE) --no-print-directory asan; fi
	@if [ "$(FUZZ_SMOKE)" = 1 ]; then scripts/fuzz.sh smoke; fi

unit: build
	@cd $(BUILD) && ctest --output-on-failure -L unit

integration: build
	@cd $(BUILD) && ctest --output-on-failure -L integration

bench: deps
	@WITH_BENCH=1 scripts/install-deps.sh
	@bench/compare.sh

# Any sanitizer report aborts the process, so the test that drove it fails.
# verify_asan_link_order=0: the integration tests start nodes under stdbuf (LD_PRELOAD).
asan: export ASAN_OPTIONS = detect_leaks=0:verify_asan_link_order=0:abort_on_error=1
asan: export UBSAN_OPTIONS = halt_on_error=1:print_stacktrace=1
asan:
	@echo "== the test suite again, under AddressSanitizer + UBSan (build-asan/)"
	@$(MAKE) --no-print-directory test BUILD=build-asan FUZZ_SMOKE=0 ASAN_SUITE=0 CMAKE_FLAGS="-DRM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"

# libFuzzer + ASan + UBSan (clang, build-fuzz/): any crash, leak, report or hang fails.
fuzz-smoke: deps
	@scripts/fuzz.sh smoke

fuzz: deps
	@scripts/fuzz.sh long $(FUZZ_SECONDS)

format:
	@find src tests bench -name '*.cc' -o -name '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) build-asan build-fuzz
