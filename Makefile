# gmon: `make demo` runs gmon on the bundled demo program; `make test` runs every test.
SWIFT ?= swift
export GMON_GO_CACHE ?= /var/cache/gmon/go
export GOCACHE ?= /var/cache/gmon/gocache

.PHONY: all deps fixtures build release floors test test-kernels demo bench fuzz dist clean

all: build

deps:
	@bash scripts/install-deps.sh

fixtures: deps
	@bash scripts/build-fixtures.sh

build: deps
	$(SWIFT) build

# The Swift runtime and Foundation linked in: their shared objects' symbol tables and
# relocations cost 5 MB of gmon's RSS (31 vs 37 MB idle, make bench measures it).
release: deps
	$(SWIFT) build -c release --static-swift-stdlib --product gmon

# A self-contained gmon (only glibc's libraries dynamic) and a .deb with a systemd unit, in dist/.
dist: deps
	@bash scripts/dist.sh

# make bench's floors, a tool beside gmon (not part of it).
floors: deps
	$(SWIFT) build -c release --static-swift-stdlib --product gmon-floors

# The bench harness runs once, tiny, so it cannot rot (it times nothing that is checked);
# swift test runs last so its closing line is the run's verdict.
test: fixtures
	$(SWIFT) build --build-tests
	@bash scripts/fuzz.sh smoke
	@bash scripts/bench.sh --tiny
	@bash scripts/dist.sh && bash scripts/check-dist.sh
	@GMON_VM_HOST=0 KERNELS=6.1 bash scripts/vm/test-kernels.sh
	$(SWIFT) test

# gmon's end-to-end core on Debian's 6.1 and 6.12 kernels, generic and PREEMPT_RT, each in a
# VM, and on this machine's kernel (KERNELS="6.1.0-57-rt-amd64" for one).
test-kernels: fixtures release
	@bash scripts/dist.sh
	@bash scripts/vm/test-kernels.sh

demo: fixtures release
	@bash scripts/demo.sh

# Benchmarks are not tests: figures go to the terminal and to .bench/.
bench: fixtures release floors
	@mkdir -p .bench
	bash -o pipefail -c 'bash scripts/bench.sh | tee .bench/overhead.txt'
	cd Benchmarks && bash -o pipefail -c '$(SWIFT) package --allow-writing-to-package-directory benchmark --format markdown | tee ../.bench/micro.md'

fuzz: fixtures
	@bash scripts/fuzz.sh long

clean:
	rm -rf .build .fixtures .fuzz .bench dist
