#!/usr/bin/env bash
# What watching costs the watched program, and what gmon itself costs.
#   bench.sh          full run (make bench): figures to the terminal and .bench/results.json
#   bench.sh --tiny   one tiny round of every part, so the harness cannot rot (make test)
# The machine is shared and noisy: runs alternate (a b b' c d e f g a b b' c d e f g …) and
# the table gives medians with min–max.
set -euo pipefail
cd "$(dirname "$0")/.."
TINY=0; [ "${1:-}" = "--tiny" ] && TINY=1
N=${GMON_BENCH_N:-200000}; ROUNDS=${GMON_BENCH_ROUNDS:-7}; LIVE=${GMON_BENCH_LIVE:-1000000}
# New call paths (issue 14): a burst of BURST goroutines each from a stack of its own, and
# STEADY_S seconds at STEADY_RATE new stacks per second (gmon's RSS sampled every 10 s).
BURST=${GMON_BENCH_BURST:-60000}; STEADY_S=${GMON_BENCH_STEADY_S:-300}; STEADY_RATE=${GMON_BENCH_STEADY_RATE:-2000}
if [ $TINY = 1 ]; then N=2000; ROUNDS=1; LIVE=2000; BURST=500; STEADY_S=3; STEADY_RATE=100; fi
GMON=${GMON:-.build/release/gmon}
[ $TINY = 1 ] && GMON=${GMON_TINY:-.build/debug/gmon}
# The floors (count-only, delivery floor, gmon's probes with records dropped) are a tool of
# their own, beside gmon: their programs are not in gmon's BPF object.
FLOORS=$(dirname "$GMON")/gmon-floors
FIX=.fixtures/1.25.5/goroutines.normal
DEMO=.fixtures/demo
GO_CMD=${GMON_GO_CACHE:-/var/cache/gmon/go}/1.25.5/lib/python3.11/site-packages/go/bin/go
OUT=.bench; mkdir -p "$OUT"; W=$(mktemp -d)
STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
trap 'sysctl -q kernel.bpf_stats_enabled="$STATS_WAS" || true; pkill -P $$ 2>/dev/null || true; rm -rf "$W"' EXIT

start_gmon() {   # args: gmon flags… (the floors' flags run gmon-floors); sets GPID
  local bin=$GMON
  case " $* " in *" --count-only "*|*" --deliver-only "*|*" --drop-in-user-space "*) bin=$FLOORS ;; esac
  # Emptied here, not by the redirections of the background job: those run in the child,
  # and while it truncated the last run's log (60 MB) this shell read the last run's
  # "watching" line and started the program before gmon had attached.
  rm -f "$W/gmon.out"; : >"$W/gmon.err"
  # --all: no path; the program is found when it starts.
  if [[ " $* " == *" --all "* ]]; then shift; "$bin" "$@" >"$W/gmon.out" 2>>"$W/gmon.err" &
  else "$bin" --path "$@" >"$W/gmon.out" 2>>"$W/gmon.err" &
  fi
  GPID=$!
  # --all says "watching every Go program" once its first scan has attached to each.
  local ready="gmon: watching"; [[ " $* " == *" --all "* ]] && ready="gmon: watching every Go program"
  for _ in $(seq 600); do grep -q "$ready" "$W/gmon.err" && return 0; kill -0 $GPID 2>/dev/null || break; sleep 0.01; done
  echo "bench: gmon did not attach: $(cat "$W/gmon.err")" >&2; exit 1
}
stop_gmon() { kill -INT $GPID; wait $GPID || true; }

