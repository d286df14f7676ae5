#!/usr/bin/env node
// Authentication with the npm socket.io-client v4 (what web apps use). Prints ONE JSON object:
//   {"results": {step: {...} | {"error": "..."}}, "error": null | "..."}
// Steps: connect_auth (CONNECT auth {token} -> `authenticated`, then the user room),
// connect_error (a bad token -> `connect_error` with message and data), authenticate_event,
// auth_error (a bad token through `authenticate`), bearer_header (extraHeaders Authorization).
//
// Usage: node node_auth.mjs --url URL --transport websocket|polling --good TOKEN --bad TOKEN
//        [--modules DIR]   (a directory whose node_modules has socket.io-client;
//                           default: tests/e2e/node, where `npm ci` installs it)
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import path from "node:path";
import { fileURLToPath } from "node:url";

const STEP_TIMEOUT_MS = 5000;
const here = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    transport: { type: "string", default: "websocket" },
    good: { type: "string" },
    bad: { type: "string" },
    modules: { type: "string", default: path.join(here, "..", "e2e", "node") },
  },
});
const require = createRequire(path.join(path.resolve(args.modules), "package.json"));
const { io } = require("socket.io-client");
const transports = [args.transport];
const results = {};
const sockets = [];

function within(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), STEP_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

function open(options = {}) {
  const socket = io(args.url, { transports, reconnection: false, forceNew: true, ...options });
  sockets.push(socket);
  return socket;
}

function next(socket, event) {
  return within(new Promise((resolve) => socket.once(event, resolve)), event);
}

async function step(name, fn) {
  try {
    results[name] = await fn();
  } catch (err) {
    results[name] = { error: err && err.message ? err.message : String(err) };
  }
}

await step("connect_auth", async () => {
  const socket = open({ auth: { token: args.good } });
  const authenticated = await next(socket, "authenticated");
  const subscribed = await within(
    socket.emitWithAck("subscribe", { room: `user:${authenticated.userId}` }), "subscribe",
  );
  return { authenticated, subscribed };
});

await step("connect_error", async () => {
  const socket = open({ auth: { token: args.bad } });
  const err = await next(socket, "connect_error");
  return { message: err.message, data: err.data, connected: socket.connected };
});

await step("authenticate_event", async () => {
  const socket = open();
  await next(socket, "connect");
  const authenticated = next(socket, "authenticated");
  const ack = await within(socket.emitWithAck("authenticate", { token: args.good }), "authenticate ack");
  return { ack, authenticated: await authenticated };
});

await step("auth_error", async () => {
  const socket = open();
  await next(socket, "connect");
  const authError = next(socket, "auth_error");
  const ack = await within(socket.emitWithAck("authenticate", { token: args.bad }), "authenticate ack");
  return { ack, auth_error: await authError, connected: socket.connected };
});

await step("bearer_header", async () => {
  const socket = open({ extraHeaders: { Authorization: `Bearer ${args.good}` } });
  return { authenticated: await next(socket, "authenticated") };
});

for (const socket of sockets) socket.close();
process.stdout.write(JSON.stringify({ results, error: null }) + "\n");
process.exit(0);
