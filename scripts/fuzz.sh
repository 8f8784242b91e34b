#!/usr/bin/env bash
# Fuzzes the Go executable reader with libFuzzer + AddressSanitizer, two ways:
#   whole-file  inputs are whole files (seeds: real binaries and their truncations)
#   patch       inputs are byte patches on real binaries held in memory (Fuzz/GoBinaryPatchFuzz.swift):
#               ~100x more executions per second on the structures the reader trusts
#   fuzz.sh smoke   bounded run for `make test` (30 s each), then replays the regression inputs
#   fuzz.sh long    `make fuzz`: GMON_FUZZ_RUNS patch executions (default 10 million), one
#                   worker per core, then 10 minutes whole-file
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-smoke}
W=.fuzz; mkdir -p "$W/corpus" "$W/seeds" "$W/patch-corpus" "$W/bases"
build() {  # output, entry file
  swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name GoBinaryFuzz \
    -I Sources/CZlib Sources/GoBinary/*.swift Fuzz/ExerciseReader.swift "$2" -o "$1" 2>&1 | grep -v warning || true
  test -x "$1"
}
build "$W/fuzz-gobinary" Fuzz/GoBinaryFuzz.swift
build "$W/fuzz-gobinary-patch" Fuzz/GoBinaryPatchFuzz.swift
# Bases for the patch fuzzer: each pclntab format, PIE and non-PIE, internal and external linking, DWARF.
# (DWARF and the 18 MB etcdctl make an execution 10–100x slower: the whole-file fuzzer and
# MalformedInputTests cover them.)
for f in 1.19/goroutines.stripped 1.19/goroutines.pie 1.25.5/goroutines.static-pie 1.27.3/goroutines.pie \
         legacy/dockerfile-go1.17.1.so; do
  cp -n ".fixtures/$f" "$W/bases/$(echo "$f" | tr / -)"
done
export GMON_FUZZ_BASES="$PWD/$W/bases"
[ -n "$(ls -A "$W/patch-corpus")" ] || for i in 0 1 2 3 4 5 6; do printf "\\x$i" > "$W/patch-corpus/base$i"; done
# Seeds for whole files: truncations of real binaries.
if [ -z "$(ls -A "$W/seeds")" ]; then
  for f in .fixtures/1.19/goroutines.stripped .fixtures/1.25.5/goroutines.pie .fixtures/1.27.3/goroutines.normal; do
    b=$(basename "$(dirname "$f")")-$(basename "$f")
    cp "$f" "$W/seeds/$b"
    for n in 64 4096 65536 1000000; do head -c $n "$f" > "$W/seeds/$b.$n"; done
  done
fi
# Known crashers stay fixed: libFuzzer writes them to testdata/fuzz-regressions/{whole,patch}-crash-*.
R=testdata/fuzz-regressions
if ls $R/whole-* >/dev/null 2>&1; then "$W/fuzz-gobinary" $R/whole-*; fi
if ls $R/patch-* >/dev/null 2>&1; then "$W/fuzz-gobinary-patch" $R/patch-*; fi
common=(-rss_limit_mb=4096 -print_final_stats=1)
whole=("$W/fuzz-gobinary" -max_len=4000000 "${common[@]}" -artifact_prefix=$R/whole- "$W/corpus" "$W/seeds")
patch=("$W/fuzz-gobinary-patch" -max_len=512 "${common[@]}" -artifact_prefix=$R/patch-)
case "$mode" in
  smoke)
    "${patch[@]}" -max_total_time=30 "$W/patch-corpus" 2>&1 | tail -12
    "${whole[@]}" -max_total_time=30 2>&1 | tail -12 ;;
  long)
    runs=${GMON_FUZZ_RUNS:-10000000}; jobs=$(nproc)
    # -runs counts per worker; the workers share the corpus directory.
    "${patch[@]}" -runs=$(( (runs + jobs - 1) / jobs )) -jobs="$jobs" -workers="$jobs" "$W/patch-corpus"
    mv fuzz-*.log "$W/"
    for l in "$W"/fuzz-*.log; do grep -E "DONE|stat::number_of_executed_units" "$l"; done
    "${whole[@]}" -max_total_time=600 2>&1 | tail -12 ;;
esac
