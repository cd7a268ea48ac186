"""Python `websockets` client for echo tests: text, binary, 1 MiB, then close 1000.

Usage: echo_client.py URL [--ca CAFILE] [--unix PATH]. Exits non-zero on any mismatch.
--unix: connect through the Unix socket at PATH (URL gives the request path and Host).
"""
import os
import ssl
import sys

from websockets.sync.client import connect, unix_connect


def main():
    url = sys.argv[1]
    ctx = None
    if "--ca" in sys.argv:
        ctx = ssl.create_default_context(cafile=sys.argv[sys.argv.index("--ca") + 1])
    opts = dict(ssl=ctx, max_size=None, compression=None, open_timeout=10, close_timeout=5)
    if "--unix" in sys.argv:
        opened = unix_connect(sys.argv[sys.argv.index("--unix") + 1], url, **opts)
    else:
        opened = connect(url, **opts)
    with opened as ws:
        ws.send("hello ünïcode")
        got = ws.recv(timeout=10)
        assert got == "hello ünïcode", f"text echo mismatch: {got!r}"
        print("text ok", flush=True)
        ws.send(b"\x00\x01\xfe\xff")
        got = ws.recv(timeout=10)
        assert got == b"\x00\x01\xfe\xff", f"binary echo mismatch: {got!r}"
        print("binary ok", flush=True)
        big = os.urandom(1 << 20)
        ws.send(big)
        got = ws.recv(timeout=20)
        assert got == big, "1 MiB echo mismatch"
        print("1MiB ok", flush=True)
        ws.close(1000)
        print(f"closed {ws.close_code}", flush=True)


if __name__ == "__main__":
    main()
