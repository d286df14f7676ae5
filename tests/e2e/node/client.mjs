#!/usr/bin/env node
// End-to-end driver: talks to the realtime server with the official
// socket.io-client and prints ONE JSON object on stdout:
//   {"ok": true|false, "steps": {...}, "error": null|"..."}
// Exit code 0 when every step passed, 1 otherwise.
//
// Usage: node client.mjs --url http://127.0.0.1:PORT --transport websocket|upgrade
import { io } from "socket.io-client";
import { isDeepStrictEqual, parseArgs } from "node:util";

const STEP_TIMEOUT_MS = 5000;
const GLOBAL_TIMEOUT_MS = 30000;
const ROOM = "market:XLM_USDC";
const PRICE = { pair: "XLM_USDC", price: 0.1234, volume: 10, change24h: 0.5 };

const steps = {};
let firstError = null;
const sockets = [];

process.on("uncaughtException", (err) => finish(`uncaught: ${err && err.stack ? err.stack : err}`));
process.on("unhandledRejection", (err) => finish(`unhandled rejection: ${err && err.stack ? err.stack : err}`));

const { values: args } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:8000" },
    transport: { type: "string", default: "websocket" },
  },
});
const url = args.url.replace(/\/+$/, "");
if (!["websocket", "upgrade"].includes(args.transport)) {
  finish(`unknown --transport ${args.transport} (expected websocket|upgrade)`);
}
const transports = args.transport === "websocket" ? ["websocket"] : ["polling", "websocket"];
const opts = { transports, reconnection: false };

function finish(error) {
  const ok = !error && Object.values(steps).every((s) => s.ok);
  process.stdout.write(JSON.stringify({ ok, steps, error: ok ? null : error || firstError }) + "\n");
  for (const s of sockets) s.close();
  process.exit(ok ? 0 : 1);
}

setTimeout(() => finish(`global timeout after ${GLOBAL_TIMEOUT_MS} ms`), GLOBAL_TIMEOUT_MS);

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Runs one step; fn returns details to record. Returns true when it passed.
async function step(name, fn) {
  const started = Date.now();
  try {
    const detail = await withTimeout(Promise.resolve().then(fn), STEP_TIMEOUT_MS, name);
    steps[name] = { ok: true, ms: Date.now() - started, ...(detail || {}) };
    return true;
  } catch (err) {
    const error = err && err.message ? err.message : String(err);
    steps[name] = { ok: false, ms: Date.now() - started, error };
    firstError ??= `${name}: ${error}`;
    return false;
  }
}

// Resolves with the args array of the next `event` on `sock` (register BEFORE triggering it).
function nextEvent(sock, event) {
  return new Promise((resolve) => sock.once(event, (...a) => resolve(a)));
}

// Emits with an ack and resolves with ALL ack arguments (emitWithAck only keeps the first).
function ackAll(sock, event, ...payload) {
  return new Promise((resolve, reject) => {
    sock.timeout(STEP_TIMEOUT_MS).emit(event, ...payload, (err, ...ackArgs) =>
      err ? reject(new Error(`no ack for '${event}': ${err.message}`)) : resolve(ackArgs),
    );
  });
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}
const show = (v) => JSON.stringify(v, (_k, x) => (x && x.type === "Buffer" ? `<bytes ${x.data}>` : x));
const isNum = (x) => typeof x === "number" && Number.isFinite(x);
const isObj = (x) => x !== null && typeof x === "object" && !Array.isArray(x);

