"""A file-transfer peer in Python `websockets` that speaks the reference's PDU by hand,
as IXWebSocket's ws 11.4.6 does (one whole binary message per PDU).

Usage:
  pdu_peer.py send URL FILENAME SIZE [--bad-hash]   send a PDU of SIZE random bytes; print
                                                     the reply as `reply kind=.. message=..`
  pdu_peer.py receive URL DIR                        receive one file PDU, check its hash,
                                                     write DIR/<basename>, ack it; print
                                                     `got NAME SIZE`
"""
import os
import sys
import uuid

from websockets.sync.client import connect

from pdu import decode, djb2, encode


mode, url = sys.argv[1], sys.argv[2]
with connect(url, open_timeout=10, max_size=None, compression=None) as ws:
    print("ready", flush=True)
    if mode == "send":
        name, size = sys.argv[3], int(sys.argv[4])
        content = os.urandom(size)
        h = djb2(content) + (1 if "--bad-hash" in sys.argv else 0)
        pid = uuid.uuid4().hex
        ws.send(encode({"content": content, "djb2_hash": str(h).encode(), "filename": name.encode(),
                        "id": pid.encode(), "kind": b"send"}))
        reply = decode(ws.recv(timeout=20))
        print("reply " + " ".join(f"{k}={v.decode()}" for k, v in sorted(reply.items())), flush=True)
        print("id ok" if reply.get("id", b"").decode() in ("", pid) else "id WRONG", flush=True)
    else:
        out_dir = sys.argv[3]
        msg = ws.recv(timeout=30)
        pdu = decode(msg)
        assert pdu["kind"] == b"send", pdu.keys()
        content = pdu["content"]
        assert str(djb2(content)).encode() == pdu["djb2_hash"], "hash mismatch"
        assert len(pdu["id"]) == 32
        name = os.path.basename(pdu["filename"].decode())
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(content)
        ws.send(encode({"ack": b"true", "filename": pdu["filename"], "id": pdu["id"]}))
        print(f"got {name} {len(content)}", flush=True)
