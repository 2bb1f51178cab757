#!/usr/bin/env python3
"""Soak: churn + echo + pub/sub against one `uringws` for a long time, at
about half of the box's peak message rate, and checks that nothing creeps.

    benches/scripts/soak.py                   # one hour
    benches/scripts/soak.py --duration 5m     # a quick look

The server runs pinned to --server-cpus and three `uringws-load` runs share
--load-cpus: an open-loop echo (most of the load), a pub/sub fan-out on
`/ws`, and connection churn on `/echo`. Every 10 s the server's RSS, open
fds and /metrics gauges are sampled to samples.csv in --out. At the end:

- RSS and open fds of the first and last tenth of the run (ten minutes of
  an hour) agree within 5 %;
- errors in the last tenth are no more than in the first;
- every message is accounted for: no echo missing or wrong (the load
  generator checks each), no fan-out delivery lost or duplicated, every
  churned connection opened and closed without error.

It prints a Markdown summary (for benches/RESULTS.md) and exits 1 when a
check fails. Build first: cargo build --release -p uringws-server -p uringws-load
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release")


def seconds(text):
    """`90`, `90s`, `5m`, `1h`, `1h30m`."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"not a duration: {text} (e.g. 90, 5m, 1h)")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(cpus, out, name, args):
    json_path = os.path.join(out, f"{name}.json")
    log = open(os.path.join(out, f"{name}.log"), "w")
    cmd = ["taskset", "-c", cpus, f"{BIN}/uringws-load", "--workers", "1",
           "--progress-interval", "60s", "--json", json_path] + args
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), json_path


def sample(pid, port):
    status = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()

    def gauge(name):
        return sum(float(l.rsplit(" ", 1)[1]) for l in page.splitlines()
                   if l.startswith(name + "{"))
    return rss, fds, gauge("uringws_connections"), gauge("uringws_queued_bytes")


def peak_echo_rate(port, cpus):
    """Closed-loop echo for 10 s: the rate this box gives, to take half of."""
    report = os.path.join("/tmp", f"uringws-soak-peak-{os.getpid()}.json")
    subprocess.run(["taskset", "-c", cpus, f"{BIN}/uringws-load", "--quiet", "--workers", "1",
                    "--json", report, "echo", f"ws://127.0.0.1:{port}/echo", "-n", "100",
                    "--duration", "10s", "--size", "64"],
                   stdout=subprocess.DEVNULL, check=True)
    data = json.load(open(report))
    os.unlink(report)
    return data["counts"]["messages echoed"] / data["duration_s"]


