#!/usr/bin/env node
// Many socket.io-client v4 sockets at once, for failover tests. Each socket subscribes to
// --room and records the `n` of every market:price_update. Prints JSON lines: {"type":"ready"}
// once all are subscribed; {"type":"reconnected", recovered, total} once every socket has
// reconnected after a drop; on stdin "report" {"type":"report", events: [[n...] per socket]}.
//
// Usage: node many.mjs --url http://127.0.0.1:PORT --room market:XLM_USDC --count 200 [--transport polling]
import { io } from "socket.io-client";
import { parseArgs } from "node:util";
import { createInterface } from "node:readline";

const { values: args } = parseArgs({
  options: { url: { type: "string" }, room: { type: "string" }, count: { type: "string", default: "200" },
             transport: { type: "string", default: "websocket" } },
});
const count = Number(args.count);
const out = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const events = Array.from({ length: count }, () => []);
let subscribed = 0;
let reconnected = 0;
let recovered = 0;

const sockets = Array.from({ length: count }, (_, i) => {
  const socket = io(args.url, {
    transports: [args.transport], forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 1000,
  });
  let connects = 0;
  socket.on("connect", async () => {
    connects += 1;
    if (connects === 1) {
      try {
        const reply = await socket.timeout(10000).emitWithAck("subscribe", { room: args.room });
        if (reply.ok && ++subscribed === count) out({ type: "ready" });
      } catch (err) {
        out({ type: "subscribe_failed", socket: i, error: String(err) });
      }
    } else if (connects === 2) {
      reconnected += 1;
      if (socket.recovered) recovered += 1;
      if (reconnected === count) out({ type: "reconnected", recovered, total: count });
    }
  });
  socket.on("market:price_update", (data) => events[i].push(data.n));
  return socket;
});

createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "report") out({ type: "report", events });
});
process.stdin.on("end", () => { sockets.forEach((s) => s.close()); process.exit(0); });
setTimeout(() => process.exit(2), 120000);
