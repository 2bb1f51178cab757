#!/usr/bin/env bash
# Whether a storm of refused upgrades slows a server's other clients more
# than the same storm aimed at another process on the same machine.
#
#   benches/scripts/abuse-control.sh [ROUNDS]
#
# Two `uringws` servers (two workers each, --max-connections-per-ip 50),
# each with 50 connections held from 127.0.0.1, so that further upgrades
# from there get 429. A probe (one connection from 127.0.0.2, closed-loop
# 64-byte echo for 8 s) measures the first server: alone, while
# `uringws-load churn` sends 1,000 upgrades a second from 127.0.0.1 to it,
# and while the same storm goes to the other server. The storm's work on
# the machine (connects, 429s, closes on loopback) is the same in both; only
# the second case makes the probed server handle it.
# Build first: cargo build --release -p uringws-server -p uringws-load
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/target/release
rounds=${1:-3}
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$out"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
p1=$(free_port); p2=$(free_port)
for p in "$p1" "$p2"; do
  "$bin/uringws" --workers 2 --listen "127.0.0.1:$p" --max-connections-per-ip 50 --log-level warn >/dev/null 2>&1 &
done
sleep 0.5
for p in "$p1" "$p2"; do
  "$bin/uringws-load" --quiet --workers 1 hold "ws://127.0.0.1:$p/echo" -n 50 --duration 1h >/dev/null 2>&1 &
done
sleep 1
probe() {
  "$bin/uringws-load" --quiet --workers 1 --connect-from 127.0.0.2 --json "$out/probe.json" \
    echo "ws://127.0.0.1:$p1/echo" -n 1 --duration 8s --size 64 >/dev/null 2>&1
  python3 -c "import json,sys; l=json.load(open(sys.argv[1]))['latency']['round trip']; print('p50 %.3f ms, p99 %.3f ms' % (l['p50_ms'], l['p99_ms']))" "$out/probe.json"
}
storm() {
  "$bin/uringws-load" --quiet --workers 1 --timeout 2s churn "ws://127.0.0.1:$1/echo" \
    -n 20000 --rate 1000 --hold-for 0s --duration 9s >/dev/null 2>&1 || true
}
for r in $(seq "$rounds"); do
  echo "round $r, alone:                  $(probe)"
  storm "$p1" & s=$!; sleep 0.5; echo "round $r, storm at the probed one: $(probe)"; wait $s
  storm "$p2" & s=$!; sleep 0.5; echo "round $r, storm at the other one:  $(probe)"; wait $s
done
