// A TCP echo server on 127.0.0.1, port 0 (or argv[2]), with backpressure (pipe): what a
// connection sends comes back. Prints `Listening on 127.0.0.1:PORT`.
const net = require('net');
const server = net.createServer((s) => {
  s.on('error', () => {});
  s.setNoDelay(true);
  s.pipe(s);
});
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => console.log(`Listening on 127.0.0.1:${server.address().port}`));
