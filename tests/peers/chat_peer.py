"""A chat client in Python `websockets`, speaking IXWebSocket's chat PDU by hand.

Usage: chat_peer.py URL USER EXPECT
Prints `ready` once connected, then reads lines from stdin and sends each as a PDU
`{text, user}`; meanwhile prints every received PDU as `<user>(<n> bytes) > <text>`.
Exits after EXPECT messages were received and stdin ended.
"""
import sys
import threading

from websockets.sync.client import connect

from pdu import decode, encode


url, user, expect = sys.argv[1], sys.argv[2], int(sys.argv[3])
with connect(url, open_timeout=10, compression=None) as ws:
    print("ready", flush=True)

    def sender():
        for line in sys.stdin:
            ws.send(encode({"text": line.rstrip("\n").encode(), "user": user.encode()}))

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    for _ in range(expect):
        m = ws.recv(timeout=20)
        assert isinstance(m, bytes), "chat PDUs are binary"
        pdu = decode(m)
        print(f"{pdu['user'].decode()}({len(m)} bytes) > {pdu['text'].decode()}", flush=True)
    t.join(timeout=20)
