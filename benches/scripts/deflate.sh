#!/usr/bin/env bash
# permessage-deflate side by side: uringws and C++ uWebSockets (peer-uws-cpp),
# each with compression off, shared and dedicated (uWebSockets'
# SHARED_COMPRESSOR and DEDICATED_COMPRESSOR_3KB, each with its shared
# decompressor; uringws --compression shared, and dedicated at window 2^9,
# memLevel 1). Server on CPU 0, uringws-load on CPU 1, one server thread.
#
#   benches/scripts/deflate.sh idle N          # RSS per connection, N held, each sent one 512 B JSON message first
#   benches/scripts/deflate.sh echo CONNS SECS # server CPU per echoed 1 KiB JSON message, wire bytes per message
#   benches/scripts/deflate.sh fanout N RATE SECS  # server CPU per delivery of a 1 KiB publication to N, wire bytes
#
# ROUNDS (default 3) rounds, the servers and modes rotated within each.
# Needs release builds: cargo build --release -p uringws-server -p uringws-load
# -p uringws-engine --example room, and benches/peers/uws-cpp/build.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release"
what=${1:?idle, echo or fanout}
shift
rounds=${ROUNDS:-3}
json=$(mktemp /tmp/uringws-deflate.XXXXXX.json)
trap 'rm -f "$json"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# start WHO MODE PORT KIND: prints the server's pid. KIND echo or room.
start() {
  local who=$1 mode=$2 p=$3 kind=$4 bits=15
  [ "$mode" = dedicated ] && bits=9
  if [ "$who" = uws ]; then
    taskset -c 0 "$bin/peer-uws-cpp" --listen "127.0.0.1:$p" --compression "$mode" >/dev/null 2>&1 &
  elif [ "$kind" = room ]; then
    taskset -c 0 "$bin/examples/room" --listen "127.0.0.1:$p" --threads 1 --compression "$mode" >/dev/null 2>&1 &
  else
    taskset -c 0 "$bin/uringws" --workers 1 --no-pin --log-level warn --idle-timeout 0 --ping-interval 0 \
      --listen "127.0.0.1:$p" --compression "$mode" --compression-window-bits "$bits" >/dev/null 2>&1 &
  fi
  echo $!
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && return
    sleep 0.1
  done
}

load() {
  local mode=$1
  shift
  local deflate=()
  [ "$mode" = off ] || deflate=(--deflate)
  taskset -c 1 "$bin/uringws-load" --quiet "${deflate[@]}" --json "$json" "$@" >/dev/null 2>&1 || true
}

report() {
  python3 - "$json" "$@" <<'EOF'
import json, sys
path, what, who, mode, cpu_ticks, held_kb, peak_kb = sys.argv[1:8]
r = json.load(open(path))
b = r.get("bytes", {})
if what == "idle":
    alive = r["counts"].get("alive at end", 0)
    print(f"{what} {who} {mode}: alive {alive}, errors {r['errors']}, "
          f"held {int(held_kb) * 1024 / max(alive, 1):.0f} B/conn, peak {int(peak_kb) * 1024 / max(alive, 1):.0f} B/conn")
else:
    n = r["fanout"]["deliveries_received"] if what == "fanout" else r["counts"].get("messages echoed", 0)
    extra = ""
    if what == "fanout":
        extra = f", reach {r['fanout']['reach_percent']:.1f} %, p99 {r['latency'].get('delivery', {}).get('p99_ms')} ms"
    print(f"{what} {who} {mode}: {n} messages, errors {r['errors']}, "
          f"server {int(cpu_ticks) * 1e4 / max(n, 1):.2f} us/message, "
          f"wire {b.get('wire_received', 0) / max(n, 1):.1f} B/message to the client{extra}")
EOF
}

for round in $(seq "$rounds"); do
  for mode in off shared dedicated; do
    for who in uringws uws; do
      p=$(port)
      case $what in
        idle)
          pid=$(start "$who" "$mode" "$p" echo)
          base=$(kb "$pid" VmRSS)
          load "$mode" --connect-from 127.1.90.1-127.1.90.4 hold "ws://127.0.0.1:$p/echo" -n "$1" \
            --duration 14 --ping-interval 0 --first-message 512 &
          loader=$!
          sleep 13
          held=$(($(kb "$pid" VmRSS) - base))
          wait "$loader"
          peak=$(($(kb "$pid" VmHWM) - base))
          kill "$pid"; wait "$pid" 2>/dev/null || true
          report idle "$who" "$mode" 0 "$held" "$peak"
          ;;
        echo)
          pid=$(start "$who" "$mode" "$p" echo)
          c0=$(cpu "$pid")
          load "$mode" --workers 1 echo "ws://127.0.0.1:$p/echo" -n "$1" --duration "$2" --size 1024 --payload json
          c1=$(cpu "$pid")
          kill "$pid"; wait "$pid" 2>/dev/null || true
          report echo "$who" "$mode" $((c1 - c0)) 0 0
          ;;
        fanout)
          pid=$(start "$who" "$mode" "$p" room)
          path=/
          [ "$who" = uws ] && path=/broadcast
          c0=$(cpu "$pid")
          load "$mode" --connect-from 127.1.91.1-127.1.91.4 fanout "ws://127.0.0.1:$p$path" --mode broadcast \
            -n "$1" --publishers 1 --size 1024 --rate "$2" --duration "$3"
          c1=$(cpu "$pid")
          kill "$pid"; wait "$pid" 2>/dev/null || true
          report fanout "$who" "$mode" $((c1 - c0)) 0 0
          ;;
        *) echo "unknown measurement $what" >&2; exit 2 ;;
      esac
    done
  done
done
