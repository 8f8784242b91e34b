#!/usr/bin/env bash
# The README's demo: starts the bundled demo HTTP service on 127.0.0.1, runs
# gmon against it, drives a few requests, shows gmon's log lines and summary,
# and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
GMON=.build/release/gmon
DEMO=.fixtures/demo
PORT=${DEMO_PORT:-18080}
out=$(mktemp -d)
cleanup() { kill "$gmon_pid" "$demo_pid" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

"$DEMO" -addr "127.0.0.1:$PORT" 2>"$out/demo.log" &
demo_pid=$!
"$GMON" --path "$DEMO" >"$out/gmon.log" 2>"$out/gmon.err" &
gmon_pid=$!
for _ in $(seq 100); do grep -q "gmon: watching" "$out/gmon.err" && break; sleep 0.1; done
cat "$out/gmon.err"
for i in $(seq 5); do curl -s "http://127.0.0.1:$PORT/work" >/dev/null; done
for i in $(seq 3); do curl -s "http://127.0.0.1:$PORT/leak" >/dev/null; done
sleep 1
echo "--- gmon goroutines --pid $demo_pid: the goroutines the service has now, read from its memory (first 30 lines) ---"
"$GMON" goroutines --pid "$demo_pid" | head -30 || true
kill -INT "$gmon_pid"; wait "$gmon_pid" || true
echo "--- gmon's log lines (first 8 of $(wc -l <"$out/gmon.log")) ---"
head -8 "$out/gmon.log"
echo "--- gmon's summary ---"
sed -n '/gmon summary/,$p' "$out/gmon.err"