// Binary payloads may come back as Buffer, ArrayBuffer or a typed array: normalise them.
function plain(v) {
  if (v instanceof ArrayBuffer) return { $bytes: [...new Uint8Array(v)] };
  if (ArrayBuffer.isView(v)) return { $bytes: [...new Uint8Array(v.buffer, v.byteOffset, v.byteLength)] };
  if (Array.isArray(v)) return v.map(plain);
  if (isObj(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

function checkErrorAck(ack, code) {
  check(isObj(ack) && ack.ok === false, `expected {ok:false,...}, got ${show(ack)}`);
  check(isObj(ack.error), `ack.error is not an object: ${show(ack)}`);
  check(typeof ack.error.code === "string" && typeof ack.error.message === "string",
    `ack.error needs string code and message: ${show(ack)}`);
  if (code) check(ack.error.code === code, `expected error code '${code}', got '${ack.error.code}'`);
}

// ---------------------------------------------------------------------------
const socket = io(url, opts);
sockets.push(socket);
const engine = socket.io.engine;
let upgradedTo = null;
let transportAtOpen = null; // transport of the Engine.IO handshake ("before")
engine.once("open", () => (transportAtOpen = engine.transport.name));
engine.once("upgrade", (t) => (upgradedTo = t.name));
const connectedEvent = nextEvent(socket, "connected");
const connectError = nextEvent(socket, "connect_error").then(([e]) => {
  throw new Error(`connect_error: ${e && e.message}`);
});
let transportAtConnect = null;
socket.once("connect", () => (transportAtConnect = socket.io.engine.transport.name));

// 1. connect + server "connected" event
const connected = await step("connect", async () => {
  const [payload] = await Promise.race([connectedEvent, connectError]);
  check(isObj(payload), `'connected' payload is not an object: ${show(payload)}`);
  check(typeof payload.socketId === "string", `socketId is not a string: ${show(payload)}`);
  check(isNum(payload.timestamp), `timestamp is not a number: ${show(payload)}`);
  check(payload.socketId === socket.id, `socketId ${payload.socketId} !== socket.id ${socket.id}`);
  return { socketId: socket.id, transportAtOpen, transportAtConnect };
});
if (!connected) finish();

// 1b. the transport really is (or became) websocket
await step("transport", async () => {
  if (args.transport === "websocket") {
    check(transportAtOpen === "websocket", `expected websocket, opened over ${transportAtOpen}`);
  } else {
    check(transportAtOpen === "polling", `expected to open on polling, opened on ${transportAtOpen}`);
    if (socket.io.engine.transport.name !== "websocket") {
      await new Promise((resolve) => engine.once("upgrade", resolve));
    }
    check(upgradedTo === "websocket", `engine 'upgrade' event not seen (upgradedTo=${upgradedTo})`);
  }
  const after = socket.io.engine.transport.name;
  check(after === "websocket", `transport is ${after}, expected websocket`);
  return { mode: args.transport, before: transportAtOpen, after, upgradedTo };
});

// 2. ping -> ack {ok:true,timestamp} + "pong" event
await step("ping", async () => {
  const pong = nextEvent(socket, "pong");
  const ack = await socket.timeout(STEP_TIMEOUT_MS).emitWithAck("ping", {});
  check(isObj(ack) && ack.ok === true && isNum(ack.timestamp), `bad ping ack: ${show(ack)}`);
  const [p] = await pong;
  check(isObj(p) && isNum(p.timestamp), `bad pong payload: ${show(p)}`);
  return { ack, pong: p };
});

// 3. subscribe to a public market room
await step("subscribe", async () => {
  const subscribed = nextEvent(socket, "subscribed");
  const ack = await socket.timeout(STEP_TIMEOUT_MS).emitWithAck("subscribe", { room: ROOM });
  check(isObj(ack) && ack.ok === true && ack.room === ROOM && isNum(ack.timestamp),
    `bad subscribe ack: ${show(ack)}`);
  const [ev] = await subscribed;
  check(isObj(ev) && ev.room === ROOM && isNum(ev.timestamp), `bad 'subscribed' payload: ${show(ev)}`);
  return { ack, event: ev };
});

// 4. server-side emit to the room, triggered over HTTP
await step("room_broadcast", async () => {
  const update = nextEvent(socket, "market:price_update");
  const res = await fetch(`${url}/__test__/emit`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ room: ROOM, event: "market:price_update", data: PRICE }),
  });
  check(res.status === 200, `POST /__test__/emit -> HTTP ${res.status}: ${await res.text()}`);
  const [data, ...extra] = await update;
  check(isDeepStrictEqual(data, PRICE), `got ${show(data)}, expected ${show(PRICE)}`);
  return { data, extraArgs: extra.length };
});

// 5. private room refused
await step("subscribe_private_refused", async () => {
  const ack = await socket.timeout(STEP_TIMEOUT_MS).emitWithAck("subscribe", { room: "user:abc" });
  checkErrorAck(ack);
  return { ack };
});

// 6. unknown event with an ack
await step("unknown_event", async () => {
  const ack = await socket.timeout(STEP_TIMEOUT_MS).emitWithAck("no:such_event", {});
  checkErrorAck(ack, "unknown_event");
  return { ack };
});

// 7. binary echo on the /echo namespace (same manager)
const echo = io(`${url}/echo`, opts);
sockets.push(echo);
await step("echo_binary", async () => {
  check(echo.io === socket.io, "the /echo socket does not share the manager");
  if (!echo.connected) {
    await Promise.race([
      nextEvent(echo, "connect"),
      nextEvent(echo, "connect_error").then(([e]) => {
        throw new Error(`/echo connect_error: ${e && e.message}`);
      }),
    ]);
  }
  const sent = [Buffer.from([1, 2, 3]), { nested: Buffer.from([4, 5, 6]), n: 1 }];
  const expected = plain(sent);
  const echoed = nextEvent(echo, "echo");
  const ackArgs = await ackAll(echo, "echo", ...sent);
  check(isDeepStrictEqual(plain(ackArgs), expected), `ack args ${show(plain(ackArgs))} != ${show(expected)}`);
  const evArgs = await echoed;
  check(isDeepStrictEqual(plain(evArgs), expected), `event args ${show(plain(evArgs))} != ${show(expected)}`);
  return { transport: echo.io.engine.transport.name, ack: plain(ackArgs) };
});

// 8. unknown namespace refused
const nope = io(`${url}/nope`, opts);
sockets.push(nope);
await step("unknown_namespace", async () => {
  const outcome = await Promise.race([
    nextEvent(nope, "connect_error").then(([e]) => e),
    nextEvent(nope, "connect").then(() => {
      throw new Error("connected to /nope, expected connect_error");
    }),
  ]);
  check(outcome && outcome.message === "Invalid namespace",
    `connect_error message '${outcome && outcome.message}', expected 'Invalid namespace'`);
  return { message: outcome.message };
});

// 9. client-side disconnect
await step("disconnect", async () => {
  const reasons = {};
  for (const [name, s] of [["/", socket], ["/echo", echo]]) {
    if (!s.connected) {
      reasons[name] = "(was not connected)";
      continue;
    }
    const gone = nextEvent(s, "disconnect");
    s.disconnect();
    [reasons[name]] = await gone;
  }
  nope.close();
  for (const [name, reason] of Object.entries(reasons)) {
    check(reason === "io client disconnect", `${name} disconnect reason '${reason}'`);
  }
  return { reasons };
});

finish();
