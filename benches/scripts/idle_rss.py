#!/usr/bin/env python3
"""Server RSS per idle upgraded WebSocket connection.

Starts nothing itself: give it the PID and address of a running server.
Opens upgraded connections from several client processes (each process
stays under the 20,000 open-files cap, source addresses 127.0.0.2.. spread
the ephemeral ports) in two equal steps, and reports the server's RSS after
each. The cost per connection is the growth between the steps divided by
the connections added, so fixed costs that the first connections touch
(receive buffers, allocator arenas) are not counted per connection; the
growth from the start is printed too. Until `uringws-load hold` exists (issue
5) this is the measurement behind benches/RESULTS.md.

    idle_rss.py --pid PID --port 9001 --connections 20000 [--procs 4]
"""
import argparse, asyncio, base64, multiprocessing as mp, os, sys, time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def hold(host, port, count, source, ready, go, release):
    req = (f"GET /echo HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n")
    conns, failed = [], 0
    sem = asyncio.Semaphore(200)

    async def one():
        nonlocal failed
        async with sem:
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection(host, port, local_addr=(source, 0)), 10)
                key = base64.b64encode(os.urandom(16)).decode()
                w.write((req + f"Sec-WebSocket-Key: {key}\r\n\r\n").encode())
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
                if not head.startswith(b"HTTP/1.1 101"):
                    raise RuntimeError(head[:40])
                conns.append((r, w))
            except Exception:
                failed += 1

    loop = asyncio.get_running_loop()
    half = count // 2
    await asyncio.gather(*(one() for _ in range(half)))
    ready.put((len(conns), failed))
    await loop.run_in_executor(None, go.wait)
    await asyncio.gather(*(one() for _ in range(count - half)))
    ready.put((len(conns), failed))
    await loop.run_in_executor(None, release.wait)
    for _, w in conns:
        w.close()


def worker(host, port, count, source, ready, go, release):
    asyncio.run(hold(host, port, count, source, ready, go, release))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, default=20000)
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--settle", type=float, default=3.0)
    a = p.parse_args()
    start = rss_kib(a.pid)
    ready, go, release = mp.Queue(), mp.Event(), mp.Event()
    per = a.connections // a.procs
    procs = [mp.Process(target=worker, args=(a.host, a.port, per, f"127.0.0.{i + 2}", ready, go, release))
             for i in range(a.procs)]
    t0 = time.time()
    for pr in procs:
        pr.start()

    def step():
        held = failed = 0
        for _ in procs:
            ok, bad = ready.get(timeout=300)
            held, failed = held + ok, failed + bad
        time.sleep(a.settle)
        return held, failed, rss_kib(a.pid)

    half, _, mid = step()
    go.set()
    held, failed, end = step()
    took = time.time() - t0
    release.set()
    for pr in procs:
        pr.join(timeout=30)
    print(f"held {held} connections ({failed} failed) in {took:.1f} s")
    print(f"server RSS: start {start} KiB, {half} connections {mid} KiB, {held} connections {end} KiB")
    print(f"per connection: {(end - mid) * 1024 / max(held - half, 1):.0f} B (second step), "
          f"{(end - start) * 1024 / max(held, 1):.0f} B (from start, fixed costs included)")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
