// The reference peer: Socket.IO's Node server v4 with the Redis adapter, handlers equivalent to
// Galaxy's (`connected` on connect; `subscribe {room}` joins the room and answers `subscribed`).
//
// Usage: node server.mjs FD REDIS_URL   (FD: a listening TCP socket the harness bound and passed)
import { createServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import { Server } from "socket.io";

const [fd, redisUrl] = [Number(process.argv[2]), process.argv[3]];
const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);

const httpServer = createServer();
const io = new Server(httpServer, { adapter: createAdapter(pub, sub), transports: ["websocket", "polling"] });
io.on("connection", (socket) => {
  socket.emit("connected", { socketId: socket.id, timestamp: Date.now() });
  socket.on("subscribe", (data) => {
    const room = data && data.room;
    if (typeof room !== "string") return socket.emit("error", { event: "subscribe", code: "invalid_payload" });
    socket.join(room);
    socket.emit("subscribed", { room, timestamp: Date.now() });
  });
});
httpServer.listen({ fd });
const stop = () => process.exit(0);
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
