"""The WebSocket transport: a session of its own, or the upgrade of a polling session."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from channels.exceptions import StopConsumer

from ..eager import start_eagerly
from ..engine import EngineServer, Frame
from ..protocol import engineio as eio
from ..protocol.errors import DecodeError
from ..session import IllegalMove, State
from .base import TransportConsumer
from .handshake import Gate, HandshakeError, host_of, origin_of, parse_handshake, session_headers
from .uvicorn_websocket import RAW_WRITER


class WebSocketTransport(TransportConsumer):
    def __init__(self, engine: EngineServer, gate: Gate) -> None:
        self.engine = engine
        self.gate = gate
        self.cors = gate.cors
        self.session = None
        self.upgrading = False  # this socket is probing for a polling session, not yet its transport
        self.closed = False
        # The server's direct frame writer (uvicorn_websocket.py) once accepted, if it has one.
        self._raw = None
        self._accept_with = None  # that writer, while it is to accept with the first write

    async def accept(self) -> None:
        await self.send({"type": "websocket.accept"})
        self._raw = self.scope.get("extensions", {}).get(RAW_WRITER)

    async def websocket_connect(self, message) -> None:
        if not self.cors.allows(origin_of(self.scope), host_of(self.scope)):
            return await self.close()
        try:
            handshake = parse_handshake(self.scope, "websocket")
        except HandshakeError:
            return await self.close()
        if handshake.sid is None:
            if await self.gate.admit_new_session(self.scope) is not None:
                return await self.close()  # before accept: the client sees HTTP 403
            # In place: the ASGI server holds this scope as long as the connection, too.
            self.scope["headers"] = session_headers(self.scope)
            raw = self.scope.get("extensions", {}).get(RAW_WRITER)
            if raw is not None and raw.accepts_with_frames():
                self._accept_with = raw  # the 101 goes out with the OPEN packet open() writes
            else:
                await self.accept()
            self.session = await self.engine.open(State.WEBSOCKET, self.scope, ws=self)
            return
        await self.accept()
        session = self.engine.sessions.get(handshake.sid)
        if session is None or session.state is not State.POLLING:
            # Unknown sid, or a second WebSocket for a session that has one: opened, then
            # closed at once (as Node does), leaving the session as it was.
            return await self.close()
        self.session, self.upgrading = session, True

    async def websocket_receive(self, message) -> None:
        data = message.get("text")
        if data is None:
            data = message.get("bytes")
        session = self.session
        if session is None or session.closed:
            return
        if _too_big(data, session.server.config.max_payload):
            if self.upgrading:
                return await session.abandon_upgrade(self)
            return await session.close("transport error", notify_client=False)
        if self.upgrading:
            return await self.receive_during_upgrade(data)
        try:
            packet = eio.decode_packet(data)
        except DecodeError:
            return await session.close("parse error", notify_client=False)
        await session.receive(packet)

    async def receive_during_upgrade(self, data) -> None:
        try:
            if data == "2probe":
                return await self.session.probe(self)
            if data == "5":
                await self.session.upgrade(self)
                self.upgrading = False
                return
        except IllegalMove:
            pass
        await self.session.abandon_upgrade(self)
        await self.close()

    async def websocket_disconnect(self, message) -> None:
        self.closed = True
        if self.session is not None:
            if self.upgrading:
                await self.session.abandon_upgrade(self)
            else:
                await self.session.close("transport close", notify_client=False)
        raise StopConsumer()

    # FrameWriter, for the session
    def write(self, frames: Sequence[Frame]) -> asyncio.Future | None:
        """Write `frames` now if the send buffer takes them (None), else a future for the write."""
        if self._raw is not None and (self.closed or self._raw.write_now(frames)):
            return None
        if self._accept_with is not None:  # a new session's first write: its OPEN packet
            self._raw, self._accept_with = self._accept_with, None
            self._raw.accept_with(frames)
            return None
        return start_eagerly(self.send_frames(frames))

    async def send_frames(self, frames: Sequence[Frame]) -> None:
        if self._raw is not None:
            while not (self.closed or self._raw.write_now(frames)):
                await self._raw.writable.wait()
            return
        for frame in frames:
            if self.closed:
                return
            message = {"type": "websocket.send", "bytes": frame} if isinstance(frame, bytes) else {"type": "websocket.send", "text": frame}
            try:
                await self.base_send(message)
            except Exception:
                # The peer is gone and the server noticed before we did (daphne raises, uvicorn
                # may too): nothing more can be written; websocket.disconnect follows.
                self.closed = True

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.send({"type": "websocket.close"})


def _too_big(data: str | bytes, limit: int) -> bool:
    # A str of n characters is at least n and at most 4n UTF-8 bytes: encode only when unsure.
    if len(data) > limit:
        return True
    if isinstance(data, str) and len(data) * 4 > limit:
        return len(data.encode("utf-8")) > limit
    return False
