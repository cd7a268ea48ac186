"""A Python `websockets` client that reports how the server treats it.

Usage: probe_client.py URL [--header NAME:VALUE] [--ca CAFILE] [--send-size N] [--subprotocol P] [--ping] [--expect N]
`--ping` sends a ping first and prints `pong received` or `no pong` (after 1.5 s).
Prints each received message as `recv <type> <len> <text-or-hex-prefix>` and finally
`closed <code> <reason>`. `--send-size N` sends one binary message of N bytes first.
Without `--expect N` it waits until 5 s pass without a message; with it, it closes (1000)
right after the Nth message.
"""
import ssl
import sys

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


def arg(name):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else None


def main():
    url = sys.argv[1]
    headers = {}
    if arg("--header"):
        k, v = arg("--header").split(":", 1)
        headers[k] = v.strip()
    ctx = ssl.create_default_context(cafile=arg("--ca")) if arg("--ca") else None
    protos = arg("--subprotocol").split(",") if arg("--subprotocol") else None
    with connect(url, ssl=ctx, additional_headers=headers, max_size=None, compression=None,
                 subprotocols=protos, open_timeout=10, close_timeout=5) as ws:
        print(f"subprotocol {ws.subprotocol}", flush=True)
        if "--ping" in sys.argv:
            waiter = ws.ping(b"probe")
            print("pong received" if waiter.wait(1.5) else "no pong", flush=True)
        if arg("--send-size"):
            ws.send(b"x" * int(arg("--send-size")))
        expect = int(arg("--expect")) if arg("--expect") else None
        try:
            while expect is None or expect > 0:
                m = ws.recv(timeout=5)
                kind = "text" if isinstance(m, str) else "binary"
                print(f"recv {kind} {len(m)} {m if isinstance(m, str) else m[:16].hex()}", flush=True)
                if expect is not None:
                    expect -= 1
            ws.close(1000)
        except ConnectionClosed:
            pass
        except TimeoutError:
            ws.close(1000)
        print(f"closed {ws.close_code} {ws.close_reason}", flush=True)


if __name__ == "__main__":
    main()
