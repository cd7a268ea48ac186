"""Drives an Autobahn fuzzingserver (kosoku -m fuzzingserver) with `ws connect --echo` as the
client under test, one process per case, then asks the server to write its reports.

Usage: ab_client_driver.py BASE_URL WS_BIN [AGENT]
Prints `ran N cases`; exits 1 if any case's ws process hung past 60 s or crashed (exit 101,
the plugin boundary's code for a panic, or a panic message on stderr). A case may end with
exit 1 (the server broke the protocol on purpose); that is the test's verdict, not a crash.
"""
import subprocess
import sys

from websockets.sync.client import connect

base, ws_bin = sys.argv[1], sys.argv[2]
agent = sys.argv[3] if len(sys.argv) > 3 else "ws"

with connect(f"{base}/getCaseCount", open_timeout=10) as c:
    n = int(c.recv(timeout=10))

hung = []
crashed = []
for i in range(1, n + 1):
    url = f"{base}/runCase?case={i}&agent={agent}"
    try:
        p = subprocess.run([ws_bin, "connect", "--echo", url], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        if p.returncode not in (0, 1) or b"internal error" in p.stderr or b"panicked" in p.stderr:
            crashed.append((i, p.returncode, p.stderr.decode(errors="replace").strip()))
    except subprocess.TimeoutExpired:
        hung.append(i)

with connect(f"{base}/updateReports?agent={agent}", open_timeout=10) as c:
    try:
        c.recv(timeout=10)
    except Exception:
        pass

print(f"ran {n} cases", flush=True)
if hung:
    print("hung cases:", hung, flush=True)
if crashed:
    print("crashed cases:", crashed, flush=True)
if hung or crashed:
    sys.exit(1)
