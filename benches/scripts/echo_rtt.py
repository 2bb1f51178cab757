#!/usr/bin/env python3
"""Closed-loop echo: N connections, each with one 64-byte text message in
flight, for D seconds; prints the round trips completed. Used with
`strace -c -f -p SERVER` to count server syscalls per round trip until
`uringws-load echo` exists (issue 5).

    echo_rtt.py --port 9001 --connections 100 --seconds 5
"""
import argparse, asyncio, base64, os, struct, time


def frame(payload):
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


async def client(host, port, size, deadline, counts):
    r, w = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    w.write((f"GET /echo HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await r.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = b"x" * size
    msg = frame(payload)
    n = 0
    while time.monotonic() < deadline:
        w.write(msg)
        hdr = await r.readexactly(2)
        got = await r.readexactly(hdr[1] & 0x7F)
        assert got == payload
        n += 1
    counts.append(n)
    w.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--size", type=int, default=64)
    a = p.parse_args()
    counts = []
    deadline = time.monotonic() + a.seconds
    await asyncio.gather(*(client(a.host, a.port, a.size, deadline, counts) for _ in range(a.connections)))
    print(f"round trips: {sum(counts)} over {a.connections} connections in {a.seconds} s")


asyncio.run(main())
