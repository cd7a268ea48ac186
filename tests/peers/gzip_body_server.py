"""HTTP server that decodes gzip request bodies, as the reference's httpd does with a
`Content-Encoding: gzip` request: answers every POST/PUT with the Content-Encoding it got and
the decoded body (length-delimited or chunked). Prints `Listening on 127.0.0.1:PORT`.
"""
import gzip
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def answer(self):
        raw = self.body()
        encoding = self.headers.get("Content-Encoding", "")
        try:
            text = (gzip.decompress(raw) if encoding == "gzip" else raw).decode()
            reply = json.dumps({"encoding": encoding, "wire": len(raw), "body": text}).encode()
            status = 200
        except Exception as e:  # a body that says gzip but is not
            reply, status = f"cannot decode: {e}".encode(), 400
        self.send_response(status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_POST = do_PUT = answer

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"Listening on 127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
