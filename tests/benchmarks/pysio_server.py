"""The python-socketio peer: its ASGI server on Redis, handlers equivalent to Galaxy's.

A token sent in CONNECT's `auth` is verified as Galaxy verifies it (PyJWT, HS256, Supabase's
audience and issuer; JWT_SECRET and JWT_ISSUER from the environment, none checked without a
secret) and a bad one refused; on connect `connected`, then for a signed-in user a join of
`user:{id}` and `authenticated`; `subscribe {room}` joins the room and answers `subscribed`.
Served by uvicorn like Galaxy (`tests.benchmarks.pysio_server:app`), REDIS_URL from the
environment. As the Node peer, it counts no connections or events per user.
"""

import os
import time

import jwt
import socketio

sio = socketio.AsyncServer(async_mode="asgi", client_manager=socketio.AsyncRedisManager(os.environ["REDIS_URL"]))
app = socketio.ASGIApp(sio)
SECRET, ISSUER = os.environ.get("JWT_SECRET"), os.environ.get("JWT_ISSUER")


@sio.event
async def connect(sid, environ, auth=None):
    token = auth.get("token") if isinstance(auth, dict) else None
    user = None
    if token is not None and SECRET:
        try:
            claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="authenticated", issuer=ISSUER)
        except jwt.PyJWTError as exc:
            raise socketio.exceptions.ConnectionRefusedError(str(exc), {"code": "invalid_token"}) from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise socketio.exceptions.ConnectionRefusedError("token has no subject", {"code": "invalid_token"})
        metadata = claims.get("app_metadata")
        permissions = metadata.get("permissions", []) if isinstance(metadata, dict) else []
        user = {"userId": claims["sub"], "userEmail": claims.get("email"), "permissions": permissions}
    await sio.emit("connected", {"socketId": sid, "timestamp": int(time.time() * 1000)}, to=sid)
    if user is not None:
        await sio.enter_room(sid, f"user:{user['userId']}")
        await sio.emit("authenticated", user, to=sid)


@sio.event
async def subscribe(sid, data):
    room = data.get("room") if isinstance(data, dict) else None
    if not isinstance(room, str):
        return await sio.emit("error", {"event": "subscribe", "code": "invalid_payload"}, to=sid)
    await sio.enter_room(sid, room)
    await sio.emit("subscribed", {"room": room, "timestamp": int(time.time() * 1000)}, to=sid)
