#!/usr/bin/env bash
# Fuzzes the Go executable reader with libFuzzer + AddressSanitizer.
#   fuzz.sh smoke   bounded run for `make test` (60 s), then replays the regression corpus
#   fuzz.sh long    `make fuzz`: GMON_FUZZ_RUNS executions (default 10 million)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-smoke}
W=.fuzz; mkdir -p "$W/corpus" "$W/seeds"
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name GoBinaryFuzz \
  -I Sources/CZlib Sources/GoBinary/*.swift Fuzz/GoBinaryFuzz.swift -o "$W/fuzz-gobinary" 2>&1 | grep -v warning || true
test -x "$W/fuzz-gobinary"
# Seeds: small real binaries' heads/tails are too big to mutate well, so seed with
# truncations and the regression inputs kept in testdata/fuzz-regressions.
if [ -z "$(ls -A "$W/seeds")" ]; then
  for f in .fixtures/1.19/goroutines.stripped .fixtures/1.25.5/goroutines.pie .fixtures/1.27.3/goroutines.normal; do
    b=$(basename "$(dirname "$f")")-$(basename "$f")
    cp "$f" "$W/seeds/$b"
    for n in 64 4096 65536 1000000; do head -c $n "$f" > "$W/seeds/$b.$n"; done
  done
fi
# Known crashers stay fixed.
if ls testdata/fuzz-regressions/* >/dev/null 2>&1; then "$W/fuzz-gobinary" testdata/fuzz-regressions/*; fi
case "$mode" in
  smoke) "$W/fuzz-gobinary" -max_total_time=60 -max_len=4000000 -rss_limit_mb=4096 -print_final_stats=1 "$W/corpus" "$W/seeds" 2>&1 | tail -15 ;;
  long)  "$W/fuzz-gobinary" -runs="${GMON_FUZZ_RUNS:-10000000}" -max_len=4000000 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=testdata/fuzz-regressions/ "$W/corpus" "$W/seeds" 2>&1 | tail -15 ;;
esac
