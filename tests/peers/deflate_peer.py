"""Python `websockets` with permessage-deflate, for interop tests of `ws`'s compression.

Usage:
  deflate_peer.py client URL [--no-takeover]   sends text and binary messages of 1 B to
      16 MiB (whole and fragmented, compressible and random), checks every echo, prints
      `extensions: <negotiated header>` first and `all ok` last; exits 1 on a mismatch.
  deflate_peer.py receive URL N                  prints `extensions: ...`, then `ready`,
      then one line per message received (`text|binary LENGTH SHA1`) until N came.
  deflate_peer.py server [--no-takeover]        echo server on 127.0.0.1:0 (prints
      `Listening on 127.0.0.1:PORT`); echoes messages over 64 KiB as 64 KiB fragments.
--no-takeover asks for client_ and server_no_context_takeover; the default is websockets'
own (context takeover, 12-bit windows).
"""
import asyncio
import os
import sys

import websockets
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

NO_TAKEOVER = "--no-takeover" in sys.argv
SIZES = [1, 100, 1000, 65536 + 7, 1 << 20, 16 << 20]


def text(n):
    row = '{"id":%d,"name":"sensor-%d","value":%d.5,"ok":true},'
    s, i, size = [], 0, 0
    while size < n:
        s.append(row % (i, i % 17, i * 7 % 1000))
        size += len(s[-1])
        i += 1
    return "".join(s)[:n]


def chunks(m, size=65536):
    return [m[i : i + size] for i in range(0, len(m), size)] or [m[:0]]


def client(url):
    from websockets.sync.client import connect

    if NO_TAKEOVER:
        ext = [ClientPerMessageDeflateFactory(client_no_context_takeover=True, server_no_context_takeover=True)]
        opts = dict(extensions=ext, compression=None)
    else:
        opts = dict(compression="deflate")
    with connect(url, max_size=None, open_timeout=10, close_timeout=10, **opts) as ws:
        print("extensions:", ws.response.headers.get("Sec-WebSocket-Extensions"), flush=True)
        for n in SIZES:
            for kind, msg in [("text", text(n)), ("binary", os.urandom(n)), ("zeros", bytes(n))]:
                for fragmented in (False, True):
                    ws.send(chunks(msg) if fragmented else msg)
                    got = ws.recv(timeout=60)
                    if got != msg:
                        print(f"MISMATCH {kind} {n} fragmented={fragmented}: got {len(got)} bytes", flush=True)
                        sys.exit(1)
            print(f"ok {n}", flush=True)
        ws.close(1000)
    print("all ok", flush=True)


async def server():
    if NO_TAKEOVER:
        ext = [ServerPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True)]
        opts = dict(extensions=ext, compression=None)
    else:
        opts = dict(compression="deflate")

    async def echo(ws):
        async for msg in ws:
            await ws.send(chunks(msg) if len(msg) > 65536 else msg)

    async with websockets.serve(echo, "127.0.0.1", 0, max_size=None, **opts) as s:
        print(f"Listening on 127.0.0.1:{s.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Future()


def receive(url, n):
    import hashlib

    from websockets.sync.client import connect

    with connect(url, max_size=None, open_timeout=10, compression="deflate") as ws:
        print("extensions:", ws.response.headers.get("Sec-WebSocket-Extensions"), flush=True)
        print("ready", flush=True)
        for _ in range(n):
            m = ws.recv(timeout=30)
            data = m.encode() if isinstance(m, str) else m
            kind = "text" if isinstance(m, str) else "binary"
            print(kind, len(data), hashlib.sha1(data).hexdigest(), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "client":
        client(sys.argv[2])
    elif sys.argv[1] == "receive":
        receive(sys.argv[2], int(sys.argv[3]))
    else:
        asyncio.run(server())
