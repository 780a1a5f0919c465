# Thin wrapper over configure + meson/ninja: build, demo, check, install.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz

.PHONY: all deps demo check check-quick check-unit check-iotests check-interop \
        check-upstream check-sanitizers install clean bench fuzz

all: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	./configure --builddir=$(BUILD)

demo: all
	@scripts/demo.sh $(BUILD)

# Every suite, QEMU's own iotests (the conformance gate) included.
check: all
	@scripts/check-all $(BUILD)

# Every suite but QEMU's own iotests.
check-quick: all
	@scripts/check-all --suites=unit,iotests,interop $(BUILD)

check-unit: all
	@scripts/check-all --suites=unit $(BUILD)

check-iotests: all
	@scripts/check-all --suites=iotests $(BUILD)

check-interop: all
	@scripts/check-all --suites=interop $(BUILD)

# QEMU 7.2's own iotests with our binaries, against tests/upstream/known-failures.
# ORACLE=1 runs them with Debian's binaries only; TESTS="001 244" picks tests.
check-upstream: all
	@scripts/check-all --suites=upstream $(if $(ORACLE),--oracle) \
	    $(if $(TESTS),--tests="$(TESTS)") $(BUILD)

$(ASAN_BUILD)/build.ninja:
	./configure --builddir=$(ASAN_BUILD) --enable-sanitizers --enable-debug

# Huge allocations return NULL (handled) instead of aborting, as without ASan.
SAN_ENV = ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1} \
          UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

check-sanitizers: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	@$(SAN_ENV) scripts/check-all --suites=unit,iotests $(ASAN_BUILD)

# libFuzzer targets (clang + ASan/UBSan): $(FUZZ_BUILD)/tests/fuzz/fuzz-NAME, one per
# seed corpus folder tests/fuzz/corpus/NAME
FUZZ_TARGETS = $(notdir $(wildcard tests/fuzz/corpus/*))
$(FUZZ_BUILD)/build.ninja:
	./configure --builddir=$(FUZZ_BUILD) --cc=clang --enable-fuzzing --enable-sanitizers \
	    --enable-debug

fuzz:
	@scripts/install-deps --fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) $(patsubst %,tests/fuzz/fuzz-%,$(FUZZ_TARGETS))

bench: all
	@bench/run $(BUILD)

install: all
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
