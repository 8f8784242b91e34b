# gmon: `make demo` runs gmon on the bundled demo program; `make test` runs every test.
SWIFT ?= swift
export GMON_GO_CACHE ?= /var/cache/gmon/go
export GOCACHE ?= /var/cache/gmon/gocache

.PHONY: all deps fixtures build release test demo bench fuzz clean

all: build

deps:
	@bash scripts/install-deps.sh

fixtures: deps
	@bash scripts/build-fixtures.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

test: fixtures
	$(SWIFT) build --build-tests
	$(SWIFT) test
	@bash scripts/fuzz.sh smoke

demo: fixtures release
	@bash scripts/demo.sh

# Benchmarks are not tests: figures go to the terminal and to .bench/.
bench: fixtures release
	@mkdir -p .bench
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark --format markdown | tee ../.bench/micro.md

fuzz: fixtures
	@bash scripts/fuzz.sh long

clean:
	rm -rf .build .fixtures .fuzz .bench
