// An open-loop Node `ws` echo client: offers a fixed rate whatever the server's speed, so
// the server's CPU per round trip can be compared at the same load (bench.sh echo).
// Usage: node ws_rate.js URL RATE [seconds=3] [connections=4] [size=32]
// Prints `offered R achieved A p50_ms X p99_ms Y` (A: replies per second); exits 1 on a
// wrong reply.
const WebSocket = require('ws');
const [url, rate, secs = '3', conns = '4', size = '32'] = process.argv.slice(2);
const payload = 'x'.repeat(Number(size));
const TICK_MS = 5;
const perTick = (Number(rate) * TICK_MS) / 1000;
let open = 0; let replies = 0; const lat = [];
const socks = [];
for (let i = 0; i < Number(conns); i++) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.sent = [];
  ws.on('open', () => { if (++open === Number(conns)) start(); });
  ws.on('message', (m) => {
    if (m.toString() !== payload) { console.error('mismatch'); process.exit(1); }
    lat.push(Number(process.hrtime.bigint() - ws.sent.shift()) / 1e6);
    replies++;
  });
  ws.on('error', (e) => { console.error(e.message); process.exit(2); });
  socks.push(ws);
}
function start() {
  const t0 = Date.now();
  let due = 0; let sent = 0; let next = 0;
  const timer = setInterval(() => {
    // Catch up to the schedule: the rate holds even when a tick comes late.
    due = (perTick * (Date.now() - t0)) / TICK_MS;
    while (sent < due) {
      const ws = socks[next++ % socks.length];
      ws.sent.push(process.hrtime.bigint()); ws.send(payload); sent++;
    }
    if (Date.now() - t0 >= Number(secs) * 1000) {
      clearInterval(timer);
      setTimeout(() => {
        lat.sort((a, b) => a - b);
        const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] : 0).toFixed(3);
        console.log(`offered ${rate} achieved ${(replies / Number(secs)).toFixed(0)} p50_ms ${q(0.5)} p99_ms ${q(0.99)}`);
        process.exit(0);
      }, 500);
    }
  }, TICK_MS);
}