# A run counts only if gmon saw every goroutine of it: N from the bench loop plus the
# runtime's own; none created before it attached; nothing lost.
check_exact() {   # mode
  local e="$W/gmon.err" ok=1
  case $1 in
    b|bclassic) read -r c x < <(sed -n 's/^gmon: count-only: creations \([0-9]*\) exits \([0-9]*\)/\1 \2/p' "$e")
                [ "${c:-0}" -ge "$N" ] && [ "${x:-0}" -ge "$N" ] || ok=0 ;;
    e|f) d=$(sed -n 's/^gmon: records delivered and dropped: \([0-9]*\)/\1/p' "$e"); [ "${d:-0}" -ge $((2 * N)) ] || ok=0 ;;
    *) read -r c x before < <(sed -n 's/^gmon summary: \([0-9]*\) goroutines created[^,]*, \([0-9]*\) exited, .*, \([0-9]*\) exits of goroutines created before gmon attached/\1 \2 \3/p' "$e")
       [ "${c:-0}" -ge "$N" ] && [ "${x:-0}" -ge "$N" ] && [ "${before:-1}" = 0 ] || ok=0 ;;
  esac
  grep -q "^lost events: ring buffer full 0 " "$e" || [ "$1" = b ] || [ "$1" = bclassic ] || ok=0
  if [ $ok = 0 ]; then echo "bench: mode $1 did not see all $N goroutines exactly:" >&2; cat "$e" >&2; exit 1; fi
}

# 1. Cost per goroutine to the watched program.
declare -A FLAGS=(
  [b]="--count-only --no-metrics"
  [bclassic]="--count-only --classic-probes --no-metrics"
  [c]=""
  [d]="--no-stacks --log-level warn --no-metrics"
  [e]="--deliver-only --log-level warn --no-metrics"
  [f]="--drop-in-user-space --log-level warn --no-metrics"
  [g]="--log-level warn"
  [h]="--all --exe goroutines.normal --log-level warn"
)
: >"$W/samples"
for r in $(seq "$ROUNDS"); do
  for mode in a b bclassic c d e f g h; do
    if [ $mode = a ]; then
      ns=$("$FIX" -bench "$N" | awk '{print $2}')
    elif [ $mode = h ]; then
      # --all: the program waits until gmon has found it (its exec reported by the kernel).
      # shellcheck disable=SC2086
      start_gmon "$FIX" ${FLAGS[$mode]} --metrics-address 127.0.0.1:0
      rm -f "$W/in"; mkfifo "$W/in"
      "$FIX" -wait-stdin -bench "$N" <"$W/in" >"$W/bench.out" & BP=$!
      exec 9>"$W/in"
      for _ in $(seq 600); do grep -q "watching .*goroutines.normal" "$W/gmon.err" && break; sleep 0.01; done
      echo >&9; wait $BP; exec 9>&-
      ns=$(grep -v '^ready' "$W/bench.out" | awk '{print $2}')
      sleep 0.3; stop_gmon
      check_exact $mode
      cost=$(sed -n 's/^gmon: own cost: user \([0-9.e-]*\) s, system \([0-9.e-]*\) s, peak RSS \([0-9]*\) MB/\1 \2 \3/p' "$W/gmon.err")
      lost=$(sed -n 's/^lost events: ring buffer full \([0-9]*\).*/\1/p' "$W/gmon.err")
      echo "cost $mode $cost ${lost:-0}" >>"$W/samples"
    else
      # shellcheck disable=SC2086
      start_gmon "$FIX" ${FLAGS[$mode]} --metrics-address 127.0.0.1:0
      ns=$("$FIX" -bench "$N" | awk '{print $2}')
      sleep 0.3; stop_gmon
      check_exact $mode
      cost=$(sed -n 's/^gmon: own cost: user \([0-9.e-]*\) s, system \([0-9.e-]*\) s, peak RSS \([0-9]*\) MB/\1 \2 \3/p' "$W/gmon.err")
      lost=$(sed -n 's/^lost events: ring buffer full \([0-9]*\).*/\1/p' "$W/gmon.err")
      echo "cost $mode $cost ${lost:-0}" >>"$W/samples"
    fi
    echo "ns $mode $ns" >>"$W/samples"
  done
done

# 1b. Where the watched thread's time goes in the kernel: the run time of each BPF program
# per probe hit (kernel.bpf_stats_enabled; bpftool). One pass per mode after the timed
# rounds: the statistics add two clock reads per run. This instance's programs are those
# with ids above the largest id before it started.
for mode in b e f c d; do
  before=$(bpftool prog show -j | python3 -c 'import json, sys; print(max([p["id"] for p in json.load(sys.stdin)] or [0]))')
  # shellcheck disable=SC2086
  start_gmon "$FIX" ${FLAGS[$mode]} --metrics-address 127.0.0.1:0
  sysctl -q kernel.bpf_stats_enabled=1
  "$FIX" -bench "$N" >/dev/null
  bpftool prog show -j | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p["id"] > int(sys.argv[1]) and p.get("name", "").startswith(("gmon_", "floors_")) and p.get("run_cnt", 0) > 0:
        print("bpf", sys.argv[2], p["name"], p["run_time_ns"] / p["run_cnt"], p["run_cnt"])' "$before" "$mode" >>"$W/samples"
  sysctl -q kernel.bpf_stats_enabled="$STATS_WAS"
  stop_gmon
