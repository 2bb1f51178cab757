#!/usr/bin/env bash
# Server RSS per idle /ws subscriber: `uringws --workers 1` on CPU 0, 19,000
# subscribers spread over TOPICS topics (plus one publisher sending 1/s) from
# `uringws-load fanout --mode uringws` on CPU 1; prints RSS while they idle
# and the peak, minus RSS before, per connection.
#
#   benches/scripts/ws_subscriber_rss.sh [TOPICS] [SOURCE-BLOCK]
#
# SOURCE-BLOCK (1-254) picks fresh source addresses 127.9.BLOCK.1-4.
# Build first: cargo build --release -p uringws-server -p uringws-load
set -euo pipefail
cd "$(dirname "$0")/../.."
topics=${1:-1}
block=${2:-1}
subs=19000
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
taskset -c 0 ./target/release/uringws --listen "127.0.0.1:$port" --workers 1 --no-pin \
  --log-level warn --idle-timeout 0 --ping-interval 0 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
sleep 0.5
kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$server/status"; }
before=$(kib VmRSS)
taskset -c 1 ./target/release/uringws-load --quiet --workers 1 \
  --connect-from "127.9.$block.1-127.9.$block.4" --json /tmp/ws_subscriber_rss.json \
  fanout "ws://127.0.0.1:$port/ws" --mode uringws --publishers 1 --subscribers "$subs" \
  --topics "$topics" --rate 1 --duration 10 --drain 1 >/dev/null 2>&1 &
load=$!
sleep 9
during=$(kib VmRSS)
wait "$load" || true
peak=$(kib VmHWM)
python3 - "$before" "$during" "$peak" "$subs" <<'PY'
import json, sys
before, during, peak, subs = map(int, sys.argv[1:])
r = json.load(open("/tmp/ws_subscriber_rss.json"))
print(f"ready {r['fanout']['ready_at_start']}, reach {r['fanout']['reach_percent']} %, errors {r['errors']}")
print(f"per connection: {(during - before) * 1024 / (subs + 1):.0f} B idle, {(peak - before) * 1024 / (subs + 1):.0f} B peak")
PY
