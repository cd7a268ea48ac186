// Node `ws` echo server under `cluster`, as its users run it on several cores: N workers
// (default 2) share one port; the primary accepts and hands connections out round-robin
// (Node's default on Linux). Prints `Listening on 127.0.0.1:PORT` once every worker listens.
// Usage: node echo_cluster.js [WORKERS]
const cluster = require('cluster');
const n = Number(process.argv[2] || 2);
if (cluster.isPrimary) {
  let listening = 0;
  for (let i = 0; i < n; i++) cluster.fork();
  cluster.on('listening', (_worker, address) => {
    if (++listening === n) console.log(`Listening on 127.0.0.1:${address.port}`);
  });
} else {
  const { WebSocketServer } = require('ws');
  // port 0 in a cluster: every worker gets the same port.
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 256 << 20 });
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
}
