#!/usr/bin/env python3
"""wss:// from Python's `websockets`, with an `ssl` context that trusts a
test CA made here (openssl), against the release `uringws` binary.

    python3 server/e2e/wss_python.py [path/to/uringws]

Installs the pinned `websockets` into a virtual environment under
${XDG_CACHE_HOME:-~/.cache}/uringws/ on first use. Checks: the TLS
handshake (TLS 1.3 and 1.2, ALPN http/1.1), text and binary echoes, a
clean close with the code sent, and that a context without the CA is
refused. Then permessage-deflate, which `websockets` offers by default,
over ws:// and wss://: agreed (the 101's header), messages compressed both
ways (the server's counters), and a small compressed message that
inflates past the server's message limit closed with 1009. Exits 1 on a
failure; every wait is bounded.
"""

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

WEBSOCKETS = "15.0.1"
WAIT = 10
# The servers' message limit; the bomb inflates to 16 times it.
MAX_MESSAGE = 1 << 20
SHARED_ANSWER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def venv_python():
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    venv = Path(cache) / "uringws" / "websockets-venv"
    python = venv / "bin" / "python"
    stamp = venv / f"websockets-{WEBSOCKETS}"
    if not stamp.exists():
        print(f"wss_python: installing websockets=={WEBSOCKETS} into {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             f"websockets=={WEBSOCKETS}"],
            check=True,
        )
        stamp.touch()
    return python


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(dir):
    """A CA and a certificate for localhost it signed."""
    ca_key, ca, key, csr, cert = (dir / n for n in ("ca.key", "ca.pem", "key.pem", "req.csr", "cert.pem"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "1",
            "-subj", "/CN=uringws test CA")
    openssl("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    ext = dir / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile", str(ext))
    return ca, cert, key


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def check(port, ca):
    import websockets

    url = f"wss://localhost:{port}/echo"
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        context = ssl.create_default_context(cafile=str(ca))
        context.minimum_version = context.maximum_version = version
        context.set_alpn_protocols(["http/1.1"])
        async with websockets.connect(url, ssl=context, open_timeout=WAIT, close_timeout=WAIT) as ws:
            tls = ws.transport.get_extra_info("ssl_object")
            assert tls.version() == {ssl.TLSVersion.TLSv1_3: "TLSv1.3",
                                     ssl.TLSVersion.TLSv1_2: "TLSv1.2"}[version], tls.version()
            assert tls.selected_alpn_protocol() == "http/1.1", tls.selected_alpn_protocol()
            for message in ("hello over wss", b"\x00\x01binary" * 1000, "é" * 40000):
                await ws.send(message)
                echo = await asyncio.wait_for(ws.recv(), WAIT)
                assert echo == message, f"echo of {type(message).__name__} differs"
            await ws.close(code=1000, reason="done")
            assert ws.close_code == 1000, ws.close_code
        print(f"wss_python: {tls.version()} echo and close ok")
    # A context that does not trust the test CA is refused by the client.
    try:
        async with websockets.connect(url, ssl=ssl.create_default_context(), open_timeout=WAIT):
            raise AssertionError("connected without trusting the CA")
    except ssl.SSLCertVerificationError:
        print("wss_python: an untrusted certificate is refused")


def metric(port, name):
    """The sum over workers of a counter on the server's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=WAIT) as r:
        lines = r.read().decode().splitlines()
    return sum(float(l.split()[-1]) for l in lines if l.startswith(name + "{") or l.startswith(name + " "))


async def check_deflate(plain, tls, ca):
    import websockets

    context = ssl.create_default_context(cafile=str(ca))
    before = metric(plain, "uringws_deflate_messages_in_total"), metric(plain, "uringws_deflate_messages_out_total")
    for url, ssl_context in ((f"ws://127.0.0.1:{plain}/echo", None), (f"wss://localhost:{tls}/echo", context)):
        async with websockets.connect(url, ssl=ssl_context, open_timeout=WAIT, close_timeout=WAIT) as ws:
            agreed = ws.response.headers.get("Sec-WebSocket-Extensions")
            assert agreed == SHARED_ANSWER, f"{url}: the server answered {agreed!r}"
            for message in ('{"topic":"prices","data":[' + "1.25," * 300 + "0]}", b"\x00" * 100000, "short"):
                await ws.send(message)
                echo = await asyncio.wait_for(ws.recv(), WAIT)
                assert echo == message, f"{url}: compressed echo of {type(message).__name__} differs"
            await ws.close(code=1000)
        # A bomb: 16 MiB of zeros is 16 KB compressed.
        async with websockets.connect(url, ssl=ssl_context, open_timeout=WAIT, close_timeout=WAIT) as ws:
            await ws.send(b"\x00" * (16 * MAX_MESSAGE))
            try:
                await asyncio.wait_for(ws.recv(), WAIT)
                raise AssertionError(f"{url}: the bomb was echoed")
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1009, f"{url}: closed with {closed.rcvd}"
        print(f"wss_python: permessage-deflate over {url.split(':')[0]}:// ok, the bomb closed with 1009")
    after = metric(plain, "uringws_deflate_messages_in_total"), metric(plain, "uringws_deflate_messages_out_total")
    # Per scheme: three echoes in (the bomb is refused, not counted); two
    # out ("short" is under the server's minimum size).
    assert after[0] - before[0] == 6 and after[1] - before[1] == 4, f"compressed in/out: {before} -> {after}"


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/uringws"
    if os.environ.get("WSS_PYTHON_IN_VENV") != "1":
        python = venv_python()
        env = dict(os.environ, WSS_PYTHON_IN_VENV="1")
        sys.exit(subprocess.run([str(python), __file__, binary], env=env).returncode)
    with tempfile.TemporaryDirectory(prefix="uringws-wss-python-") as tmp:
        ca, cert, key = make_pki(Path(tmp))
        plain, tls = free_port(), free_port()
        server = subprocess.Popen(
            [binary, "--listen", f"127.0.0.1:{plain}", "--tls-listen", f"127.0.0.1:{tls}",
             "--tls-cert", str(cert), "--tls-key", str(key), "--workers", "1", "--no-pin",
             "--max-message-size", str(MAX_MESSAGE), "--log-level", "warn"],
            stdout=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", tls), timeout=1).close()
                    break
                except OSError:
                    if server.poll() is not None:
                        sys.exit(f"wss_python: uringws exited ({server.returncode})")
                    asyncio.run(asyncio.sleep(0.05))
            asyncio.run(asyncio.wait_for(check(tls, ca), 60))
            asyncio.run(asyncio.wait_for(check_deflate(plain, tls, ca), 60))
        except AssertionError as e:
            sys.exit(f"wss_python: FAILED: {e}")
        finally:
            server.terminate()
            server.wait(timeout=WAIT)
    print("wss_python: ok")


if __name__ == "__main__":
    main()
