// A pipelined Node `ws` echo client, the cross-check witness for `ws bench`.
// Usage: node ws_bench.js URL [seconds=5] [window=64] [size=32]; prints `rate N p50_ms X`.
const WebSocket = require('ws');
const [url, secs = '5', win = '64', size = '32'] = process.argv.slice(2);
const payload = 'x'.repeat(Number(size));
const ws = new WebSocket(url, { perMessageDeflate: false });
let count = 0; const lat = []; const sent = [];
let end = 0;
ws.on('open', () => {
  end = Date.now() + Number(secs) * 1000;
  for (let i = 0; i < Number(win); i++) { sent.push(process.hrtime.bigint()); ws.send(payload); }
});
ws.on('message', (m) => {
  if (m.toString() !== payload) { console.error('mismatch'); process.exit(1); }
  const t0 = sent.shift(); lat.push(Number(process.hrtime.bigint() - t0) / 1e6); count++;
  if (Date.now() < end) { sent.push(process.hrtime.bigint()); ws.send(payload); }
  else if (sent.length === 0) {
    lat.sort((a, b) => a - b);
    console.log(`rate ${(count / Number(secs)).toFixed(0)} p50_ms ${lat[Math.floor(lat.length / 2)].toFixed(3)}`);
    ws.close(); process.exit(0);
  }
});
ws.on('error', (e) => { console.error(e.message); process.exit(2); });
