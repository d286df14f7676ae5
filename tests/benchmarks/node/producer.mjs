// The Node peer's producer, in its own process as a Celery task would be: K updates at R per
// second through @socket.io/redis-emitter, each carrying its send time `ts` (ms) and `seq`.
//
// Usage: node producer.mjs REDIS_URL ROOM COUNT RATE
import { performance } from "node:perf_hooks";
import { Emitter } from "@socket.io/redis-emitter";
import { createClient } from "redis";

const [redisUrl, room, count, rate] = [process.argv[2], process.argv[3], Number(process.argv[4]), Number(process.argv[5])];
const client = createClient({ url: redisUrl });
await client.connect();
const emitter = new Emitter(client);
const nowMs = () => performance.timeOrigin + performance.now();

const start = nowMs();
for (let seq = 0; seq < count; seq++) {
  const wait = start + (seq * 1000) / rate - nowMs(); // a fixed schedule: no drift
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const price = 0.1 + (seq % 100) / 10000;
  emitter.to(room).emit("market:price_update", {
    pair: "XLM_USDC", price, volume: 1000 + seq, change24h: 0.5, timestamp: Date.now(), ts: nowMs(), seq,
  });
}
await client.quit();
