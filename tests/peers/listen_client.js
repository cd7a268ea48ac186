// Node `ws` client for `ws listen` tests: prints every message it gets ("got TEXT" or
// "got binary HEX"), sends "hello from node" and the bytes 00 01 fe ff once it got
// WAIT_FOR messages, then closes with CODE (default 1000).
// Usage: node listen_client.js URL [WAIT_FOR [CODE]]. Exits 3 after 20 s.
const WebSocket = require('ws');
const [url, waitFor = '0', code = '1000'] = process.argv.slice(2);
const ws = new WebSocket(url);
let got = 0;
setTimeout(() => { console.error('timeout'); process.exit(3); }, 20000);
ws.on('error', (e) => { console.error('error', e.message); process.exit(2); });
const talk = () => {
  ws.send('hello from node');
  ws.send(Buffer.from([0, 1, 254, 255]), { binary: true });
  setTimeout(() => (code === 'drop' ? ws.terminate() : ws.close(Number(code), 'bye')), 200);
};
ws.on('open', () => { if (Number(waitFor) === 0) talk(); });
ws.on('message', (data, isBinary) => {
  console.log(isBinary ? `got binary ${Buffer.from(data).toString('hex')}` : `got ${data}`);
  got += 1;
  if (got === Number(waitFor)) talk();
});
ws.on('close', (c) => { console.log(`closed ${c}`); process.exit(0); });
