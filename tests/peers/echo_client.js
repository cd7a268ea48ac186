// Node `ws` client for echo tests: text, binary, 1 MiB binary, then close 1000.
// Usage: node echo_client.js URL [CAFILE]. Exits non-zero on any mismatch or after 20 s.
const WebSocket = require('ws');
const crypto = require('crypto');
const fs = require('fs');
const [url, ca] = process.argv.slice(2);
const ws = new WebSocket(url, ca ? { ca: fs.readFileSync(ca) } : {});
const big = crypto.randomBytes(1 << 20);
const expected = [
  { data: Buffer.from('hello from node'), binary: false },
  { data: Buffer.from([0, 1, 254, 255]), binary: true },
  { data: big, binary: true },
];
let step = 0;
setTimeout(() => { console.error('timeout'); process.exit(3); }, 20000);
ws.on('error', (e) => { console.error('error', e.message); process.exit(2); });
ws.on('open', () => ws.send(expected[0].data.toString()));
ws.on('message', (data, isBinary) => {
  const want = expected[step];
  if (isBinary !== want.binary || !Buffer.from(data).equals(want.data)) {
    console.error(`mismatch at step ${step}`);
    process.exit(1);
  }
  console.log(`step ${step} ok`);
  step += 1;
  if (step < expected.length) ws.send(expected[step].data, { binary: expected[step].binary });
  else ws.close(1000, 'done');
});
ws.on('close', (code) => { console.log(`closed ${code}`); process.exit(step === expected.length ? 0 : 1); });
