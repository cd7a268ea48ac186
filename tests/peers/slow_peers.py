"""Slow peers for the proxy's relay.

  slow_peers.py serve          raw WebSocket upstream on a free port (prints `Listening on
                               ADDR`): after the handshake it sends one 2 MiB binary frame in
                               64 KiB pieces, 10 ms apart, then answers a close with a close.
  slow_peers.py client URL     websockets client: pings every 5 ms while receiving that frame;
                               exits 0 when the message arrived intact and a ping after it is
                               answered, else 1 with the reason.
  slow_peers.py stall          raw upstream that completes the handshake and never reads.
  slow_peers.py flood URL S    client sending 1 MiB messages as fast as it can for S seconds,
                               then printing `sent N MiB`.

The first two check that a proxy never puts a pong inside a data frame that is still
passing; the last two, that a side that does not read slows the other (bounded memory).
"""
import base64
import hashlib
import os
import socket
import sys
import threading
import time

SIZE = 2 << 20
PIECE = 64 << 10


def payload():
    return bytes(i % 251 for i in range(SIZE))


def accept_one():
    """Listens on a free port, takes one connection and answers its WebSocket handshake."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    print(f"Listening on 127.0.0.1:{srv.getsockname()[1]}", flush=True)
    conn, _ = srv.accept()
    req = b""
    while b"\r\n\r\n" not in req:
        chunk = conn.recv(4096)
        if not chunk:
            sys.exit(1)
        req += chunk
    key = next(l.split(b":", 1)[1].strip() for l in req.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key"))
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    return conn


def stall():
    conn = accept_one()
    time.sleep(60)
    conn.close()


def flood(url, seconds):
    from websockets.sync.client import connect

    with connect(url, open_timeout=10, ping_interval=None) as ws:
        sent = [0]
        msg = bytes(1 << 20)

        def sender():
            try:
                while True:
                    ws.send(msg)
                    sent[0] += 1
            except Exception:
                pass

        threading.Thread(target=sender, daemon=True).start()
        time.sleep(seconds)
        print(f"sent {sent[0]} MiB", flush=True)
        # The sender is stuck in a write that will never finish: leave without closing.
        os._exit(0)


def serve():
    conn = accept_one()
    data = payload()
    conn.sendall(bytes([0x82, 127]) + SIZE.to_bytes(8, "big"))
    for at in range(0, SIZE, PIECE):
        conn.sendall(data[at:at + PIECE])
        time.sleep(0.01)
    # Whatever comes next (the client's close, relayed), answer with a close and end.
    conn.settimeout(30)
    try:
        if conn.recv(4096):
            conn.sendall(b"\x88\x02\x03\xe8")
    except OSError:
        pass
    conn.close()


def client(url):
    from websockets.sync.client import connect

    with connect(url, open_timeout=10, ping_interval=None, max_size=None) as ws:
        done = threading.Event()

        def pinger():
            n = 0
            while not done.is_set():
                try:
                    ws.ping(str(n))
                except Exception:
                    return
                n += 1
                time.sleep(0.005)

        t = threading.Thread(target=pinger, daemon=True)
        t.start()
        try:
            msg = ws.recv(timeout=30)
        except Exception as e:
            print(f"no message: {e!r}", flush=True)
            sys.exit(1)
        finally:
            done.set()
        if msg != payload():
            print(f"message damaged: {len(msg)} bytes", flush=True)
            sys.exit(1)
        if not ws.ping("after").wait(5):
            print("no pong after the message", flush=True)
            sys.exit(1)
        print(f"ok {len(msg)} bytes", flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "serve":
        serve()
    elif mode == "client":
        client(sys.argv[2])
    elif mode == "stall":
        stall()
    else:
        flood(sys.argv[2], float(sys.argv[3]))
