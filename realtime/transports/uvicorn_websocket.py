"""uvicorn's sans-I/O WebSocket protocol with a direct writer for frames shared by many sockets.

Production runs uvicorn with this class (`--ws realtime.transports.uvicorn_websocket:
WebSocketProtocol`, bin/serve-production). The fan-out writes one frame to every local socket in
a room, and through ASGI each write is a coroutine, an await on the connection's writable event
and websockets framing the same text again: most of the server's CPU per delivered message. A
server-to-client WebSocket frame is unmasked, so without a compression extension its bytes are
the same on every connection: framed once, they are written to each transport as they are.

The protocol offers that through the ASGI scope's extensions (`RAW_WRITER`); the WebSocket
transport uses it when it is there and ASGI `send` when not (daphne, uvicorn's own classes), so
nothing else changes with the server.
"""

from __future__ import annotations

from collections.abc import Sequence

from websockets.frames import Frame as WsFrame, Opcode
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

RAW_WRITER = "galaxy.websocket.raw"
Frame = str | bytes  # as engine.Frame: this module is loaded by uvicorn, before Django is set up


class FrameCache:
    """Wire bytes of the frame lists written last, by identity: the fan-out hands every socket
    in a room the same list, so its frames are framed once however many sockets they go to.
    Holding the list keeps its id from being reused while it is cached; lists handed to a
    writer are never changed afterwards (engine.FrameWriter)."""

    SIZE = 8  # a few recent writes: all a fan-out needs, as it writes one list to every socket

    def __init__(self) -> None:
        self._entries: dict[int, tuple[Sequence[Frame], bytes]] = {}

    def wire(self, frames: Sequence[Frame]) -> bytes:
        entry = self._entries.get(id(frames))
        if entry is not None and entry[0] is frames:
            return entry[1]
        wire = b"".join(_serialize(frame) for frame in frames)
        if len(self._entries) >= self.SIZE:
            del self._entries[next(iter(self._entries))]
        self._entries[id(frames)] = (frames, wire)
        return wire


def _serialize(frame: Frame) -> bytes:
    if isinstance(frame, str):
        return WsFrame(Opcode.TEXT, frame.encode()).serialize(mask=False)
    return WsFrame(Opcode.BINARY, frame).serialize(mask=False)


_cache = FrameCache()


class WebSocketProtocol(WebSocketsSansIOProtocol):
    paused = False  # the transport's send buffer is over its high-water mark

    def handle_connect(self, event) -> None:
        super().handle_connect(event)
        # Only where frames are not compressed: a deflated frame is this connection's own.
        if self.response.status_code == 101 and not self.conn.extensions:
            self.scope["extensions"][RAW_WRITER] = {"write": self.write_now, "writable": self.writable.wait}

    def pause_writing(self) -> None:
        super().pause_writing()
        self.paused = True

    def resume_writing(self) -> None:
        super().resume_writing()
        self.paused = False

    def write_now(self, frames: Sequence[Frame]) -> bool:
        """Write `frames` unless the send buffer is full (False: wait for `writable`, retry).

        A connection that is closing or gone takes nothing, as ASGI's send would refuse it;
        websocket.disconnect tells the application.
        """
        if self.paused and not self.disconnected:
            return False
        if not (self.close_sent or self.disconnected or self.transport.is_closing()):
            self.transport.write(_cache.wire(frames))
        return True
