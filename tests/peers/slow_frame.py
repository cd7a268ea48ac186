"""A big frame that arrives slowly, with pings flying the other way.

  slow_frame.py serve        raw WebSocket upstream on a free port (prints `Listening on ADDR`): after
                             the handshake it sends one 2 MiB binary frame in 64 KiB pieces,
                             10 ms apart, then answers a close with a close.
  slow_frame.py client URL   websockets client: pings every 5 ms while receiving that frame;
                             exits 0 when the message arrived intact and a ping after it is
                             answered, else 1 with the reason.

Used to check that a proxy never puts a pong inside a data frame that is still passing.
"""
import base64
import hashlib
import socket
import sys
import threading
import time

SIZE = 2 << 20
PIECE = 64 << 10


def payload():
    return bytes(i % 251 for i in range(SIZE))


def serve():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    print(f"Listening on 127.0.0.1:{srv.getsockname()[1]}", flush=True)
    conn, _ = srv.accept()
    req = b""
    while b"\r\n\r\n" not in req:
        chunk = conn.recv(4096)
        if not chunk:
            return
        req += chunk
    key = next(l.split(b":", 1)[1].strip() for l in req.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key"))
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
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
    serve() if sys.argv[1] == "serve" else client(sys.argv[2])
