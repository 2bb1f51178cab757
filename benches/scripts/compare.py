#!/usr/bin/env python3
"""Side-by-side runs: uringws and peer echo servers under the same load.

Each server runs pinned to one core (default CPU 0, one worker/thread), the
load generator (`uringws-load`) pinned to another (CPU 1). Servers take
turns within each round, in an order that rotates from round to round (the
first after another case runs slower), so slow drifts of a shared machine
hit all of them alike; the table shows medians over rounds and ratios against uringws.
Server CPU time comes from /proc/PID/stat (user + system), so a client
that saturates before the server does not hide the server's cost.

    benches/scripts/compare.py [--rounds 3] [--seconds 5] [--server-cpus 0] [--load-cpus 1]
        [--echo 64x1,64x100,64x1000,16384x1,16384x100,16384x1000] [--hold 19000]
        [--fanout 1000x100,10000x10] [--baseline OLD_BUILD/uringws]
        [--baseline-room OLD_BUILD/examples/room]

Fan-out (`--fanout CONNSxRATE`) runs `uringws-load fanout --mode broadcast`
against the servers with a broadcast endpoint: one publisher among CONNS
connections sends RATE 64-byte messages per second, each expected on every
other connection. uringws serves it with the engine's `room` example (a
topic every connection joins; publish to others), uws and uws-cpp on
`/broadcast`.

uws-cpp is C++ uWebSockets (epoll), uws-cpp-uring the same on uSockets'
io_uring backend, both built by benches/peers/uws-cpp/build.sh; the
io_uring one runs only the cases within its LIMITS (64 B, one
connection).

With --tls CERT.pem,KEY.pem every run is over wss:// (the load generator
does not check the certificate: --insecure), against the servers that
serve TLS: uringws (its TLS listener on the measured port) and
tokio-tungstenite over tokio-rustls, with the same rustls and provider.

Build first: cargo build --release -p uringws-server -p uringws-peers -p uringws-load
    && cargo build --release -p uringws-engine --example room
The uws peer (uWebSockets.js under Node) also needs `npm ci` in benches/peers/uws.
A server that is not built or installed is skipped, with a message saying so.
"""
import argparse, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release")
TICK = os.sysconf("SC_CLK_TCK")


UWS = os.path.join(ROOT, "benches", "peers", "uws")
# (certificate, key) PEM files when the runs are over wss://.
TLS = None
# uringws-load's workers (threads, each with its own ring).
LOAD_WORKERS = 1


def uringws(binary, threads):
    return [binary, "--workers", str(threads), "--no-pin", "--log-level", "warn",
            "--idle-timeout", "0", "--ping-interval", "0"]


def tls_servers(threads, baseline=None):
    cert, key = TLS
    files = ["--tls-cert", cert, "--tls-key", key]
    # uringws's plain listener goes to a port of its own; start() puts the
    # TLS one on the measured port.
    table = {"uringws": uringws(f"{BIN}/uringws", threads) + files}
    if baseline:
        table["uringws-baseline"] = uringws(os.path.abspath(baseline), threads) + files
    return table | {
        "tokio-tungstenite+rustls": [f"{BIN}/peer-tungstenite-tls", "--threads", str(threads)] + files,
        "uws-cpp": [f"{BIN}/peer-uws-cpp", "--threads", str(threads)] + files,
    }


def url(port, path="/echo"):
    return f"{'wss' if TLS else 'ws'}://127.0.0.1:{port}{path}"


def servers(threads, baseline=None):
    if TLS:
        return tls_servers(threads, baseline)
    table = {"uringws": uringws(f"{BIN}/uringws", threads)}
    if baseline:
        # An earlier build of uringws, for before/after in the same run.
        table["uringws-baseline"] = uringws(os.path.abspath(baseline), threads)
    return table | {
        "tokio-tungstenite": [f"{BIN}/peer-tungstenite", "--threads", str(threads)],
        "fastwebsockets": [f"{BIN}/peer-fastwebsockets", "--threads", str(threads)],
        "tokio-websockets": [f"{BIN}/peer-tokio-websockets", "--threads", str(threads)],
        "tokio-uring": [f"{BIN}/peer-tokio-uring", "--threads", str(threads)],
        # C++ uWebSockets itself (epoll), built by benches/peers/uws-cpp/build.sh.
        "uws-cpp": [f"{BIN}/peer-uws-cpp", "--threads", str(threads)],
        # The same on uSockets' io_uring backend, where it works (LIMITS).
        "uws-cpp-uring": [f"{BIN}/peer-uws-cpp-uring", "--threads", str(threads)],
        # uWebSockets' C++ core under Node.js (uWebSockets.js): one JS call
        # per message on top of what C++ uWebSockets costs.
        "uws": ["node", os.path.join(UWS, "server.js"), "--threads", str(threads)],
    }


