#!/usr/bin/env bash
# Two uringws nodes joined by Redis against one node serving all: the same
# fan-out (uringws-load fanout, uringws mode, one topic), publishers on
# node A, subscribers split over the nodes. Each node has one worker and a
# core of its own (A on CPU 0, B on CPU 1); Redis and the load generator
# are not pinned. Server CPU per delivery is read from /proc per process.
#
#   benches/scripts/bus.sh SUBSCRIBERS RATE SECS
#
# Cases, rotated over ROUNDS (default 3) rounds:
#   single       one node, no bus, every subscriber on it (CPU 0)
#   single+bus   the same with a bus (its publishes go to Redis and back)
#   two          A and B with a bus, subscribers half on each
# Needs release builds: cargo build --release -p uringws-server -p uringws-load
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release"
subs=${1:?subscribers}
rate=${2:?publishes per second}
secs=${3:?seconds}
rounds=${ROUNDS:-3}
tmp=$(mktemp -d /tmp/uringws-bus-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

rport=$(port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" >/dev/null &
redis=$!
pids+=("$redis")
wait_port "$rport"

# node CPU PORT [bus]: prints its pid.
node() {
  local extra=()
  [ "${3:-}" = bus ] && extra=(--bus "redis://127.0.0.1:$rport")
  taskset -c "$1" "$bin/uringws" --workers 1 --no-pin --log-level warn --idle-timeout 0 \
    --ping-interval 0 --anonymous-publish --listen "127.0.0.1:$2" "${extra[@]}" >/dev/null 2>&1 &
  echo $!
}

health_ok() { for _ in $(seq 200); do curl -sf "127.0.0.1:$1/health" | grep -q '"status":"ok"' && return; sleep 0.05; done; echo "node $1 not ok" >&2; exit 1; }

echo "| round | case | deliveries/s | node | deliveries | server CPU µs/delivery | p50 ms | p99 ms | Redis CPU µs/publish |"
echo "|---|---|---|---|---|---|---|---|---|"
for round in $(seq "$rounds"); do
  cases=(single single+bus two)
  shift_by=$(( (round - 1) % 3 ))
  order=("${cases[@]:$shift_by}" "${cases[@]:0:$shift_by}")
  for case in "${order[@]}"; do
    pa=$(port); pb=$(port)
    urls=()
    case $case in
      single) a=$(node 0 "$pa"); b=""; wait_port "$pa"; urls=("ws://127.0.0.1:$pa/ws") ;;
      single+bus) a=$(node 0 "$pa" bus); b=""; wait_port "$pa"; health_ok "$pa"; urls=("ws://127.0.0.1:$pa/ws") ;;
      two) a=$(node 0 "$pa" bus); b=$(node 1 "$pb" bus); wait_port "$pa"; wait_port "$pb"
           health_ok "$pa"; health_ok "$pb"; urls=("ws://127.0.0.1:$pa/ws" "ws://127.0.0.1:$pb/ws") ;;
    esac
    pids+=("$a"); [ -n "$b" ] && pids+=("$b")
    json="$tmp/$case-$round.json"
    # CPU is read from just before publishing starts to the end: the
    # connects and subscribes are not what is measured.
    "$bin/uringws-load" --quiet --json "$json" fanout --mode uringws --publishers 1 \
      --subscribers "$subs" --topics 1 --size 64 --rate "$rate" --duration "${secs}s" \
      --publish-to 0 "${urls[@]}" >"$tmp/out" 2>&1 &
    load=$!
    # Ready when every subscriber is on a node: count their connections.
    want=$((subs + 1))
    for _ in $(seq 400); do
      have=0
      for p in $pa ${b:+$pb}; do
        n=$(curl -sf "127.0.0.1:$p/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["connections"])' 2>/dev/null || echo 0)
        have=$((have + n))
      done
      [ "$have" -ge "$want" ] && break
      sleep 0.05
    done
    ca0=$(cpu "$a"); cb0=0; [ -n "$b" ] && cb0=$(cpu "$b"); cr0=$(cpu "$redis")
    status=0; wait "$load" || status=$?
    ca1=$(cpu "$a"); cb1=0; [ -n "$b" ] && cb1=$(cpu "$b"); cr1=$(cpu "$redis")
    python3 - "$json" "$case" "$round" $((ca1 - ca0)) $((cb1 - cb0)) $((cr1 - cr0)) "$status" <<'PY'
import json, sys
path, case, rnd, ca, cb, cr, status = sys.argv[1:]
r = json.load(open(path))
f = r["fanout"]
tick_us = 10_000
per = f.get("per_target") or []
publishes = f.get("publishes_sent", 0)
rps = f.get("deliveries_per_s", 0)
redis = f"{int(cr) * tick_us / publishes:.1f}" if publishes and case != "single" else "–"
for t, ticks in zip(per, (int(ca), int(cb))):
    n = t["deliveries_received"]
    lat = t.get("latency") or {}
    node = "A" if t["target"] == 0 else "B"
    us = f"{ticks * tick_us / n:.3f}" if n else "–"
    print(f"| {rnd} | {case} | {rps:,.0f} | {node} | {n:,} | {us} | {lat.get('p50_ms', '–')} | {lat.get('p99_ms', '–')} | {redis} |")
if not f.get("lost", 0) == 0 or status != "0":
    print(f"<!-- {case} round {rnd}: lost {f.get('lost')} dup {f.get('duplicates')} status {status} -->")
PY
    kill "$a" ${b:+"$b"} 2>/dev/null || true
    wait "$a" ${b:+"$b"} 2>/dev/null || true
  done
done
