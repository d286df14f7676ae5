"""uvicorn's sans-I/O WebSocket protocol with a direct writer for frames shared by many sockets.

Production runs uvicorn with this class (`--ws realtime.transports.uvicorn_websocket:
WebSocketProtocol`, bin/serve-production). The fan-out writes one frame to every local socket in
a room, and through ASGI each write is a coroutine, an await on the connection's writable event
and websockets framing the same text again: most of the server's CPU per delivered message. A
server-to-client WebSocket frame is unmasked, so without a compression extension its bytes are
the same on every connection: framed once, they are written to each transport as they are.

The protocol offers itself (its `write_now` and `writable`) through the ASGI scope's extensions
(`RAW_WRITER`); the WebSocket transport uses it when it is there and ASGI `send` when not
(daphne, uvicorn's own classes), so nothing else changes with the server.

It also holds less per connection than its parent (tests/benchmarks' RSS per connection):
uvicorn's receive queue and writable event are asyncio.Queue and asyncio.Event, five deques
(~3.7 KiB) that sit nearly empty for the connection's whole life, and the handshake's request
and response headers stay referenced after the 101 went out. Here the queue and the event hold
no deque while nothing waits, and the handshake's headers go once it is done.
"""

from __future__ import annotations

import asyncio
from collections import deque
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


class Inbox:
    """What uvicorn's protocol uses of asyncio.Queue (put_nowait, get, empty) for its ASGI
    receive queue, with no deques: a message normally goes straight to the application's
    waiting `receive`, and only a burst read in one go waits in `_items`. `get` returns a
    future, not a coroutine, so a waiting receive costs one future."""

    __slots__ = ("_loop", "_items", "_getters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque | None = None  # messages nobody has asked for yet
        self._getters: list[asyncio.Future] | None = None  # receives waiting (one, in practice)

    def put_nowait(self, message) -> None:
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getters:
                self._getters = None
            if not getter.done():  # not cancelled
                getter.set_result(message)
                return
        if self._items is None:
            self._items = deque()
        self._items.append(message)

    def get(self) -> asyncio.Future:
        future = self._loop.create_future()
        if self._items:
            future.set_result(self._items.popleft())
            if not self._items:
                self._items = None
        elif self._getters is None:
            self._getters = [future]
        else:
            self._getters.append(future)
        return future

    def empty(self) -> bool:
        return not self._items


class Flag:
    """What uvicorn's protocol uses of asyncio.Event (set, clear, wait) for `writable`, with
    the waiter list made only while a writer waits for the send buffer to drain."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if not self._value:
            self._value = True
            waiters, self._waiters = self._waiters, None
            for future in waiters or ():
                if not future.done():
                    future.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        future = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        waiters = self._waiters
        waiters.append(future)
        try:
            await future
            return True
        finally:
            if future in waiters:  # cancelled before set(), which takes the whole list
                waiters.remove(future)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    # The parent sets 37 attributes per connection; past 30, CPython gives each instance a dict
    # of its own (~1.6 KiB) instead of one sharing its keys with the others (~0.3 KiB). These,
    # the parent's own, live in slots instead, which keeps the rest under that limit.
    __slots__ = ("transport", "server", "client", "scheme", "queue", "writable", "conn", "scope", "request",
                 "response", "close_timer", "ping_timer", "pong_timer")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox(self.loop)
        self.writable = Flag()
        self.writable.set()

    def handle_connect(self, event) -> None:
        super().handle_connect(event)
        # The scope has its own copy of the headers, and the response was built from them:
        # nothing reads the request's again, but websockets' parser keeps the request alive.
        event.headers.clear()
        # Only where frames are not compressed: a deflated frame is this connection's own.
        if self.response.status_code == 101 and not self.conn.extensions:
            # The protocol itself, not a dict of its two methods: one less object per connection.
            self.scope["extensions"][RAW_WRITER] = self

    async def send(self, message) -> None:
        await super().send(message)
        if self.handshake_complete and self.response is not None:
            # uvicorn reads the handshake's request and response only until it is complete.
            self.request = self.response = None

    def write_now(self, frames: Sequence[Frame]) -> bool:
        """Write `frames` unless the send buffer is full (False: wait for `writable`, retry).

        A connection that is closing or gone takes nothing, as ASGI's send would refuse it;
        websocket.disconnect tells the application.
        """
        if not self.writable.is_set():  # over the high-water mark (a lost connection sets it)
            return False
        if not (self.close_sent or self.disconnected or self.transport.is_closing()):
            self.transport.write(_cache.wire(frames))
        return True
