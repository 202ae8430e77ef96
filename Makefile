# hora - top-level entry points.  The real build is CMake (CMakeLists.txt).
#   make        build build/horad and build/hora
#   make run    install what is missing, build, start one node
#   make test   install what is missing, build (plain and ASan/UBSan), run every test
#   make bench  install what is missing (with beanstalkd and Redis), build, run the benchmarks
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 20
CMAKE_FLAGS ?=

.PHONY: all deps bench-deps build asan fuzz test unit-test bench run clean

all: build

deps:
	@scripts/install-deps.sh

bench-deps:
	@scripts/install-deps.sh --bench

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

asan:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DHORA_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

fuzz:
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DHORA_FUZZ=ON -DHORA_SANITIZE=ON -DHORA_SERVER=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)

test: deps build asan fuzz
	@echo "== tests (plain build)"
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@echo "== tests (AddressSanitizer + UndefinedBehaviorSanitizer)"
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)
	@echo "== fuzzing, $(FUZZ_SECONDS)s per target"
	@tests/fuzz/run.sh $(FUZZ_BUILD)/fuzz $(FUZZ_SECONDS)

bench: bench-deps build
	@bench/run.sh $(BUILD)

run: deps build
	@echo "hora: starting one node (data in ./hora-data, API on http://127.0.0.1:7070)"
	@$(BUILD)/horad

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