# Servers that work only below a message size and a connection count:
# uSockets' io_uring backend is a prototype (4,096 connections at most).
# Measured here (benches/RESULTS.md): at 64 B × 100 and × 1000 it echoed a
# tenth of what the epoll build did, with errors; half the upgrades failed
# at 1 KiB; nothing was echoed at 4 KiB. So it runs at one connection.
LIMITS = {"uws-cpp-uring": (64, 1)}


def within_limits(name, size, conns):
    max_size, max_conns = LIMITS.get(name, (None, None))
    return max_size is None or (size <= max_size and conns <= max_conns)


def broadcasters(threads, baseline_room=None):
    """Servers with a broadcast endpoint: command and path."""
    table = {
        "uringws": ([f"{BIN}/examples/room", "--threads", str(threads)], "/"),
        "uws-cpp": ([f"{BIN}/peer-uws-cpp", "--threads", str(threads)], "/broadcast"),
        "uws": (["node", os.path.join(UWS, "server.js"), "--threads", str(threads)], "/broadcast"),
    }
    if baseline_room:
        table["uringws-baseline"] = ([os.path.abspath(baseline_room), "--threads", str(threads)], "/")
    if threads > 1:
        # Its threads publish to their own subscribers only.
        del table["uws-cpp"]
    return table


