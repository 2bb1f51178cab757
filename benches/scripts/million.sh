#!/usr/bin/env bash
# One uringws process holding a million WebSocket connections on one box,
# then one publish that must reach every one of them.
#
#   benches/scripts/million.sh [CONNECTIONS] [WORKERS]
#
# The server (`uringws`, WORKERS workers, all on CPU 0) and the load
# generator (`uringws-load fanout`, on CPU 1) each stay under a 20,000
# open-files limit: both hold their sockets as io_uring direct descriptors,
# and each ring's table holds at most that limit, so it takes
# CONNECTIONS / 19,744 rings a side (64 by default: up to 1,263,616). The
# clients connect from 127.0.1.1 up, with no more connections per source
# address than 90 % of half its ephemeral ports (12,700 with Linux's
# default range, 32768-60999): connect() takes the even ports of the range
# first, and once those are gone each connect searches the odd ones one by
# one. Measured with 25,000 per address: connecting stalled at 14,100 per
# address, the load generator's core busy in that search.
#
# Every connection subscribes to one topic over /ws (`uringws.v1`); once
# all are acked they are held idle for HOLD (default 60 s) while the server
# pings each one silent for PING seconds (default 45); a connection that
# does not answer within as long again is closed by the server, and the
# load generator counts it. (The load generator, on one core, reads a
# million-delivery publish about 20 s behind; a pong later than PING is a
# timeout, so PING stays above that.)
# Then one 64 B message is published, and the run fails unless it reaches
# every subscriber (DRAIN, default 60 s, to arrive).
#
# Prints: time to connect and subscribe them all, server RSS per
# connection while held (everything the process has, fixed costs
# included, divided by the connections), kernel slab per connection, the
# pings the server sent and the connections it closed, and the publish's
# delivery p50 / p99 / max. Needs ~12 GiB free for a million (kernel
# sockets ≈ 9 KiB a connection pair, the load generator ≈ 1.8 KiB a
# connection).
#
# Build first: cargo build --release -p uringws-server -p uringws-load
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-1000000}
workers=${2:-64}
hold=${HOLD:-60}
ping=${PING:-45}
drain=${DRAIN:-60}
port=${PORT:-9700}
admin=$((port + 1))
read -r low high </proc/sys/net/ipv4/ip_local_port_range
per_source=$(( (high - low + 1) / 2 * 9 / 10 ))
sources=$(( (n + per_source - 1) / per_source ))
if (( sources > 250 )); then
  echo "million.sh: at most $((250 * per_source)) connections (source addresses 127.0.1.1-250, $per_source each)" >&2
  exit 2
fi
need_kib=$(( n * 12 ))
avail_kib=$(awk '/MemAvailable/ { print $2 }' /proc/meminfo)
if (( avail_kib < need_kib )); then
  echo "million.sh: $((avail_kib >> 20)) GiB available, $((need_kib >> 20)) GiB needed for $n connections" >&2
  exit 2
fi
out=${OUT:-$(mktemp -d)}

taskset -c 0 ./target/release/uringws --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
  --workers "$workers" --ring-entries 256 --recv-buffers 32 --recv-buffer-size 4096 \
  --ping-interval "$ping" --anonymous-publish --log-level warn >"$out/server.log" 2>&1 &
server=$!
load=
cleanup() {
  [[ -n $load ]] && kill "$load" 2>/dev/null || true
  kill "$server" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do
  curl -sf "127.0.0.1:$admin/health" >/dev/null && break
  sleep 0.1
done
kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$server/status"; }
slab() { awk '$1 == "Slab:" { print $2 }' /proc/meminfo; }
metric() { curl -sf "127.0.0.1:$admin/metrics" | awk -v m="$1" '$1 ~ "^"m"[{ ]" { s += $2 } END { print s + 0 }'; }
rss_before=$(kib VmRSS)
slab_before=$(slab)

started=$(date +%s.%N)
taskset -c 1 ./target/release/uringws-load --workers "$workers" \
  --connect-from "127.0.1.1-127.0.1.$sources" --progress-interval 10s --json "$out/load.json" \
  fanout "ws://127.0.0.1:$port/ws" --mode uringws --publishers 1 --subscribers "$n" \
  --rate 1 --duration 1s --hold "${hold}s" --drain "${drain}s" \
  --ready-timeout 900s --timeout 60s >"$out/load.txt" 2>&1 &
load=$!

# Connected and subscribed: every subscriber's connection open on the
# server (plus the publisher's).
while (( $(metric uringws_subscriptions) < n )); do
  kill -0 "$load" 2>/dev/null || { echo "million.sh: the load generator ended early" >&2; cat "$out/load.txt" >&2; exit 1; }
  sleep 1
done
ready=$(date +%s.%N)
# Held: sample in the middle of the hold, when the storm's buffers have
# been given back and the server's pings are going.
sleep $(( hold / 2 ))
rss_held=$(kib VmRSS)
slab_held=$(slab)
open_held=$(metric uringws_connections)
# The server's counts just before the load generator's drain ends: once it
# stops reading, the connections it has not closed yet go unanswered.
sleep $(( hold - hold / 2 + drain - 3 ))
pings=$(metric uringws_pings_sent_total)
ping_timeouts=$(metric uringws_ping_timeouts_total)
idle_timeouts=$(metric uringws_idle_timeouts_total)
exhaustions=$(metric uringws_recv_buffer_exhaustions_total)
open_end=$(metric uringws_connections)
set +e
wait "$load"
status=$?
set -e
load=
rss_peak=$(kib VmHWM)

python3 - "$out/load.json" "$n" "$workers" "$started" "$ready" "$rss_before" "$rss_held" \
  "$rss_peak" "$slab_before" "$slab_held" "$open_held" "$open_end" "$pings" "$ping_timeouts" \
  "$idle_timeouts" "$exhaustions" <<'PY'
import json, sys
(path, n, workers, started, ready, rss0, rss_held, rss_peak, slab0, slab_held, open_held,
 open_end, pings, ping_to, idle_to, exhaustions) = sys.argv[1:]
n, workers = int(n), int(workers)
r = json.load(open(path))
f = r["fanout"]
conns = n + 1
lat = r["latency"].get("delivery", {})
print(f"connections          {conns:,} ({workers} workers a side)")
print(f"connect + subscribe  {float(ready) - float(started):.0f} s")
print(f"open while held      {int(open_held):,}, after the publish {int(open_end):,}")
print(f"server RSS           {int(rss_held) * 1024 / conns:.0f} B per connection held, all of it "
      f"({int(rss_held) >> 10} MiB; {int(rss0) >> 10} MiB before the first), "
      f"peak {int(rss_peak) * 1024 / conns:.0f} B")
print(f"kernel slab          {(int(slab_held) - int(slab0)) * 1024 / conns:.0f} B per connection (both ends)")
print(f"server pings         {int(pings):,} sent, {int(ping_to)} ping timeouts, {int(idle_to)} idle timeouts; receive ring ran dry {int(exhaustions):,} times")
print(f"publish              reached {f['deliveries_received']:,} of {f['deliveries_expected']:,} "
      f"subscribers; lost {f['lost']}, dropped subscribers {f['dead_subscribers']}")
if lat:
    print(f"delivery             p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms")
print(f"errors               {r['errors'] or 'none'}")
PY
exit "$status"
