"""The python-socketio peer: its ASGI server on Redis, handlers equivalent to Galaxy's.

`connected` on connect; `subscribe {room}` joins the room and answers `subscribed`. Served by
uvicorn like Galaxy (`tests.benchmarks.pysio_server:app`), REDIS_URL from the environment.
"""

import os
import time

import socketio

sio = socketio.AsyncServer(async_mode="asgi", client_manager=socketio.AsyncRedisManager(os.environ["REDIS_URL"]))
app = socketio.ASGIApp(sio)


@sio.event
async def connect(sid, environ, auth=None):
    await sio.emit("connected", {"socketId": sid, "timestamp": int(time.time() * 1000)}, to=sid)


@sio.event
async def subscribe(sid, data):
    room = data.get("room") if isinstance(data, dict) else None
    if not isinstance(room, str):
        return await sio.emit("error", {"event": "subscribe", "code": "invalid_payload"}, to=sid)
    await sio.enter_room(sid, room)
    await sio.emit("subscribed", {"room": room, "timestamp": int(time.time() * 1000)}, to=sid)