done

# The demo HTTP service under wrk for 5 s: "requests/s p99".
wrk_demo() {   # port
  wrk -t2 -c16 -d5s --latency "http://127.0.0.1:$1/work" >"$W/wrk" 2>&1 || true
  echo "$(awk '/Requests\/sec/ {print $2}' "$W/wrk") $(awk '$1=="99%" {print $2}' "$W/wrk")"
}

# 2. A realistic service: the demo HTTP server under wrk, unwatched and watched.
if [ $TINY = 0 ] && command -v wrk >/dev/null; then
  PORT=18181
  "$DEMO" -addr 127.0.0.1:$PORT 2>/dev/null & DPID=$!
  sleep 0.5
  for mode in unwatched watched unwatched watched; do
    [ $mode = watched ] && start_gmon "$DEMO" --metrics-address 127.0.0.1:0
    read -r rps p99 < <(wrk_demo $PORT)
    echo "wrk $mode $rps $p99" >>"$W/samples"
    [ $mode = watched ] && stop_gmon
  done
  kill $DPID; wait $DPID 2>/dev/null || true
fi

# 3. gmon's memory with many live goroutines: with a 1 MB and a 4 MB ring buffer per CPU
# (the default here: 16 MB in all, 1 to 4 MB per CPU).
for ring in 1 4; do
  start_gmon "$FIX" --no-stacks --log-level warn --metrics-address 127.0.0.1:0 --ring-buffer-mb $ring
  exec 7> >("$FIX" -wait-stdin -a 0 -b 0 -c "$LIVE" >"$W/live.out")
  echo >&7
  for _ in $(seq 600); do grep -q done "$W/live.out" 2>/dev/null && break; sleep 0.1; done
  sleep 1.5
  # RSS in parts: anonymous (gmon's own heap) and file-backed, which counts the BPF ring
  # buffers twice (their data pages are mapped twice) and the shared libraries.
  rss=$(awk '/VmRSS/ {print $2}' /proc/$GPID/status)
  anon=$(awk '/RssAnon/ {print $2}' /proc/$GPID/status); file=$(awk '/RssFile/ {print $2}' /proc/$GPID/status)
  echo "live $LIVE $rss $anon $file $ring" >>"$W/samples"
  echo >&7; exec 7>&-
  sleep 0.5; stop_gmon
  rm -f "$W/live.out"
done

# 4. Start-up on the largest Go binary at hand.
for _ in 1 2 3; do
  t0=$(date +%s.%N); start_gmon "$GO_CMD" --no-metrics; t1=$(date +%s.%N); stop_gmon
  echo "startup $(python3 -c "print($t1 - $t0)")" >>"$W/samples"
done

# 5. New call paths: a burst, as shipped and with 4 MB rings; then a long steady stream, whose
# RSS must stay flat once --max-stacks stacks are kept (the bound, not the stream, sets it).
for ring in 1 4; do
  start_gmon "$FIX" --metrics-address 127.0.0.1:0 --ring-buffer-mb $ring
  "$FIX" -stacks "$BURST" >/dev/null
  sleep 2; stop_gmon
  lost=$(sed -n 's/^lost events: ring buffer full \([0-9]*\) .*/\1/p' "$W/gmon.err")
  cpu=$(sed -n 's/^gmon: own cost: user \([0-9.]*\) s, system \([0-9.]*\) s, peak RSS \([0-9]*\) MB/\1 \2 \3/p' "$W/gmon.err")
  echo "burst $ring $BURST ${lost:-?} $cpu" >>"$W/samples"
