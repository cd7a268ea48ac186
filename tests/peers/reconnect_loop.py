"""Opens N WebSocket connections one after the other, each sending one text message and
waiting for its echo, and counts the failures (for handshake races that show up rarely).

Usage: reconnect_loop.py URL N [--ca CAFILE]. Prints `failed F of N` (and each failure);
exits 1 when any failed.
"""
import ssl
import sys

from websockets.sync.client import connect


def main():
    url, n = sys.argv[1], int(sys.argv[2])
    ctx = None
    if "--ca" in sys.argv:
        ctx = ssl.create_default_context(cafile=sys.argv[sys.argv.index("--ca") + 1])
    failed = 0
    for i in range(n):
        try:
            with connect(url, ssl=ctx, compression=None, open_timeout=5, close_timeout=5) as ws:
                ws.send(f"hello {i}")
                got = ws.recv(timeout=5)
                assert got == f"hello {i}", f"echo mismatch: {got!r}"
        except Exception as e:  # noqa: BLE001 - every failure counts
            failed += 1
            print(f"connection {i}: {type(e).__name__}: {e}", flush=True)
    print(f"failed {failed} of {n}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
