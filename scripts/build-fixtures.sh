#!/usr/bin/env bash
# Builds the Go fixtures with every toolchain of the matrix, in three modes
# (normal, stripped, stripped PIE), plus one externally linked static-pie build.
# Output: $OUT/<version>/<program>.<mode>; rebuilt only when sources change.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${GMON_FIXTURES:-$PWD/.fixtures}"
GO_CACHE="${GMON_GO_CACHE:-/var/cache/gmon/go}"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local GOPROXY=off GOCACHE="${GOCACHE:-/var/cache/gmon/gocache}"
stamp=$(cat testdata/fixtures/*/*.go testdata/fixtures/*/go.mod testdata/demo/*.go testdata/demo/go.mod scripts/build-fixtures.sh | sha1sum | cut -c1-12)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$stamp" ]; then exit 0; fi
rm -rf "$OUT"; mkdir -p "$OUT"

toolchains=("1.19:/usr/lib/go-1.19/bin/go")
for v in 1.21.13 1.22.10 1.23.9 1.24.11 1.25.5 1.26.6 1.27.3; do toolchains+=("$v:$GO_CACHE/$v/bin/go"); done
printf '%s\n' "${toolchains[@]}" > "$OUT/toolchains"

for tc in "${toolchains[@]}"; do
  v=${tc%%:*}; go=${tc#*:}
  mkdir -p "$OUT/$v"
  for prog in goroutines blocked; do
    src=testdata/fixtures/$prog
    (cd "$src" && CGO_ENABLED=0 "$go" build -o "$OUT/$v/$prog.normal" . \
      && CGO_ENABLED=0 "$go" build -ldflags='-s -w' -o "$OUT/$v/$prog.stripped" . \
      && CGO_ENABLED=0 "$go" build -buildmode=pie -ldflags='-s -w' -o "$OUT/$v/$prog.pie" .)
  done
  echo "fixtures: Go $v"
done
# Externally linked static PIE (cgo linker path): Go's tables have no section names of their own there.
(cd testdata/fixtures/goroutines && CGO_ENABLED=1 "$GO_CACHE/1.25.5/bin/go" build -buildmode=pie \
  -ldflags='-s -w -linkmode=external -extldflags=-static-pie' -o "$OUT/1.25.5/goroutines.static-pie" .)
# Race-detector builds (cgo): every function calls runtime.racefuncenter first, wrappers included.
for v in 1.21.13 1.25.5 1.27.3; do
  (cd testdata/fixtures/goroutines && CGO_ENABLED=1 "$GO_CACHE/$v/bin/go" build -race -o "$OUT/$v/goroutines.race" .)
done
# testing/synctest bubbles (Go 1.25+): a test binary.
for v in 1.25.5 1.27.3; do
  (cd testdata/fixtures/synctest && CGO_ENABLED=0 "$GO_CACHE/$v/bin/go" test -c -o "$OUT/$v/synctest.test" .)
done
# Many creation sites (tens of thousands of metric series): a generated program
# with 2,000 functions, each with its own go statement.
gen="$OUT/manysites-src"; mkdir -p "$gen"
printf 'module example.com/manysites\n\ngo 1.21\n' > "$gen/go.mod"
{
  echo 'package main'
  echo 'import ("bufio"; "fmt"; "os"; "runtime"; "sync"; "time")'
  echo 'var block = make(chan struct{})'
  echo 'func leak() { <-block }'
  echo 'func burstWorker(wg *sync.WaitGroup) { time.Sleep(time.Millisecond); wg.Done() }'
  echo '//go:noinline'
  echo 'func burst(n int) { var wg sync.WaitGroup; wg.Add(n); for i := 0; i < n; i++ { go burstWorker(&wg) }; wg.Wait() }'
  for i in $(seq 0 1999); do echo "//go:noinline"; echo "func site$i() { go leak() }"; done
  echo 'func main() {'
  for i in $(seq 0 1999); do echo "site$i()"; done
  echo 'in := bufio.NewReader(os.Stdin); fmt.Println("ready"); in.ReadString(10)'
  echo 'burst(5000); for runtime.NumGoroutine() > 2001 { time.Sleep(time.Millisecond) }'
  echo 'fmt.Println("truth site=burst function=main.burstWorker created_by=main.burst created=5000 exited=5000"); fmt.Println("done"); in.ReadString(10) }'
} > "$gen/main.go"
(cd "$gen" && CGO_ENABLED=0 "$GO_CACHE/1.25.5/bin/go" build -o "$OUT/manysites" .)
# Another architecture, for the error gmon gives.
(cd testdata/fixtures/goroutines && CGO_ENABLED=0 GOARCH=arm64 "$GO_CACHE/1.25.5/bin/go" build -o "$OUT/1.25.5/goroutines.arm64" .)
# Go 1.16/1.17 builds fetched by install-deps.sh (no toolchain that old installs here).
mkdir -p "$OUT/legacy"; cp "$GO_CACHE/../legacy/etcdctl-go1.16.3" "$GO_CACHE/../legacy/dockerfile-go1.17.1.so" "$OUT/legacy/"
(cd testdata/demo && CGO_ENABLED=0 "$GO_CACHE/1.25.5/bin/go" build -o "$OUT/demo" .)
echo "$stamp" > "$OUT/.stamp"
