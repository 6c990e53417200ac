# Convenience wrapper around CMake. The README's two commands:
#   make demo   — build, then run the bundled demo study (configs/demo.json)
#   make test   — build with warnings as errors, then run every test with ctest
JOBS ?= $(shell nproc)
BUILD ?= build
CMAKE_FLAGS ?=

.PHONY: all build test test-asan demo bench fuzz clean
all: build

# Configure once: re-running cmake on an existing tree can reorder include flags and
# force a full rebuild (cmake --build re-configures by itself when CMakeLists change).
build:
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DSRLM_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# AddressSanitizer + UndefinedBehaviorSanitizer build; runs every test not labelled slow.
# (-Werror is checked by `make test`; -O0 warnings differ and are not fatal here.)
test-asan:
	@test -f build-asan/CMakeCache.txt || cmake -S . -B build-asan -DSRLM_WERROR=OFF -DSRLM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j$(JOBS) -LE 'slow|integration'

demo: build
	$(BUILD)/srlm study configs/demo.json

bench: build
	cmake --build $(BUILD) --target bench -j$(JOBS)

# libFuzzer (clang): FUZZ_TARGET=fuzz_math for FUZZ_SECONDS (default 600); new inputs go to
# build-fuzz/corpus-NAME, the committed seeds in tests/fuzz/corpus/NAME are read only.
FUZZ_TARGET ?= fuzz_math
FUZZ_SECONDS ?= 600
fuzz:
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DSRLM_FUZZ=ON -DSRLM_NATIVE=OFF >/dev/null
	cmake --build build-fuzz -j$(JOBS) --target $(FUZZ_TARGET)
	mkdir -p build-fuzz/corpus-$(FUZZ_TARGET:fuzz_%=%)
	build-fuzz/$(FUZZ_TARGET) -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	  build-fuzz/corpus-$(FUZZ_TARGET:fuzz_%=%) tests/fuzz/corpus/$(FUZZ_TARGET:fuzz_%=%)

clean:
	rm -rf build build-asan build-fuzz