def missing(cmd):
    """Why a server cannot be started here, or None if it can."""
    if cmd[0] == "node":
        if not shutil.which("node"):
            return "node is not on PATH"
        if not os.path.exists(os.path.join(UWS, "node_modules", "uwebsockets", "package.json")):
            return f"not installed: run `npm ci` in {os.path.relpath(UWS)}"
        return None
    if "/peer-uws-cpp" in cmd[0] and not os.access(cmd[0], os.X_OK):
        return "not built: run benches/peers/uws-cpp/build.sh"
    if not os.access(cmd[0], os.X_OK):
        return (f"{os.path.relpath(cmd[0])} not built: cargo build --release "
                "-p uringws-server -p uringws-peers -p uringws-load, and "
                "cargo build --release -p uringws-engine --example room")
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_times(pid):
    """User and system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def cpu_s(pid):
    return sum(cpu_times(pid))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(cmd, cpus, port):
    listen = ["--listen", f"127.0.0.1:{port}"]
    # uringws (any build of it, the one flag only it takes) serves TLS on
    # its TLS listener; the peers' own listener is their TLS one.
    if TLS and "--workers" in cmd:
        listen = ["--listen", f"127.0.0.1:{free_port()}", "--tls-listen", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(["taskset", "-c", cpus] + cmd + listen,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{cmd[0]} did not start")


def stop(proc):
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def load(cpus, args, timeout):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = ["taskset", "-c", cpus, f"{BIN}/uringws-load", "--quiet", "--workers", str(LOAD_WORKERS),
               "--json", out.name] + (["--insecure"] if TLS else []) + args
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout)
        try:
            return json.load(open(out.name))
        except ValueError:
            return None


def echo_run(name, cmd, a, size, conns):
    port = free_port()
    proc = start(cmd, a.server_cpus, port)
    try:
        user0, sys0 = cpu_times(proc.pid)
        report = load(a.load_cpus, ["echo", url(port), "-n", str(conns),
                                    "--duration", str(a.seconds), "--size", str(size), "--binary"],
                      a.seconds + 60)
        user1, sys1 = cpu_times(proc.pid)
    finally:
        stop(proc)
    if not report:
        return None
    n = report["counts"].get("messages echoed", 0)
    rt = report["latency"].get("round trip", {})
    # Kernel time is most of it and the noisiest; user time is what the
    # server's own code costs.
    user, cpu = user1 - user0, (user1 - user0) + (sys1 - sys0)
    return {"msgs_s": n / report["duration_s"], "cpu_us_per_msg": cpu * 1e6 / max(n, 1),
            "user_us_per_msg": user * 1e6 / max(n, 1),
            "p99_ms": rt.get("p99_ms"), "errors": sum(report["errors"].values()),
            "client_cpu": report["client_cpu"]["user_s"] + report["client_cpu"]["system_s"]}


def hold_sources(conns):
    """Source addresses for `conns` connections, ~5,000 per address.

    The same addresses serve every run: the load generator binds with
    IP_BIND_ADDRESS_NO_PORT, so the port is chosen at connect time for the
    whole 4-tuple, and ports that earlier runs (towards other server ports)
    left in TIME_WAIT do not slow it down.
    """
    n = max(4, -(-conns // 5000))
    if n > 253:
        sys.exit(f"{conns} connections need more source addresses than 127.0.0.2-127.0.0.254")
    return f"127.0.0.2-127.0.0.{1 + n}"


def hold_run(name, cmd, a, conns):
    port = free_port()
    proc = start(cmd, a.server_cpus, port)
    try:
        before = rss_kib(proc.pid)
        report = load(a.load_cpus, ["--connect-from", hold_sources(conns), "hold",
                                    url(port), "-n", str(conns),
                                    "--duration", str(a.hold_seconds), "--ping-interval", "0"],
                      a.hold_seconds + 120)
        # The load generator has ended and closed its sockets by now; read
        # the peak the server reached while holding them.
        with open(f"/proc/{proc.pid}/status") as f:
            hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    finally:
        stop(proc)
    if not report:
        return None
    alive = report["counts"].get("alive at end", 0)
    # Connections not opened by the end are in no error count: show them.
    return {"alive": alive, "opened": report["counts"].get("connections opened", 0),
            "errors": report["errors"], "bytes_per_conn": (hwm - before) * 1024 / max(alive, 1)}


def fanout_run(name, cmd, path, a, conns, rate):
    port = free_port()
    proc = start(cmd, a.server_cpus, port)
    try:
        cpu0 = cpu_s(proc.pid)
        report = load(a.load_cpus, ["--connect-from", hold_sources(conns), "fanout",
                                    url(port, path), "--mode", "broadcast",
                                    "-n", str(conns), "--publishers", "1", "--size", "64",
                                    "--rate", str(rate), "--duration", str(a.seconds)],
                      a.seconds + 120)
        cpu = cpu_s(proc.pid) - cpu0
    finally:
        stop(proc)
    if not report or "fanout" not in report:
        return None
    f = report["fanout"]
    lat = report["latency"].get("delivery", {})
    got = f["deliveries_received"]
    return {"deliveries_s": f["deliveries_per_s"], "reach": f["reach_percent"],
            "cpu_us_per_delivery": cpu * 1e6 / max(got, 1), "p50_ms": lat.get("p50_ms"),
            "p99_ms": lat.get("p99_ms"), "errors": sum(report["errors"].values()),
            "client_cpu": report["client_cpu"]["user_s"] + report["client_cpu"]["system_s"]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--server-cpus", default="0")
    p.add_argument("--load-cpus", default="1")
    p.add_argument("--load-workers", type=int, default=1,
                   help="uringws-load workers: more than one when the server has more cores")
    p.add_argument("--echo", default="64x1,64x100,64x1000,16384x1,16384x100,16384x1000")
    p.add_argument("--hold", type=int, default=19000)
    p.add_argument("--hold-seconds", type=float, default=8)
    p.add_argument("--fanout", default="", help="CONNSxRATE,... broadcast fan-out cases")
    p.add_argument("--only", default="", help="comma-separated server names, e.g. uringws,uws")
    p.add_argument("--baseline-room", default="", help="another build of the engine's room "
                   "example, measured in the fan-out cases as uringws-baseline")
    p.add_argument("--baseline", default="", help="another uringws binary (an earlier build), "
                   "measured as uringws-baseline")
    p.add_argument("--tls", default="", metavar="CERT,KEY",
                   help="PEM certificate and key: every run over wss:// (echo and hold)")
    a = p.parse_args()
    global TLS, LOAD_WORKERS
    LOAD_WORKERS = a.load_workers
    if a.tls:
        cert, _, key = a.tls.partition(",")
        if not (os.path.exists(cert) and os.path.exists(key)):
            sys.exit("--tls wants CERT.pem,KEY.pem, both existing files")
        TLS = (os.path.abspath(cert), os.path.abspath(key))
        if a.fanout:
            sys.exit("--tls: fan-out runs are plain only")
    fan_table = broadcasters(a.threads, a.baseline_room)
    if a.only:
        keep = a.only.split(",") + (["uringws-baseline"] if a.baseline_room else [])
        fan_table = {k: v for k, v in fan_table.items() if k in keep}
    for name, (cmd, _) in list(fan_table.items()):
        why = missing(cmd)
        if why and a.fanout:
            print(f"skipping {name} fan-out: {why}", file=sys.stderr)
            del fan_table[name]
    fan_cases = [tuple(int(x) for x in c.split("x")) for c in a.fanout.split(",") if c]
    table = servers(a.threads, a.baseline)
    if a.only:
        # A baseline asked for is measured whatever --only names.
        keep = a.only.split(",") + (["uringws-baseline"] if a.baseline else [])
        table = {k: v for k, v in table.items() if k in keep}
    for name, cmd in list(table.items()):
        why = missing(cmd)
        if why:
            print(f"skipping {name}: {why}", file=sys.stderr)
            del table[name]
    if not os.access(f"{BIN}/uringws-load", os.X_OK):
        sys.exit(f"{os.path.relpath(BIN)}/uringws-load not built: cargo build --release -p uringws-load")
    cases = [tuple(int(x) for x in c.split("x")) for c in a.echo.split(",") if c]
    results = {}
    def in_turn(servers, r):
        # The server that runs first after another case pays for what that
        # one left behind (measured: 14 % on 16 KiB echo): rotate who does.
        items = list(servers.items())
        k = r % len(items) if items else 0
        return items[k:] + items[:k]

    for r in range(a.rounds):
        for size, conns in cases:
            for name, cmd in in_turn(table, r):
                if not within_limits(name, size, conns):
                    continue
                res = echo_run(name, cmd, a, size, conns)
                results.setdefault(("echo", size, conns, name), []).append(res)
                print(f"round {r + 1} echo {size} B x {conns}: {name}: {res}", file=sys.stderr)
        for conns, rate in fan_cases:
            for name, (cmd, path) in in_turn(fan_table, r):
                res = fanout_run(name, cmd, path, a, conns, rate)
                results.setdefault(("fanout", conns, rate, name), []).append(res)
                print(f"round {r + 1} fanout {conns} x {rate}/s: {name}: {res}", file=sys.stderr)
        if a.hold:
            for name, cmd in in_turn(table, r):
                if not within_limits(name, 0, a.hold):
                    continue
                res = hold_run(name, cmd, a, a.hold)
                results.setdefault(("hold", a.hold, 0, name), []).append(res)
                print(f"round {r + 1} hold {a.hold}: {name}: {res}", file=sys.stderr)

    def med(key, field):
        vals = [x[field] for x in results.get(key, []) if x and x.get(field) is not None]
        return statistics.median(vals) if vals else None

    print(f"| case | server | msgs/s | vs uringws | server CPU µs/msg | vs uringws "
          f"| of it user µs/msg | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size, conns in cases:
        base = ("echo", size, conns, "uringws")
        for name in table:
            key = ("echo", size, conns, name)
            if key not in results:
                continue  # not run: outside the server's LIMITS
            m, c, p99 = med(key, "msgs_s"), med(key, "cpu_us_per_msg"), med(key, "p99_ms")
            u = med(key, "user_us_per_msg")
            bm, bc = med(base, "msgs_s"), med(base, "cpu_us_per_msg")
            errs = sum(x["errors"] for x in results.get(key, []) if x)
            ratio = lambda x, y: f"{x / y:.2f}×" if x and y else "–"
            fmt = lambda x, f: f.format(x) if x is not None else "–"
            print(f"| echo {size} B × {conns} | {name} | {fmt(m, '{:,.0f}')} | {ratio(m, bm)} | "
                  f"{fmt(c, '{:.2f}')} | {ratio(c, bc)} | {fmt(u, '{:.2f}')} | "
                  f"{fmt(p99, '{:.2f}')} | {errs} |")
    if fan_cases:
        print()
        print("| case | server | deliveries/s | reach | server CPU µs/delivery | vs uringws "
              "| p50 ms | p99 ms | errors |")
        print("|---|---|---|---|---|---|---|---|---|")
        for conns, rate in fan_cases:
            base = med(("fanout", conns, rate, "uringws"), "cpu_us_per_delivery")
            for name in fan_table:
                key = ("fanout", conns, rate, name)
                d, reach = med(key, "deliveries_s"), med(key, "reach")
                c, p50, p99 = med(key, "cpu_us_per_delivery"), med(key, "p50_ms"), med(key, "p99_ms")
                errs = sum(x["errors"] for x in results.get(key, []) if x)
                fmt = lambda x, f: f.format(x) if x is not None else "–"
                print(f"| fan-out {conns} conns × {rate}/s | {name} | {fmt(d, '{:,.0f}')} | "
                      f"{fmt(reach, '{:.2f} %')} | {fmt(c, '{:.3f}')} | "
                      f"{f'{c / base:.2f}×' if c and base else '–'} | {fmt(p50, '{:.2f}')} | "
                      f"{fmt(p99, '{:.2f}')} | {errs} |")
    if a.hold:
        print()
        print("| case | server | alive | RSS per idle connection | vs uringws |")
        print("|---|---|---|---|---|")
        base = med(("hold", a.hold, 0, "uringws"), "bytes_per_conn")
        for name in table:
            key = ("hold", a.hold, 0, name)
            if key not in results:
                continue
            b, alive = med(key, "bytes_per_conn"), med(key, "alive")
            print(f"| hold {a.hold} | {name} | {f'{alive:.0f}' if alive is not None else '–'} | "
                  f"{f'{b:,.0f} B' if b is not None else '–'} | {f'{b / base:.1f}×' if b and base else '–'} |")


if __name__ == "__main__":
    main()
