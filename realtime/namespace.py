"""The Galaxy API's main namespace: the seed's connection events, and routing of the rest.

Built-in events (`ping`, `subscribe`, `unsubscribe`, `authenticate`) are answered here; every
`prefix:name` event goes through the router to its domain consumer. Whatever a handler raises
becomes one error reply (DESIGN.md decision 9); nothing reaches another client's session.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .consumers import EventRequest, now_ms, validate
from .errors import AuthRequired, RealtimeError, ack_error, error_event
from .emit import encode_event
from .router import EventRouter
from .serializers import RoomSerializer
from .server import Ack, Namespace, Socket

logger = logging.getLogger(__name__)


class GalaxyNamespace(Namespace):
    def __init__(self, router: EventRouter, heartbeat_interval: float) -> None:
        self.router = router
        self.heartbeat = HeartbeatEmitter(heartbeat_interval)
        router.add("ping", self.ping)
        router.add("subscribe", self.subscribe)
        router.add("unsubscribe", self.unsubscribe)
        router.add("authenticate", self.authenticate)

    async def on_connected(self, socket: Socket) -> None:
        await socket.emit("connected", {"socketId": socket.sid, "timestamp": now_ms()})
        self.heartbeat.add(socket)

    async def on_disconnect(self, socket: Socket, reason: str) -> None:
        self.heartbeat.discard(socket)

    async def on_event(self, socket: Socket, event: str, args: list, ack: Ack | None) -> None:
        data = args[0] if args else {}
        try:
            result = await self.router.resolve(event)(EventRequest(socket, event, data))
        except RealtimeError as exc:
            await self.reply_error(socket, event, ack, exc)
        except Exception:
            logger.exception("handler for %r failed on socket %s", event, socket.sid)
            await self.reply_error(socket, event, ack, RealtimeError())
        else:
            if ack is not None:
                await ack({"ok": True, **(result or {})})

    async def reply_error(self, socket: Socket, event: str, ack: Ack | None, exc: RealtimeError) -> None:
        if ack is not None:
            await ack(ack_error(exc))
        else:
            await socket.emit("error", error_event(event[:100], exc))

    # -- the seed's connection events ------------------------------------------------------

    async def ping(self, request: EventRequest) -> dict:
        timestamp = now_ms()
        await request.emit("pong", {"timestamp": timestamp})
        return {"timestamp": timestamp}

    async def subscribe(self, request: EventRequest) -> dict:
        room = validate(RoomSerializer, request.data)["room"]
        await request.join(room)
        reply = {"room": room, "timestamp": now_ms()}
        await request.emit("subscribed", reply)
        return reply

    async def unsubscribe(self, request: EventRequest) -> dict:
        room = validate(RoomSerializer, request.data)["room"]
        await request.leave(room)
        reply = {"room": room, "timestamp": now_ms()}
        await request.emit("unsubscribed", reply)
        return reply

    async def authenticate(self, request: EventRequest) -> dict:
        # Token verification arrives with the auth issue; until then say so in the seed's terms.
        error = AuthRequired("authentication is not available on this server yet")
        await request.emit("auth_error", {"error": error.message})
        raise error


class HeartbeatEmitter:
    """The seed's `ping {timestamp}` to every connected socket of this process, every interval.

    One timer per process, and the frame is encoded once per tick, not once per socket.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.sockets: set[Socket] = set()
        self._task: asyncio.Task | None = None

    def add(self, socket: Socket) -> None:
        self.sockets.add(socket)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def discard(self, socket: Socket) -> None:
        self.sockets.discard(socket)

    async def _run(self) -> None:
        while self.sockets:
            await asyncio.sleep(self.interval)
            frames: list[Any] = encode_event("ping", {"timestamp": now_ms()})
            for socket in list(self.sockets):
                try:
                    await socket.session.write(frames)
                except Exception:
                    logger.exception("heartbeat to socket %s failed", socket.sid)
