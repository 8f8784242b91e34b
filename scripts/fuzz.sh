#!/usr/bin/env bash
# Fuzzes the Go executable reader with libFuzzer + AddressSanitizer, two ways:
#   whole-file  inputs are whole files (seeds: real binaries and their truncations)
#   patch       inputs are byte patches on real binaries held in memory (Fuzz/GoBinaryPatchFuzz.swift):
#               ~100x more executions per second on the structures the reader trusts
#   fuzz.sh smoke   bounded run for `make test` (30 s each), then replays the regression inputs
#   fuzz.sh long    `make fuzz`: GMON_FUZZ_RUNS patch executions (default 10 million) on the
#                   fastest bases, one worker per core, then 10 minutes on every base and
#                   10 minutes of whole files
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-smoke}
W=.fuzz; mkdir -p "$W/corpus" "$W/seeds" "$W/patch-corpus" "$W/bases" testdata/fuzz-regressions
# The reader's sources as one module: GoBinary, the model values it returns, and the
# per-release layouts read from hostile files (GoRuntime's readers of ELF and DWARF), with
# the imports between them dropped.
rm -rf "$W/src"; mkdir -p "$W/src"
cp Sources/GmonModel/*.swift Sources/GoBinary/*.swift "$W/src/"
for f in RuntimeLayout ModuleData GoroutineLayout GoExecutable; do cp "Sources/GoRuntime/$f.swift" "$W/src/"; done
sed -i -e '/^import GmonModel$/d' -e '/^import GoBinary$/d' "$W/src/"*.swift
build() {  # output, entry file
  swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name GoBinaryFuzz \
    -I Sources/CZlib "$W/src/"*.swift Fuzz/ExerciseReader.swift "$2" -o "$1" 2>&1 | grep -v warning || true
  test -x "$1"
}
build "$W/fuzz-gobinary" Fuzz/GoBinaryFuzz.swift
build "$W/fuzz-gobinary-patch" Fuzz/GoBinaryPatchFuzz.swift
# Bases for the patch fuzzer: every pclntab format (1.16, 1.18, 1.20), PIE and not,
# internal and external linking (static-pie, a cgo shared object), DWARF.
mkdir -p "$W/bases/fast" "$W/bases/all"
for f in 1.19/goroutines.stripped 1.27.3/goroutines.stripped legacy/etcdctl-go1.16.3; do
  cp -n ".fixtures/$f" "$W/bases/fast/$(echo "$f" | tr / -)"
done
for f in 1.19/goroutines.stripped 1.19/goroutines.pie 1.21.13/goroutines.normal 1.25.5/goroutines.static-pie \
         1.27.3/goroutines.pie legacy/etcdctl-go1.16.3 legacy/dockerfile-go1.17.1.so; do
  cp -n ".fixtures/$f" "$W/bases/all/$(echo "$f" | tr / -)"
done
[ -n "$(ls -A "$W/patch-corpus")" ] || for i in 0 1 2 3 4 5 6; do printf "\\x$i" > "$W/patch-corpus/base$i"; done
# Seeds for whole files: truncations of real binaries.
if [ -z "$(ls -A "$W/seeds")" ]; then
  for f in .fixtures/1.19/goroutines.stripped .fixtures/1.25.5/goroutines.pie .fixtures/1.27.3/goroutines.normal; do
    b=$(basename "$(dirname "$f")")-$(basename "$f")
    cp "$f" "$W/seeds/$b"
    for n in 64 4096 65536 1000000; do head -c $n "$f" > "$W/seeds/$b.$n"; done
  done
fi
# Known crashers stay fixed: libFuzzer writes them to testdata/fuzz-regressions/whole-crash-*
# and, for patches (which name a base of their set), patch-{fast,all}-crash-*.
R=testdata/fuzz-regressions
if ls $R/whole-* >/dev/null 2>&1; then "$W/fuzz-gobinary" $R/whole-*; fi
for set in fast all; do
  if ls $R/patch-$set-* >/dev/null 2>&1; then GMON_FUZZ_BASES="$PWD/$W/bases/$set" "$W/fuzz-gobinary-patch" $R/patch-$set-*; fi
done
common=(-rss_limit_mb=4096 -print_final_stats=1)
whole=("$W/fuzz-gobinary" -max_len=4000000 "${common[@]}" -artifact_prefix=$R/whole- "$W/corpus" "$W/seeds")
patch=("$W/fuzz-gobinary-patch" -max_len=512 "${common[@]}")
case "$mode" in
  smoke)
    GMON_FUZZ_BASES="$PWD/$W/bases/all" "${patch[@]}" -artifact_prefix=$R/patch-all- -max_total_time=30 "$W/patch-corpus" 2>&1 | tail -12
    "${whole[@]}" -max_total_time=30 2>&1 | tail -12 ;;
  long)
    # 1. GMON_FUZZ_RUNS executions on the internally linked, non-PIE bases, whose
    #    reading is cheapest (one base per pclntab format), one worker per core;
    #    -runs counts per worker and the workers share the corpus.
    runs=${GMON_FUZZ_RUNS:-10000000}; jobs=$(nproc)
    GMON_FUZZ_BASES="$PWD/$W/bases/fast" "${patch[@]}" -artifact_prefix=$R/patch-fast- -runs=$(( (runs + jobs - 1) / jobs )) -jobs="$jobs" -workers="$jobs" "$W/patch-corpus"
    mv fuzz-*.log "$W/"
    for l in "$W"/fuzz-*.log; do grep -E "DONE|stat::number_of_executed_units" "$l"; done
    # 2. Every base (PIE relocations, external linking, DWARF) and whole files, 10 minutes each.
    GMON_FUZZ_BASES="$PWD/$W/bases/all" "${patch[@]}" -artifact_prefix=$R/patch-all- -max_total_time=600 "$W/patch-corpus" 2>&1 | tail -12
    "${whole[@]}" -max_total_time=600 2>&1 | tail -12 ;;
esac
