"""Python `websockets` with permessage-deflate, for interop tests of `ws`'s compression.

Usage:
  deflate_peer.py client URL [--no-takeover]   sends text and binary messages of 1 B to
      16 MiB (whole and fragmented, compressible and random), checks every echo, prints
      `extensions: <negotiated header>` first and `all ok` last; exits 1 on a mismatch.
  deflate_peer.py receive URL N [--plain | --server-window B]
      prints `extensions: ...`, then `ready`, then one line per message received
      (`text|binary LENGTH SHA1`) until N came. --plain offers no compression;
      --server-window asks the server to compress with a window of 2^B.
  deflate_peer.py receive-raw URL N               the same on a raw socket, offering
      `permessage-deflate; client_max_window_bits`, inflating itself; each line also says
      whether the message came compressed (`rsv1 True|False`).
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

    if "--plain" in sys.argv:
        opts = dict(compression=None)
    elif "--server-window" in sys.argv:
        bits = int(sys.argv[sys.argv.index("--server-window") + 1])
        ext = ClientPerMessageDeflateFactory(server_max_window_bits=bits, client_max_window_bits=True)
        opts = dict(extensions=[ext], compression=None)
    else:
        opts = dict(compression="deflate")
    with connect(url, max_size=None, open_timeout=10, **opts) as ws:
        print("extensions:", ws.response.headers.get("Sec-WebSocket-Extensions"), flush=True)
        print("ready", flush=True)
        for _ in range(n):
            m = ws.recv(timeout=30)
            data = m.encode() if isinstance(m, str) else m
            kind = "text" if isinstance(m, str) else "binary"
            print(kind, len(data), hashlib.sha1(data).hexdigest(), flush=True)


def receive_raw(url, n):
    import base64
    import hashlib
    import socket
    import struct
    import zlib
    from urllib.parse import urlparse

    u = urlparse(url)
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET {u.path or '/'} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        ).encode()
    )
    f = s.makefile("rb")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += f.read(1)
    ext = [l.split(":", 1)[1].strip() for l in head.decode().split("\r\n") if l.lower().startswith("sec-websocket-extensions:")]
    print("extensions:", ext[0] if ext else None, flush=True)
    print("ready", flush=True)
    got = 0
    while got < n:
        parts, rsv1, opcode = [], None, None
        while True:
            h = f.read(2)
            ln = h[1] & 0x7F
            if ln == 126:
                ln = struct.unpack(">H", f.read(2))[0]
            elif ln == 127:
                ln = struct.unpack(">Q", f.read(8))[0]
            payload = f.read(ln)
            op = h[0] & 0x0F
            if op >= 8:
                continue
            if rsv1 is None:
                rsv1, opcode = bool(h[0] & 0x40), op
            parts.append(payload)
            if h[0] & 0x80:
                break
        data = b"".join(parts)
        if rsv1:
            data = zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")
        kind = "text" if opcode == 1 else "binary"
        print(kind, len(data), hashlib.sha1(data).hexdigest(), "rsv1", rsv1, flush=True)
        got += 1


if __name__ == "__main__":
    if sys.argv[1] == "client":
        client(sys.argv[2])
    elif sys.argv[1] == "receive":
        receive(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "receive-raw":
        receive_raw(sys.argv[2], int(sys.argv[3]))
    else:
        asyncio.run(server())
