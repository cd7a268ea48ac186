// Node `ws` broadcast server (the fan-out peer): every message goes to every other client.
// Prints `Listening on 127.0.0.1:PORT`. Usage: node broadcast_server.js [PORT] [--deflate]
// (--deflate: perMessageDeflate on, as its users turn it on: `true`, the library's defaults).
const { WebSocketServer, WebSocket } = require('ws');
const deflate = process.argv.includes('--deflate');
const port = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) || 0);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: deflate });
wss.on('listening', () => console.log(`Listening on 127.0.0.1:${wss.address().port}`));
wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    for (const c of wss.clients) if (c !== ws && c.readyState === WebSocket.OPEN) c.send(data, { binary: isBinary });
  });
});
