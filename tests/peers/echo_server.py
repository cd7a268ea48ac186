"""Python `websockets` echo server on 127.0.0.1, port 0; prints `Listening on 127.0.0.1:PORT`.

Usage: echo_server.py [--tls CERT KEY] [--close-with CODE REASON] [--drive] [--mangle]
                      [--subprotocols A,B] [--unix PATH] [--report]
--unix: listen on a Unix socket at PATH instead; prints `Listening on unix:PATH`.
--report: print `request PATH host=HOST` for every connection.
--subprotocols: the subprotocols it supports (it picks the client's first one among them).
--mangle: echo every message with its last byte changed (a fast but wrong server).
--close-with: close every connection with that code right after it opens.
--drive: instead of echoing, send a text and a binary message, check the client echoes
both back unchanged, print `drive ok` (or `drive FAILED ...`), and close with 1000.
"""
import asyncio
import ssl
import sys

import websockets


async def main():
    ctx = None
    if "--tls" in sys.argv:
        i = sys.argv.index("--tls")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[i + 1], sys.argv[i + 2])
    close_with = None
    if "--close-with" in sys.argv:
        i = sys.argv.index("--close-with")
        close_with = (int(sys.argv[i + 1]), sys.argv[i + 2])

    protocols = None
    if "--subprotocols" in sys.argv:
        protocols = sys.argv[sys.argv.index("--subprotocols") + 1].split(",")
    drive = "--drive" in sys.argv
    mangle = "--mangle" in sys.argv
    report = "--report" in sys.argv
    unix = sys.argv[sys.argv.index("--unix") + 1] if "--unix" in sys.argv else None

    async def handler(ws):
        if report:
            print(f"request {ws.request.path} host={ws.request.headers.get('Host')}", flush=True)
        if drive:
            ok = True
            for m in ["text ünï", b"\x00\x01\xff"]:
                await ws.send(m)
                got = await asyncio.wait_for(ws.recv(), 10)
                ok = ok and got == m and type(got) is type(m)
            print("drive ok" if ok else f"drive FAILED got {got!r}", flush=True)
            await ws.close(1000)
            return
        if close_with:
            await ws.close(*close_with)
            return
        async for msg in ws:
            if mangle and len(msg) > 0:
                msg = msg[:-1] + ("!" if isinstance(msg, str) else b"!")
            await ws.send(msg)

    if unix:
        async with websockets.unix_serve(
            handler, unix, ssl=ctx, max_size=None, compression=None, subprotocols=protocols
        ):
            print(f"Listening on unix:{unix}", flush=True)
            await asyncio.Future()
    async with websockets.serve(
        handler, "127.0.0.1", 0, ssl=ctx, max_size=None, compression=None, subprotocols=protocols
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"Listening on 127.0.0.1:{port}", flush=True)
        await asyncio.Future()


asyncio.run(main())
