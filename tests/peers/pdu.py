"""IXWebSocket's PDU format for the Python peers: `<name> <hex>\\n` lines, names sorted."""


def encode(fields):
    return b"".join(k.encode() + b" " + v.hex().encode() + b"\n" for k, v in sorted(fields.items()))


def decode(data):
    out = {}
    for line in data.split(b"\n"):
        if line:
            k, v = line.split(b" ", 1)
            out[k.decode()] = bytes.fromhex(v.decode())
    return out


def djb2(data):
    h = 5381
    for b in data:
        h = (h * 33 + b) & 0xFFFFFFFFFFFFFFFF
    return h
