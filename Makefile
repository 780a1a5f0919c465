# Thin wrapper over configure + meson/ninja: build, demo, check, install.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz

.PHONY: all deps demo check check-unit check-iotests check-interop check-sanitizers \
        install clean bench fuzz

all: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	./configure --builddir=$(BUILD)

demo: all
	@scripts/demo.sh $(BUILD)

check: all
	@scripts/check-all $(BUILD)

check-unit: all
	@scripts/check-all --suites=unit $(BUILD)

check-iotests: all
	@scripts/check-all --suites=iotests $(BUILD)

check-interop: all
	@scripts/check-all --suites=interop $(BUILD)

$(ASAN_BUILD)/build.ninja:
	./configure --builddir=$(ASAN_BUILD) --enable-sanitizers --enable-debug

# Huge allocations return NULL (handled) instead of aborting, as without ASan.
SAN_ENV = ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1} \
          UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

check-sanitizers: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	@$(SAN_ENV) scripts/check-all --suites=unit,iotests $(ASAN_BUILD)

# libFuzzer targets (clang + ASan/UBSan): $(FUZZ_BUILD)/tests/fuzz/fuzz-{qcow2,opts}
$(FUZZ_BUILD)/build.ninja:
	./configure --builddir=$(FUZZ_BUILD) --cc=clang --enable-fuzzing --enable-sanitizers \
	    --enable-debug

fuzz:
	@scripts/install-deps --fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) tests/fuzz/fuzz-qcow2 tests/fuzz/fuzz-opts tests/fuzz/fuzz-qmp

bench: all
	@bench/run $(BUILD)

install: all
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
