// The reference peer: Socket.IO's Node server v4 with the Redis adapter, handlers equivalent to
// Galaxy's: a token sent in CONNECT's `auth` is verified as Galaxy verifies it (HS256, Supabase's
// audience and issuer, with `jsonwebtoken`, what a Node Socket.IO server uses for it) and a bad
// one refused; on connect `connected`, then for a signed-in user a join of `user:{id}` and
// `authenticated`; `subscribe {room}` joins the room and answers `subscribed`. Galaxy also
// counts each user's connections and each connection's events in Redis (several processes share
// them); this single-process peer has nobody to share them with and counts nothing.
//
// Usage: node server.mjs FD REDIS_URL [JWT_SECRET ISSUER]   (FD: a listening TCP socket the
// harness bound and passed; without a secret no token is checked)
import { createSecretKey } from "node:crypto";
import { createServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import jwt from "jsonwebtoken";
import { createClient } from "redis";
import { Server } from "socket.io";

const [fd, redisUrl, secret, issuer] = [Number(process.argv[2]), process.argv[3], process.argv[4], process.argv[5]];
// A key made once: given the string, jsonwebtoken 9 makes a KeyObject of it on every verify,
// ~0.5 ms each (30 times the verify itself), which no server that cares about speed would keep.
const key = secret ? createSecretKey(Buffer.from(secret)) : null;
const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);

const httpServer = createServer();
const io = new Server(httpServer, { adapter: createAdapter(pub, sub), transports: ["websocket", "polling"] });
io.use((socket, next) => {
  const token = socket.handshake.auth && socket.handshake.auth.token;
  if (token === undefined || !key) return next();
  try {
    const claims = jwt.verify(token, key, { algorithms: ["HS256"], audience: "authenticated", issuer });
    if (typeof claims.sub !== "string" || !claims.sub) throw new Error("token has no subject");
    const permissions = claims.app_metadata && Array.isArray(claims.app_metadata.permissions) ? claims.app_metadata.permissions : [];
    socket.data.user = { userId: claims.sub, userEmail: claims.email, permissions };
    next();
  } catch (err) {
    next(Object.assign(new Error(err.message), { data: { code: "invalid_token" } }));
  }
});
io.on("connection", (socket) => {
  socket.emit("connected", { socketId: socket.id, timestamp: Date.now() });
  const user = socket.data.user;
  if (user) {
    socket.join(`user:${user.userId}`);
    socket.emit("authenticated", user);
  }
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