done
start_gmon "$FIX" --metrics-address 127.0.0.1:0
"$FIX" -stacks $((STEADY_S * STEADY_RATE)) -stacks-per-second "$STEADY_RATE" >/dev/null &
SPID=$!
t=0
while kill -0 $SPID 2>/dev/null; do
  echo "steady_rss $t $(awk '/VmRSS/ {print $2}' /proc/$GPID/status)" >>"$W/samples"
  sleep $([ $TINY = 1 ] && echo 1 || echo 10); t=$((t + 1))
done
wait $SPID; sleep 1; stop_gmon
lost=$(sed -n 's/^lost events: ring buffer full \([0-9]*\) .*/\1/p' "$W/gmon.err")
echo "steady $STEADY_S $STEADY_RATE ${lost:-?} $(sed -n 's/.*peak RSS \([0-9]*\) MB/\1/p' "$W/gmon.err")" >>"$W/samples"

# 6. Snapshots of goroutines that already exist (issue 16): `gmon goroutines --count` on the
# blocked fixture with SNAP goroutines at one site, three times (wall time, gmon's peak RSS;
# from 50,000 g's on, two threads read them),
# and once on it with no pool (gmon's RSS without the goroutines); then the stall of the program
# being read: the demo service's p99 under wrk, alone and with snapshots of it back to back.
SNAP=${GMON_BENCH_SNAP:-1000000}; [ $TINY = 1 ] && SNAP=2000
BLK=.fixtures/1.25.5/blocked.normal
for pool in 0 "$SNAP"; do
  rm -f "$W/blk.out"
  exec 8> >("$BLK" -pool "$pool" >"$W/blk.out")
  for _ in $(seq 900); do grep -q ready "$W/blk.out" 2>/dev/null && break; sleep 0.1; done
  BPID=$(sed -n 's/^ready //p' "$W/blk.out")
  # The program's own GC runs for a few seconds after it made a million goroutines: measured
  # after it, as a service that has been leaking for a while would be read.
  [ "$pool" != 0 ] && [ $TINY = 0 ] && sleep 3
  for _ in $([ "$pool" = 0 ] && echo 1 || echo 1 2 3); do
    /usr/bin/time -f "%e %M" -o "$W/time" "$GMON" goroutines --pid "$BPID" --count >"$W/snap.out"
    n=$(sed -n 's/.*: \([0-9]*\) goroutines$/\1/p' "$W/snap.out" | head -1)
    echo "snapshot $pool ${n:-0} $(cat "$W/time")" >>"$W/samples"
  done
  echo >&8; echo >&8; echo >&8; exec 8>&-
  wait 2>/dev/null || true
done
if [ $TINY = 0 ] && command -v wrk >/dev/null; then
  PORT=18182
  "$DEMO" -addr 127.0.0.1:$PORT 2>/dev/null & DPID=$!
  sleep 0.5
  for mode in alone snapshots alone snapshots; do
    LOOP=""
    if [ $mode = snapshots ]; then
      ( while :; do "$GMON" goroutines --pid $DPID --count >/dev/null 2>&1 || break; done ) & LOOP=$!
    fi
    result=$(wrk_demo $PORT)
    [ -n "$LOOP" ] && { kill $LOOP; wait $LOOP 2>/dev/null || true; }
    echo "stall $mode $result" >>"$W/samples"
  done
  kill $DPID; wait $DPID 2>/dev/null || true
fi

# 7. The node agent (issue 17): gmon --all with AGENT_PROCS running processes of 10
# executables (copies of the fixture under names of their own, Go 1.19 to 1.27): the time
# from gmon's start to watching them all; gmon's RSS per watched executable (against a run
# with none); the delay from a new program's exec to gmon watching it (10 programs, each
# a file gmon has not seen); the scrape's bytes per series.
AGENT_PROCS=${GMON_BENCH_AGENT_PROCS:-50}; [ $TINY = 1 ] && AGENT_PROCS=10
AG="$W/agent"; mkdir -p "$AG"
k=0
for mode in normal stripped; do
  for v in $(cut -d: -f1 .fixtures/toolchains); do
    [ $k -lt 10 ] && cp ".fixtures/$v/goroutines.$mode" "$AG/ga$k" && k=$((k + 1))
  done
