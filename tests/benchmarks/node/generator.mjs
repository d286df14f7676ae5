// The benchmark's load generator for HTTP long-polling: N raw clients speaking Engine.IO v4 /
// Socket.IO v5 over `http` with hand-written packets (WebSocket clients: ../generator.c).
//
// Talks to the harness (tests/benchmarks/__main__.py) in JSON lines. Its first stdin line is the
// configuration (tokens are too many for argv):
//   {"url": "http://127.0.0.1:PORT/socket.io/?EIO=4&transport=polling", "n": 1000,
//    "room": "market:XLM_USDC", "tokens": ["...", ...] | null}
// It prints {"event": "ready", ...} once every client is connected and subscribed; then on the
// line "stop K" it waits until each client has K updates (or DRAIN_MS passed), prints
// {"event": "report", ...}, closes every socket and exits.
import { performance } from "node:perf_hooks";
import http from "node:http";
import { createInterface } from "node:readline";

// Connections opening at once: enough to measure the server's accept rate, few enough not to
// overflow a listen backlog (daphne's is 50).
const IN_FLIGHT = 50;
// After the producer's last update, how long late messages may still arrive before they count
// as lost.
const DRAIN_MS = 5000;
const UPDATE_PREFIX = '42["market:price_update",';

let config;
const nowMs = () => performance.timeOrigin + performance.now();
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const sockets = [];
let received; // updates per client
let latencies = new Float64Array(1 << 16);
let latencyCount = 0;
let subscribed = 0;
let failed = 0;
let duplicates = 0;
let authenticated = 0; // Galaxy's `authenticated` events: the tokens were checked
let firstTs = Infinity; // send time of the earliest update seen
let lastRx = 0; // receipt time of the latest
let lastSeq; // newest seq per client

function recordLatency(ms) {
  if (latencyCount === latencies.length) {
    const bigger = new Float64Array(latencies.length * 2);
    bigger.set(latencies);
    latencies = bigger;
  }
  latencies[latencyCount++] = ms;
}

// One client's Engine.IO/Socket.IO conversation, whatever carries it: `send(text)` sends a
// packet, `finish(ok)` ends its connect phase. Returns the handler of each packet it receives.
function conversation(i, send, finish) {
  return (frame) => {
    if (frame.startsWith(UPDATE_PREFIX)) {
      const data = JSON.parse(frame.slice(2))[1];
      if (data.seq <= lastSeq[i]) duplicates++;
      else {
        lastSeq[i] = data.seq;
        received[i]++;
        const now = nowMs();
        recordLatency(now - data.ts);
        if (data.ts < firstTs) firstTs = data.ts;
        lastRx = now;
      }
    } else if (frame === "2") {
      send("3"); // Engine.IO ping -> pong
    } else if (frame[0] === "0") {
      const auth = config.tokens ? JSON.stringify({ token: config.tokens[i] }) : "";
      send("40" + auth); // Engine.IO open -> Socket.IO CONNECT
    } else if (frame.startsWith("40")) {
      send(`42["subscribe",{"room":"${config.room}"}]`);
    } else if (frame.startsWith('42["authenticated"')) {
      authenticated++;
    } else if (frame.startsWith('42["subscribed"')) {
      finish(true);
    } else if (frame.startsWith("44") || frame.startsWith('42["error"') || frame.startsWith('42["auth_error"')) {
      process.stderr.write(`client ${i}: ${frame.slice(0, 200)}\n`);
      finish(false);
    }
  };
}

function finisher(resolve) {
  let done = false;
  const finish = (ok) => {
    if (done) return;
    done = true;
    if (ok) subscribed++;
    else failed++;
    resolve();
  };
  finish.done = () => done;
  return finish;
}

// HTTP long-polling, as a client whose network allows no WebSocket: one GET waiting at a time,
// POSTs beside it, on keep-alive connections.
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

function request(method, url, body) {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { "content-type": "text/plain;charset=UTF-8" };
    const req = http.request(url, { method, agent, headers }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

function openPolling(i) {
  return new Promise((resolve) => {
    const finish = finisher(resolve);
    const state = { open: true };
    sockets.push({ close: () => (state.open = false), open: () => state.open });
    const fail = (why) => {
      if (state.open && !finish.done()) process.stderr.write(`client ${i}: ${why}\n`);
      state.open = false;
      finish(false);
    };
    let url = config.url;
    const handle = conversation(i, (text) => request("POST", url, text).catch((err) => fail(err.message)), finish);
    const poll = async () => {
      while (state.open) {
        const res = await request("GET", url);
        if (res.status !== 200) return fail(`${res.status} ${res.text.slice(0, 200)}`);
        for (const packet of res.text.split("\x1e")) {
          if (packet[0] === "0") url = `${config.url}&sid=${JSON.parse(packet.slice(1)).sid}`;
          handle(packet);
        }
      }
    };
    poll().catch((err) => fail(err.message));
  });
}

async function connectAll() {
  const start = nowMs();
  let next = 0;
  const lane = async () => {
    while (next < config.n) await openPolling(next++);
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, config.n) }, lane));
  say({ event: "ready", connect_s: (nowMs() - start) / 1000, subscribed, failed });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function report(expected) {
  const deadline = nowMs() + DRAIN_MS;
  const total = () => received.reduce((a, b) => a + b, 0);
  while (total() < expected * subscribed && nowMs() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const sorted = latencies.slice(0, latencyCount).sort();
  say({
    event: "report",
    delivered: total(),
    duplicates,
    authenticated,
    first_ts_ms: Number.isFinite(firstTs) ? firstTs : null,
    last_rx_ms: lastRx || null,
    open_at_end: sockets.filter((s) => s.open()).length,
    p50_ms: percentile(sorted, 50),
    p95_ms: percentile(sorted, 95),
    p99_ms: percentile(sorted, 99),
    max_ms: sorted.length ? sorted[sorted.length - 1] : null,
  });
  for (const s of sockets) s.close();
  process.exit(0);
}

const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
  if (config === undefined) {
    config = JSON.parse(line);
    received = new Uint32Array(config.n);
    lastSeq = new Int32Array(config.n).fill(-1);
    connectAll();
    return;
  }
  const [command, arg] = line.trim().split(" ");
  if (command === "stop") report(Number(arg));
});
input.on("close", () => process.exit(0)); // the harness went away
