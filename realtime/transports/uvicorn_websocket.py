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

It also opens connections with less work: uvicorn has parsed the upgrade request already and
hands it over rebuilt, byte for byte what websockets' HTTP parser would read again, through its
generator line reader, to build Request, Headers and Response objects that live for a moment. For
the plain upgrade every Socket.IO client sends, the request is checked and answered here instead
(`plain_upgrade`); anything else (subprotocols, a compression offer while compression is on,
a header websockets would refuse) goes the parent's way, which answers it as before.

It also holds less per connection than its parent (tests/benchmarks' RSS per connection):
uvicorn's receive queue and writable event are asyncio.Queue and asyncio.Event, five deques
(~3.7 KiB) that sit nearly empty for the connection's whole life, and the handshake's request
and response headers stay referenced after the 101 went out. Here the queue and the event hold
no deque while nothing waits, and the handshake's headers go once it is done.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import re
import struct
from collections import deque
from collections.abc import Sequence
from urllib.parse import unquote

from websockets.protocol import State
from uvicorn.protocols.utils import ClientDisconnected, get_client_addr, get_path_with_query_string
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from . import handoff

logger = logging.getLogger(__name__)

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
    """One unmasked, final WebSocket frame (RFC 6455 5.2): what websockets' Frame.serialize(mask=
    False) writes for a text or binary message, without its checks for other frames and
    extensions (none here: a deflated connection never uses this writer): 0.2 us a frame, not 1.0."""
    if isinstance(frame, str):
        frame, head = frame.encode(), 0x81  # FIN, text
    else:
        head = 0x82  # FIN, binary
    n = len(frame)
    if n < 126:
        return bytes((head, n)) + frame
    if n < 65536:
        return _SHORT.pack(head, 126, n) + frame
    return _LONG.pack(head, 127, n) + frame


_SHORT, _LONG = struct.Struct("!BBH"), struct.Struct("!BBQ")
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


# The request headers whose value the handshake reads: one of each, or websockets decides.
_HANDSHAKE_HEADERS = (b"connection", b"upgrade", b"sec-websocket-key", b"sec-websocket-version", b"origin")
# RFC 9110's token list, as websockets' parse_connection reads Connection.
_TOKEN_LIST = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:[ \t]*,[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+)*")
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's, for Sec-WebSocket-Accept
_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "


def plain_upgrade(data: bytes, compression: bool) -> tuple[str, list[tuple[bytes, bytes]], bytes] | None:
    """(target, headers, Sec-WebSocket-Accept value) of an upgrade request as uvicorn rebuilds
    it (`GET <target> HTTP/1.1`, then `name: value` lines, names lower-cased), if it is one that
    websockets would accept with no subprotocol and, when `compression` is on, no extension
    offered; None for anything else, which websockets then reads and answers itself."""
    head, blank, rest = data.partition(b"\r\n\r\n")
    if not blank or rest:
        return None
    lines = head.split(b"\r\n")
    request_line = lines[0].split(b" ")
    if len(request_line) != 3 or request_line[0] != b"GET" or request_line[2] != b"HTTP/1.1" or not request_line[1].isascii():
        return None
    headers, seen = [], {}
    for line in lines[1:]:
        name, colon, value = line.partition(b": ")
        if not colon:
            return None
        headers.append((name, value))
        seen[name] = None if name in seen else value  # None: repeated
    values = [seen.get(name, b"") for name in _HANDSHAKE_HEADERS]
    if None in values:
        return None
    connection, upgrade, key, version, _origin = values
    if (
        b"sec-websocket-protocol" in seen
        or (compression and b"sec-websocket-extensions" in seen)
        or not _TOKEN_LIST.fullmatch(connection)
        or b"upgrade" not in (token.strip().lower() for token in connection.split(b","))
        or upgrade.lower() != b"websocket"
        or version != b"13"
    ):
        return None
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except binascii.Error:
        return None
    return request_line[1].decode("ascii"), headers, base64.b64encode(hashlib.sha1(key + _GUID).digest())


class WebSocketProtocol(WebSocketsSansIOProtocol):
    # The parent sets 37 attributes per connection; past 30, CPython gives each instance a dict
    # of its own (~1.6 KiB) instead of one sharing its keys with the others (~0.3 KiB). These,
    # the parent's own, live in slots instead, which keeps the rest under that limit.
    __slots__ = ("transport", "server", "client", "scheme", "queue", "writable", "conn", "scope", "request",
                 "response", "close_timer", "ping_timer", "pong_timer", "accept_value")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox(self.loop)
        self.writable = Flag()
        self.writable.set()
        self.request = self.response = None  # websockets' handshake objects: a plain upgrade has none
        self.accept_value: bytes | None = None  # Sec-WebSocket-Accept, while a plain upgrade waits for accept

    def data_received(self, data: bytes) -> None:
        if self.handshake_initiated:
            return super().data_received(data)
        upgrade = plain_upgrade(data, self.config.ws_per_message_deflate)
        if upgrade is not None and handoff.hand_over(self.transport, upgrade[0], data):
            # Another process owns the session and holds the connection now: read nothing more
            # from it, and let go of it after uvicorn's upgrade has made this its protocol.
            self.transport.pause_reading()
            self.loop.call_soon(self.transport.abort)
            return
        if upgrade is None:
            super().data_received(data)
        else:
            self.open_plain(upgrade)

    def send_receive_event_to_app(self) -> None:
        """As the parent, except a text message that is not UTF-8: the parent closes with 1007
        too, but logs it at ERROR with a traceback, so any client could fill the error log."""
        if self.curr_msg_data_type == "text" and not self.close_sent:
            try:
                b"".join(self.frames).decode()
            except UnicodeDecodeError:
                self.frames = []
                logger.info("closing a WebSocket from %s: a text message that is not UTF-8 (1007)", self.client)
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
        super().send_receive_event_to_app()

    def open_plain(self, upgrade: tuple[str, list[tuple[bytes, bytes]], bytes]) -> None:
        """Start the application on a plain upgrade request, `plain_upgrade`'s reading of it
        (what the parent's handle_connect does with websockets' Request)."""
        target, headers, self.accept_value = upgrade
        self.handshake_initiated = True
        raw_path, _, query_string = target.partition("?")
        self.scope = {  # as the parent's handle_connect builds it
            "type": "websocket",
            "asgi": {"version": self.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": self.root_path,
            "path": self.root_path + unquote(raw_path),
            "raw_path": self.root_path.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query_string.encode("ascii"),
            "headers": headers,
            "subprotocols": [],
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}, RAW_WRITER: self},
        }
        # websockets' parser waits for the request it will not be given: from here on it reads
        # frames, as it does once its own handshake is done.
        self.conn.state = State.OPEN
        self.conn.parser = self.conn.parse()
        next(self.conn.parser)
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

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
        if self.accept_value is not None and message["type"] == "websocket.accept":
            return await self.switch_protocols(message)
        await super().send(message)
        if self.handshake_complete and self.response is not None:
            # uvicorn reads the handshake's request and response only until it is complete.
            self.request = self.response = None

    async def switch_protocols(self, message) -> None:
        """The 101 response to a plain upgrade: the parent's, written without a Response object."""
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        if self.handshake_complete or self.initial_response is not None:
            self.accept_value = None
            return await super().send(message)  # the parent's error for an accept out of turn
        response = self._switching(message.get("headers", ()), message.get("subprotocol"))
        if not self.transport.is_closing():
            self.handshake_complete = True
            self.transport.write(response)
            self.start_keepalive()

    def accepts_with_frames(self) -> bool:
        """A plain upgrade that no one has answered yet: `accept_with` may answer it."""
        return self.accept_value is not None and not self.handshake_complete and self.initial_response is None

    def accept_with(self, frames: Sequence[Frame]) -> None:
        """Accept as websocket.accept would and write `frames` in the same write: the 101 and
        a new session's Engine.IO OPEN packet were two system calls, each also the kernel's
        delivery of a segment (~3 % of a connect's CPU, tests/benchmarks)."""
        response = self._switching((), None)
        if not (self.disconnected or self.transport.is_closing()):
            self.handshake_complete = True
            self.transport.write(response + _cache.wire(frames))
            self.start_keepalive()

    def _switching(self, headers, subprotocol: str | None) -> bytes:
        accept_value, self.accept_value = self.accept_value, None
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info('%s - "WebSocket %s" [accepted]', get_client_addr(self.scope), get_path_with_query_string(self.scope))
        response = [_SWITCHING, accept_value, b"\r\n"]
        for name, value in self.default_headers + list(headers):
            response += [name.lower(), b": ", value, b"\r\n"]
        if subprotocol:
            response += [b"sec-websocket-protocol: ", subprotocol.encode(), b"\r\n"]
        response.append(b"\r\n")
        return b"".join(response)

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
