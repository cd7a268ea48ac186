// Node `ws` echo server on 127.0.0.1 (or $WS_PEER_HOST), port 0; prints
// `Listening on 127.0.0.1:PORT`.
const { WebSocketServer } = require('ws');
const wss = new WebSocketServer({ host: process.env.WS_PEER_HOST || '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 256 << 20 });
wss.on('listening', () => console.log(`Listening on 127.0.0.1:${wss.address().port}`));
wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
