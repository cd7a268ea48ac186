// Node `ws` echo server with permessage-deflate as its users turn it on (`perMessageDeflate:
// true`: the library's defaults, context takeover, 1 KiB threshold), for `bench.sh deflate`.
// Prints `Listening on 127.0.0.1:PORT`.
const { WebSocketServer } = require('ws');
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: true, maxPayload: 256 << 20 });
wss.on('listening', () => console.log(`Listening on 127.0.0.1:${wss.address().port}`));
wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
