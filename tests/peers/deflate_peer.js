// Node `ws` with permessage-deflate, for interop tests of `ws`'s compression.
// Usage:
//   node deflate_peer.js client URL [--no-takeover]  sends text and binary messages of 1 B to
//     16 MiB (whole and fragmented, compressible and random), checks every echo, prints
//     `extensions: <negotiated>` first and `all ok` last; exits 1 on a mismatch, 3 on timeout.
//   node deflate_peer.js server [--no-takeover]      echo server on 127.0.0.1:0 (prints
//     `Listening on 127.0.0.1:PORT`).
// --no-takeover asks for client_ and server_no_context_takeover. threshold 0: every message
// is compressed (Node's default leaves those under 1 KiB alone).
const { WebSocket, WebSocketServer } = require('ws');
const crypto = require('crypto');

const [mode, url] = process.argv.slice(2);
const noTakeover = process.argv.includes('--no-takeover');
const deflate = noTakeover
  ? { threshold: 0, clientNoContextTakeover: true, serverNoContextTakeover: true }
  : { threshold: 0 };

function text(n) {
  let s = '';
  for (let i = 0; s.length < n; i++) s += `{"id":${i},"name":"sensor-${i % 17}","value":${(i * 7) % 1000}.5,"ok":true},`;
  return Buffer.from(s.slice(0, n));
}

if (mode === 'server') {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: deflate, maxPayload: 0 });
  wss.on('listening', () => console.log(`Listening on 127.0.0.1:${wss.address().port}`));
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
} else {
  setTimeout(() => { console.error('timeout'); process.exit(3); }, 120000);
  const sizes = [1, 100, 1000, 65536 + 7, 1 << 20, 16 << 20];
  const steps = [];
  for (const n of sizes) {
    for (const [binary, data] of [[false, text(n)], [true, crypto.randomBytes(n)], [true, Buffer.alloc(n)]]) {
      for (const fragmented of [false, true]) steps.push({ n, binary, data, fragmented });
    }
  }
  const ws = new WebSocket(url, { perMessageDeflate: deflate, maxPayload: 0 });
  let step = 0;
  const send = () => {
    const s = steps[step];
    if (!s.fragmented) return ws.send(s.data, { binary: s.binary });
    for (let i = 0; i < s.data.length || i === 0; i += 65536) {
      const last = i + 65536 >= s.data.length;
      ws.send(s.data.subarray(i, i + 65536), { binary: s.binary, fin: last });
    }
  };
  ws.on('error', (e) => { console.error('error', e.message); process.exit(2); });
  ws.on('open', () => { console.log(`extensions: ${ws.extensions}`); send(); });
  ws.on('message', (data, isBinary) => {
    const s = steps[step];
    if (isBinary !== s.binary || !Buffer.from(data).equals(s.data)) {
      console.log(`MISMATCH ${s.n} binary=${s.binary} fragmented=${s.fragmented}: got ${data.length} bytes`);
      process.exit(1);
    }
    step += 1;
    if (step % 6 === 0) console.log(`ok ${s.n}`);
    if (step < steps.length) send();
    else ws.close(1000);
  });
  ws.on('close', (code) => {
    if (step === steps.length) console.log('all ok');
    process.exit(step === steps.length ? 0 : 1);
  });
}
