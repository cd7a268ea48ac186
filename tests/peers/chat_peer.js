// A chat client in Node `ws`, speaking IXWebSocket's chat PDU by hand.
// Usage: node chat_peer.js URL USER EXPECT — as chat_peer.py.
const WebSocket = require('ws');
const readline = require('readline');
const [url, user, expect] = process.argv.slice(2);
const encode = (f) => Object.keys(f).sort().map((k) => `${k} ${Buffer.from(f[k]).toString('hex')}\n`).join('');
const decode = (b) => Object.fromEntries(b.toString().split('\n').filter((l) => l).map((l) => {
  const i = l.indexOf(' ');
  return [l.slice(0, i), Buffer.from(l.slice(i + 1), 'hex').toString()];
}));
const ws = new WebSocket(url, { perMessageDeflate: false });
let got = 0; let inputDone = false;
const maybeExit = () => { if (got >= Number(expect) && inputDone) { ws.close(1000); setTimeout(() => process.exit(0), 100); } };
setTimeout(() => { console.error('timeout'); process.exit(3); }, 30000);
ws.on('error', (e) => { console.error(e.message); process.exit(2); });
ws.on('open', () => {
  console.log('ready');
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => ws.send(Buffer.from(encode({ text: line, user })), { binary: true }));
  rl.on('close', () => { inputDone = true; maybeExit(); });
});
ws.on('message', (m, isBinary) => {
  if (!isBinary) { console.error('chat PDUs are binary'); process.exit(1); }
  const pdu = decode(m);
  console.log(`${pdu.user}(${m.length} bytes) > ${pdu.text}`);
  got += 1; maybeExit();
});
