# ftune: a thin wrapper around CMake and CTest. See README.md.
#
#   make / make build   Release build in build/ (binary: build/ftune)
#   make test           install deps, build build/ and build-asan/, run all tests
#   make demo           install deps, build, run scripts/demo.sh
#   make demo-text      install deps, build, run scripts/demo-text.sh (needs npm's registry)
#   make bench          run bench/run.sh
#   make format         clang-format -i the C sources
#   make lint           format check, cppcheck, no-MPI-in-core check
#   make clean          remove build/ and build-asan/

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE ?= cmake
CTEST ?= ctest
CLANG_FORMAT ?= clang-format
LINT = tests/integration

# The sanitizer run: unit tests only (no MPI runtime), leaks checked. tests/lsan.supp explains
# the suppressions (they matter only for processes that start MPI).
ASAN_OPTS = detect_leaks=1:halt_on_error=1:strict_string_checks=1:check_initialization_order=1
ASAN_OPTS := $(ASAN_OPTS):detect_stack_use_after_return=1
SAN_ENV = ASAN_OPTIONS=$(ASAN_OPTS) UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
          LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp

.PHONY: all build build-asan deps test demo demo-text bench format lint clean

all: build

deps:
	@bash scripts/install-deps.sh --with-optional

build/CMakeCache.txt:
	$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=Release

build-asan/CMakeCache.txt:
	$(CMAKE) -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DFTUNE_SANITIZE=ON

build: build/CMakeCache.txt
	$(CMAKE) --build build -j $(JOBS)

build-asan: build-asan/CMakeCache.txt
	$(CMAKE) --build build-asan -j $(JOBS)

# Both suites run even when the first fails, so one CI run shows all failures.
test: deps
	$(MAKE) build build-asan
	@rc=0; \
	echo "== all tests (build/)"; \
	(cd build && $(CTEST) --output-on-failure --no-tests=error -j 2) || rc=1; \
	echo "== unit tests and single-process integration tests under ASan/UBSan/LSan (build-asan/)"; \
	(cd build-asan && $(SAN_ENV) $(CTEST) --output-on-failure --no-tests=error -j 2 -L 'unit|asan') || rc=1; \
	exit $$rc

demo: deps
	$(MAKE) build
	bash scripts/demo.sh

demo-text: deps
	$(MAKE) build
	bash scripts/demo-text.sh

bench: build
	@if [ -f bench/run.sh ]; then bash bench/run.sh; \
	else echo "make bench: not available yet (bench/run.sh does not exist)"; fi

format:
	find src mpi include tests -type f \( -name '*.c' -o -name '*.h' \) \
	    -exec $(CLANG_FORMAT) -i {} +

lint:
	CLANG_FORMAT=$(CLANG_FORMAT) bash $(LINT)/lint_format.sh "" $(CURDIR)
	bash $(LINT)/lint_cppcheck.sh "" $(CURDIR)
	bash $(LINT)/lint_no_mpi_in_core.sh "" $(CURDIR)

clean:
	rm -rf build build-asan
