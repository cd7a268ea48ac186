"""Python `websockets` client for echo tests: text, binary, 1 MiB, then close 1000.

Usage: echo_client.py URL [--ca CAFILE]. Exits non-zero on any mismatch.
"""
import os
import ssl
import sys

from websockets.sync.client import connect


def main():
    url = sys.argv[1]
    ctx = None
    if "--ca" in sys.argv:
        ctx = ssl.create_default_context(cafile=sys.argv[sys.argv.index("--ca") + 1])
    with connect(url, ssl=ctx, max_size=None, compression=None, open_timeout=10, close_timeout=5) as ws:
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