done
for k in $(seq 0 9); do cp "$FIX" "$AG/gb$k"; done
agent_rss() { awk '/^VmRSS/ {print $2}' "/proc/$GPID/status"; }
start_gmon x --all --exe 'ga*' --exe 'gb*' --log-level warn --metrics-address 127.0.0.1:0
sleep 1; rss0=$(agent_rss); stop_gmon
# The programs wait for a line that never comes, on a FIFO this script holds open.
mkfifo "$AG/hold"; exec 7<>"$AG/hold"
for p in $(seq 0 $((AGENT_PROCS - 1))); do "$AG/ga$((p % 10))" -wait-stdin <"$AG/hold" >/dev/null & done
sleep 2
t0=$(date +%s%N)
start_gmon x --all --exe 'ga*' --exe 'gb*' --log-level warn --metrics-address 127.0.0.1:0
t1=$(date +%s%N)
sleep 1; rss10=$(agent_rss)
watching=$(grep -c "gmon: watching $AG/ga" "$W/gmon.err" || true)
seeded=$(sed -n 's/.*executables\{0,1\} now, \([0-9]*\) goroutines already running.*/\1/p' "$W/gmon.err")
echo "agent_attach $AGENT_PROCS $watching $(( (t1 - t0) / 1000000 )) $rss0 $rss10 ${seeded:-0}" >>"$W/samples"
for k in $(seq 0 9); do
  e0=$(date +%s%N)
  "$AG/gb$k" -wait-stdin <"$AG/hold" >/dev/null &
  for _ in $(seq 2500); do grep -q "gmon: watching $AG/gb$k " "$W/gmon.err" && break; sleep 0.002; done
  echo "agent_exec $(( ($(date +%s%N) - e0) / 1000000 ))" >>"$W/samples"
done
port=$(sed -n 's|.*metrics on http://\([^/]*\)/metrics.*|\1|p' "$W/gmon.err")
curl -s "http://$port/metrics" >"$W/scrape"
echo "agent_scrape $(wc -c <"$W/scrape") $(grep -c '^gmon_goroutines_live{' "$W/scrape")" >>"$W/samples"
stop_gmon
pkill -f "$AG/g" 2>/dev/null || true
exec 7>&-

# 8. Scrape size per creation site: the manysites program (2,000 sites, shallow stacks),
# watched with room for all of them; bytes of one plain and one gzipped scrape per
# gmon_goroutines_created_total series.
MANY=.fixtures/manysites
start_gmon "$MANY" --log-level warn --max-sites 5000 --metrics-address 127.0.0.1:0
mkfifo "$W/many-hold"; exec 8<>"$W/many-hold"
"$MANY" <"$W/many-hold" >"$W/many.out" &
MPID=$!
for _ in $(seq 300); do grep -q ready "$W/many.out" && break; sleep 0.05; done
sleep 1
port=$(sed -n 's|.*metrics on http://\([^/]*\)/metrics.*|\1|p' "$W/gmon.err")
curl -s "http://$port/metrics" >"$W/many-scrape"
gz=$(curl -s -H 'Accept-Encoding: gzip' "http://$port/metrics" | wc -c)
echo "site_scrape $(wc -c <"$W/many-scrape") $gz $(grep -c '^gmon_goroutines_created_total{' "$W/many-scrape")" >>"$W/samples"
kill $MPID 2>/dev/null; wait $MPID 2>/dev/null || true
exec 8>&-
stop_gmon

