#!/usr/bin/env node
// Connection state recovery driver: one socket.io-client v4 socket that subscribes to a room
// and prints one JSON line per thing that happens (connect with `recovered`, room event,
// disconnect), until its stdin closes. The Python test drops its network and reads the lines.
//
// Usage: node recovery.mjs --url http://127.0.0.1:PORT --room market:XLM_USDC [--token JWT]
import { io } from "socket.io-client";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: { url: { type: "string" }, room: { type: "string" }, token: { type: "string" } },
});
const out = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const socket = io(args.url, {
  transports: ["websocket"],
  reconnectionDelay: 200,
  reconnectionDelayMax: 500,
  auth: args.token ? { token: args.token } : {},
});
let subscribed = false;
socket.on("connect", async () => {
  out({ type: "connect", recovered: socket.recovered, id: socket.id });
  if (!subscribed) {
    subscribed = true;
    const reply = await socket.timeout(5000).emitWithAck("subscribe", { room: args.room });
    out({ type: "subscribed", reply });
  }
});
socket.on("authenticated", (data) => out({ type: "authenticated", data }));
socket.on("market:price_update", (data, offset) => out({ type: "event", data, offset }));
socket.on("notification", (data, offset) => out({ type: "event", data, offset }));
socket.on("disconnect", (reason) => out({ type: "disconnect", reason }));
process.stdin.on("end", () => { socket.close(); process.exit(0); });
process.stdin.resume();
setTimeout(() => process.exit(2), 120000);
