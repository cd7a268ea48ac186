"""An HTTP server that fails on purpose, for --retry tests: `GET /fail/N/STATUS/NAME` answers
STATUS (body `fail K`, K counting the requests for that path) to the first N requests and
200 `ok after N` afterwards; `?after=S` adds `Retry-After: S` to the failures. Prints
`Listening on 127.0.0.1:PORT`.
"""
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs

seen = Counter()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        seen[url.path] += 1
        k = seen[url.path]
        status, body, extra = 404, b"no such path\n", {}
        if len(parts) >= 3 and parts[0] == "fail":
            n, code = int(parts[1]), int(parts[2])
            if k <= n:
                status, body = code, f"fail {k}\n".encode()
                after = parse_qs(url.query).get("after")
                if after:
                    extra["Retry-After"] = after[0]
            else:
                status, body = 200, f"ok after {n}\n".encode()
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"Listening on 127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