python3 - "$W/samples" "$OUT/results.json" "$N" <<'EOF'
import json, statistics, sys
samples, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ns, cost, wrk, live, startup, bpf = {}, {}, {}, {}, [], {}
burst, steady_rss, steady, snaps, stall = {}, [], None, {}, {}
agent = {}
for line in open(samples):
    f = line.split()
    if f[0] == "ns": ns.setdefault(f[1], []).append(float(f[2]))
    elif f[0] == "cost" and len(f) >= 6: cost.setdefault(f[1], []).append((float(f[2]) + float(f[3]), int(f[4]), int(f[5])))
    elif f[0] == "wrk" and len(f) >= 4: wrk.setdefault(f[1], []).append((float(f[2]), f[3]))
    elif f[0] == "live": live[int(f[5])] = (int(f[1]), int(f[2]), int(f[3]), int(f[4]))
    elif f[0] == "startup": startup.append(float(f[1]))
    elif f[0] == "burst" and len(f) >= 7: burst[int(f[1])] = {"goroutines": int(f[2]), "lost": f[3], "gmon_cpu_s": round(float(f[4]) + float(f[5]), 2), "peak_rss_mb": int(f[6])}
    elif f[0] == "steady_rss" and len(f) >= 3: steady_rss.append(int(f[2]))
    elif f[0] == "steady" and len(f) >= 5: steady = {"seconds": int(f[1]), "new_stacks_per_s": int(f[2]), "lost": f[3], "peak_rss_mb": int(f[4])}
    elif f[0] == "snapshot" and len(f) >= 5: snaps.setdefault(int(f[1]), []).append((int(f[2]), float(f[3]), int(f[4])))
    elif f[0] == "stall" and len(f) >= 4: stall.setdefault(f[1], []).append((float(f[2]), f[3]))
    elif f[0] == "agent_attach": agent["attach"] = {"processes": int(f[1]), "executables_watched": int(f[2]), "seconds": int(f[3]) / 1000,
                                                  "rss_kb_none": int(f[4]), "rss_kb_10": int(f[5]), "goroutines_seeded": int(f[6]),
                                                  "rss_kb_per_executable": (int(f[5]) - int(f[4])) / 10}
    elif f[0] == "agent_exec": agent.setdefault("exec_to_watching_ms", []).append(int(f[1]))
    elif f[0] == "agent_scrape": agent["scrape"] = {"bytes": int(f[1]), "live_series": int(f[2]), "bytes_per_series": int(f[1]) // max(1, int(f[2]))}
    elif f[0] == "site_scrape": agent["site_scrape"] = {"bytes": int(f[1]), "gzip_bytes": int(f[2]), "sites": int(f[3]),
                                                   "bytes_per_site": int(f[1]) // max(1, int(f[3])), "gzip_bytes_per_site": int(f[2]) // max(1, int(f[3]))}
    elif f[0] == "bpf" and f[2] != "gmon_process_exit": bpf.setdefault(f[1], {})[f[2]] = round(float(f[3]), 1)
med = lambda v: statistics.median(v)
res = {"goroutines_per_run": n, "ns_per_goroutine": {m: {"median": med(v), "min": min(v), "max": max(v)} for m, v in ns.items()}}
a = med(ns["a"])
added = {m: med(v) - a for m, v in ns.items() if m != "a"}
res["added_ns_per_goroutine"] = added
if added.get("b", 0) > 0: res["c_over_b"], res["e_over_b"] = added["c"] / added["b"], added["e"] / added["b"]
if added.get("bclassic", 0) > 0: res["c_over_bclassic"] = added["c"] / added["bclassic"]
if added.get("g", 0) > 0 and "h" in added: res["h_over_g"] = added["h"] / added["g"]
events = 2 * n
# gmon's CPU per event: above the count-only run, which pays start-up and attach but handles no event.
base_cpu = med([c[0] for c in cost["b"]])
res["gmon_cpu_us_per_event"] = {m: max(0.0, med([c[0] for c in v]) - base_cpu) / events * 1e6 for m, v in cost.items() if m in ("c", "d")}
res["gmon_peak_rss_mb"] = {m: max(c[1] for c in v) for m, v in cost.items()}
res["events_lost"] = {m: sum(c[2] for c in v) for m, v in cost.items()}
if wrk: res["wrk"] = {m: {"requests_per_s": med([x[0] for x in v]), "p99": [x[1] for x in v]} for m, v in wrk.items()}
if live: res["rss_kb_with_live_goroutines"] = {f"ring_buffer_{r}_mb_per_cpu": {"live": v[0], "rss_kb": v[1], "rss_anon_kb": v[2], "rss_file_kb": v[3]} for r, v in live.items()}
res["startup_s_go_command"] = med(startup)
res["bpf_ns_per_program_run"] = bpf
res["new_stacks_burst"] = {f"ring_buffer_{r}_mb_per_cpu": v for r, v in burst.items()}
if steady:
    # After warm-up (the first third): RSS must not grow with the stream.
    warm = steady_rss[len(steady_rss) // 3:] or steady_rss
    steady["rss_kb_after_warmup_first_last_max"] = [warm[0], warm[-1], max(warm)] if warm else []
    res["new_stacks_steady"] = steady
if snaps:
    base = max(x[2] for x in snaps.get(0, [(0, 0, 0)]))
    res["snapshot"] = {str(k): {"goroutines": v[0][0], "wall_s": [x[1] for x in v], "peak_rss_kb": max(x[2] for x in v),
                                "added_rss_kb": max(x[2] for x in v) - base} for k, v in snaps.items()}
if stall: res["stall_while_read"] = {m: {"requests_per_s": med([x[0] for x in v]), "p99": [x[1] for x in v]} for m, v in stall.items()}
if agent: res["agent"] = agent
json.dump(res, open(out, "w"), indent=2)
names = {"a": "a unwatched", "b": "b count-only, gmon's sites", "bclassic": "b' count-only, classic sites", "c": "c gmon (logs to file)", "d": "d gmon cheapest",
         "e": "e delivery floor (empty records)", "f": "f gmon's BPF, user space drops", "g": "g as c without log lines",
         "h": "h as g, gmon --all"}
print(f"{'run':32} {'ns/goroutine median':>20} {'min–max':>18} {'added ns':>10}")
for m in ["a", "b", "bclassic", "c", "d", "e", "f", "g", "h"]:
    v = res["ns_per_goroutine"][m]
    print(f"{names[m]:32} {v['median']:20.0f} {v['min']:8.0f}–{v['max']:<9.0f} {added.get(m, 0):10.0f}")
for k in ["c_over_b", "e_over_b", "c_over_bclassic", "h_over_g"]:
    if k in res: print(f"{k}: {res[k]:.2f}")
print("gmon CPU µs/event:", {m: round(v, 3) for m, v in res["gmon_cpu_us_per_event"].items()})
print("gmon peak RSS MB:", res["gmon_peak_rss_mb"], " events lost:", res["events_lost"])
if wrk: print("wrk /work:", res["wrk"])
for r, v in live.items():
    print(f"gmon RSS with {v[0]} live goroutines, {r} MB ring buffer per CPU: {v[1] / 1024:.1f} MB (anonymous {v[2] / 1024:.1f} MB, file-backed {v[3] / 1024:.1f} MB)")
print(f"start-up on the go command: {res['startup_s_go_command']:.3f} s")
for r, v in burst.items():
    print(f"burst of {v['goroutines']} new stacks, {r} MB rings: lost {v['lost']}, gmon CPU {v['gmon_cpu_s']} s, peak RSS {v['peak_rss_mb']} MB")
if steady:
    print(f"{steady['seconds']} s at {steady['new_stacks_per_s']} new stacks/s: lost {steady['lost']}, peak RSS {steady['peak_rss_mb']} MB, RSS kB after warm-up first/last/max {steady['rss_kb_after_warmup_first_last_max']}")
for k, v in res.get("snapshot", {}).items():
    print(f"gmon goroutines --count, {v['goroutines']} goroutines: {v['wall_s']} s wall, peak RSS {v['peak_rss_kb'] / 1024:.0f} MB ({v['added_rss_kb'] / 1024:.0f} MB above an empty program's)")
if stall: print("demo service while read:", res["stall_while_read"])
print("BPF ns per program run (kernel bpf_stats, one pass each):", "; ".join(f"{m}: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(p.items())) for m, p in bpf.items()))
if agent:
    a = agent.get("attach", {})
    print(f"gmon --all: {a.get('processes')} processes of 10 executables watched ({a.get('executables_watched')} attached) {a.get('seconds')} s after start, "
          f"{a.get('goroutines_seeded')} goroutines seeded; RSS {a.get('rss_kb_none', 0) / 1024:.1f} MB with none, {a.get('rss_kb_10', 0) / 1024:.1f} MB with 10 "
          f"({a.get('rss_kb_per_executable', 0) / 1024:.2f} MB per executable)")
    print(f"exec to watching (ms): {agent.get('exec_to_watching_ms')}; scrape {agent.get('scrape')}")
if "site_scrape" in agent:
    v = agent["site_scrape"]
    print(f"scrape per creation site (manysites, {v['sites']} sites): {v['bytes_per_site']} bytes, {v['gzip_bytes_per_site']} gzipped")
EOF