def mean(xs):
    return sum(xs) / max(len(xs), 1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=seconds, default=3600.0)
    p.add_argument("--server-cpus", default="0")
    p.add_argument("--load-cpus", default="1")
    p.add_argument("--fraction", type=float, default=0.5, help="of the peak echo rate")
    p.add_argument("--out", default=os.path.join(ROOT, "target", "soak"))
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for binary in ("uringws", "uringws-load"):
        if not os.access(f"{BIN}/{binary}", os.X_OK):
            sys.exit(f"{BIN}/{binary} not built: "
                     "cargo build --release -p uringws-server -p uringws-load")

    port = free_port()
    server_log = open(os.path.join(a.out, "server.log"), "w")
    server = subprocess.Popen(
        ["taskset", "-c", a.server_cpus, f"{BIN}/uringws", "--listen", f"127.0.0.1:{port}",
         "--workers", "1", "--no-pin", "--anonymous-publish", "--log-level", "info"],
        stdout=server_log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        peak = peak_echo_rate(port, a.load_cpus)
        budget = peak * a.fraction
        # Most of the budget in echo, a fifth in fan-out deliveries.
        echo_rate = int(budget * 0.8)
        subscribers, topics = 100, 4
        fan_rate = max(1, int(budget * 0.2 / (subscribers / topics)))
        churn_rate = 20
        d = f"{a.duration:.0f}s"
        url = f"ws://127.0.0.1:{port}"
        runs = {
            "echo": load(a.load_cpus, a.out, "echo", [
                "echo", f"{url}/echo", "-n", "200", "--duration", d, "--size", "64",
                "--message-rate", str(echo_rate)]),
            "fanout": load(a.load_cpus, a.out, "fanout", [
                "fanout", f"{url}/ws", "--mode", "uringws", "--publishers", "4",
                "--subscribers", str(subscribers), "--topics", str(topics),
                "--rate", str(fan_rate), "--duration", d]),
            "churn": load(a.load_cpus, a.out, "churn", [
                "churn", f"{url}/echo", "-n", str(int(churn_rate * a.duration)),
                "--rate", str(churn_rate), "--hold-for", "2s", "--duration", d]),
        }
        samples = []
        stop = threading.Event()

        def sampler():
            started = time.time()
            with open(os.path.join(a.out, "samples.csv"), "w") as csv:
                csv.write("t_s,rss_bytes,open_fds,connections,queued_bytes\n")
                while not stop.wait(10):
                    try:
                        s = (time.time() - started,) + sample(server.pid, port)
                    except (OSError, ValueError) as e:
                        print(f"sample failed: {e}", file=sys.stderr)
                        continue
                    samples.append(s)
                    csv.write(",".join(f"{x:.0f}" for x in s) + "\n")
                    csv.flush()

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        for name, (proc, _) in runs.items():
            proc.wait(timeout=a.duration + 300)
        stop.set()
        thread.join()
    finally:
        server.terminate()
        server.wait(timeout=60)

    reports = {name: json.load(open(path)) for name, (_, path) in runs.items()}
    tenth = max(1, len(samples) // 10)
    first, last = samples[:tenth], samples[-tenth:]
    checks = []

    def check(what, ok, detail):
        checks.append((what, ok, detail))

    if not samples:
        sys.exit("no samples: run for longer than 10 s")
    # Open fds are the process's own (listeners, rings, eventfds): the
    # connections are direct descriptors, counted by the gauge instead.
    # A dozen fds move by one now and then: allow that.
    for i, what, slack in ((1, "RSS", 0), (2, "open fds", 1), (3, "connections", 0)):
        f, l = mean([s[i] for s in first]), mean([s[i] for s in last])
        ok = abs(l - f) <= 0.05 * f + slack
        check(f"{what}: first vs last tenth within 5 %", ok,
              f"{f:,.0f} → {l:,.0f} ({(l - f) / max(f, 1) * 100:+.1f} %)")
    queued = max(s[4] for s in last)
    check("queued bytes stay bounded", queued <= 200 * (1 << 20),
          f"at most {queued:,.0f} in the last tenth")
    for name, r in reports.items():
        series = r.get("series", [])
        cut = max(1, len(series) // 10)
        early = sum(s["errors"] for s in series[:cut])
        late = sum(s["errors"] for s in series[-cut:])
        check(f"{name}: errors do not grow", late <= early, f"first tenth {early}, last {late}")
        check(f"{name}: no errors", not r["errors"], json.dumps(r["errors"]) or "none")
    echo = reports["echo"]["counts"].get("messages echoed", 0)
    check("echo: every message echoed intact", echo > 0 and not reports["echo"]["errors"],
          f"{echo:,} echoed")
    fan = reports["fanout"]["fanout"]
    check("fan-out: every delivery received once",
          fan["lost"] == 0 and fan["duplicates"] == 0
          and fan["deliveries_received"] == fan["deliveries_expected"],
          f"{fan['deliveries_received']:,} of {fan['deliveries_expected']:,}, "
          f"lost {fan['lost']}, duplicates {fan['duplicates']}")
    churn = reports["churn"]["counts"]
    opened, closed = churn.get("connections opened", 0), churn.get("connections closed", 0)
    check("churn: connections opened and closed", opened > 0 and opened - closed <= churn_rate * 3,
          f"{opened:,} opened, {closed:,} closed")

    print(f"## Soak, {a.duration / 60:.0f} min ({time.strftime('%Y-%m-%d')})\n")
    print(f"`benches/scripts/soak.py --duration {a.duration:.0f}`: server on CPU "
          f"{a.server_cpus}, load on CPU {a.load_cpus}. Peak closed-loop echo "
          f"{peak:,.0f} msg/s; load: echo {echo_rate:,} msg/s open loop on 200 "
          f"connections, fan-out 4 publishers × {fan_rate}/s to {subscribers} "
          f"subscribers on {topics} topics, churn {churn_rate} connections/s held 2 s.\n")
    print("| check | result | |\n|---|---|---|")
    for what, ok, detail in checks:
        print(f"| {what} | {'ok' if ok else 'FAILED'} | {detail} |")
    sys.exit(0 if all(ok for _, ok, _ in checks) else 1)


if __name__ == "__main__":
    main()
