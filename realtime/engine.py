"""The Engine.IO server: sessions, heartbeats, the polling outbox and the WebSocket upgrade.

It stands alone (the conformance server runs it with a plain echo handler) and hands whole
messages to one `EngineHandler`, which for the product is the Socket.IO server. Transports call
it; it never touches HTTP or WebSocket framing itself, only the `FrameWriter` a WebSocket
transport gives it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from .eager import result_or_future, start_eagerly
from .protocol import engineio as eio
from .session import IllegalMove, Move, State, advance
from .timers import Timer, Timers

logger = logging.getLogger(__name__)

Frame = str | bytes  # one packet in its WebSocket form: "4hello", "2", raw binary bytes
NOOP_FRAME = "6"
CLOSE_FRAME = "1"


@dataclass(frozen=True)
class EngineConfig:
    ping_interval: float  # seconds between server pings (Engine.IO pingInterval)
    ping_timeout: float  # seconds a client has to answer a ping (pingTimeout)
    max_payload: int  # bytes per message or polling body (maxHttpBufferSize)
    # Node's default: a client that answered the probe gets this long to send "5".
    upgrade_timeout: float = 10.0
    # Frames a client may fall behind (queued behind a WebSocket whose send buffer is full, or
    # waiting for a long-poll) before it is disconnected as a slow consumer. Frames are shared
    # by every socket they go to, so this costs a reference each; at the feed's 20 events/s a
    # thousand is most of a minute behind, where live prices are worthless and recovery (from
    # the event log, on reconnect) serves the client better than an ever longer queue.
    max_backlog: int = 1000


class EngineHandler(Protocol):
    async def on_open(self, session: EngineSession) -> None: ...
    async def on_message(self, session: EngineSession, data: str | bytes) -> None: ...
    async def on_close(self, session: EngineSession, reason: str) -> None: ...


class FrameWriter(Protocol):
    """What a WebSocket transport gives a session to write with."""

    def write(self, frames: Sequence[Frame]) -> asyncio.Future | None:
        """Write at once if the transport can: None when done, else a future for the write.
        The caller never changes `frames` afterwards (the fan-out shares one list)."""

    async def send_frames(self, frames: Sequence[Frame]) -> None: ...
    async def close(self) -> None: ...


class SessionError(Exception):
    """A polling request the session refuses; the transport answers HTTP 400 with this code."""

    def __init__(self, code: eio.ErrorCode, *, close_session: bool) -> None:
        super().__init__(code.message)
        self.code = code
        self.close_session = close_session


class EngineSession:
    """One Engine.IO connection, whatever transport it is on right now."""

    # One per connection, thousands per process: slots, not a dict per instance.
    __slots__ = ("server", "sid", "state", "scope", "data", "_outbox", "_waiter", "_poll_waiting", "_post_running",
                 "_ws", "_probe_ws", "_loop", "_ping_timer", "_pong_deadline", "_upgrade_timer", "_backlog",
                 "_drainer", "_evicted", "_closing")

    def __init__(self, server: EngineServer, sid: str, state: State, scope: dict) -> None:
        self.server = server
        self.sid = sid
        self.state = state
        self.scope = scope
        self.data: dict[str, Any] = {}  # for the layer above (the Socket.IO connection)
        self._outbox: list[Frame] = []
        self._waiter: asyncio.Future | None = None  # a GET waiting for frames (polling only)
        self._poll_waiting = False
        self._post_running = False
        self._ws: FrameWriter | None = None
        self._probe_ws: FrameWriter | None = None
        self._loop = asyncio.get_running_loop()
        self._ping_timer: Timer | None = None
        self._pong_deadline: Timer | None = None
        self._upgrade_timer: asyncio.TimerHandle | None = None
        # Frames waiting behind a WebSocket write that could not complete at once (its
        # transport's buffer is full), and the task writing them: None while writes are direct.
        self._backlog: deque[Frame] | None = None
        self._drainer: asyncio.Future | None = None
        self._evicted = False
        self._closing: asyncio.Future | bool | None = None  # the close under way, once one started

    @property
    def transport(self) -> str:
        return "websocket" if self.state is State.WEBSOCKET else "polling"

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    # -- writing ---------------------------------------------------------------------------

    async def write(self, frames: Sequence[Frame]) -> None:
        """Send already-encoded frames (for callers in a coroutine; see `push`)."""
        self.push(frames)

    def push(self, frames: Sequence[Frame]) -> None:
        """Send already-encoded frames; the fan-out path calls this with one shared frame.

        Never waits on this client: the fan-out writes to every socket in turn, so a socket
        that cannot take more must not hold up the ones after it. What cannot be written now
        queues, up to `max_backlog` frames; past that the client is a slow consumer and is
        disconnected (it may recover what it missed from the event log on reconnect).
        """
        if self.state is State.WEBSOCKET:
            self._write_websocket(frames)
        elif self.state is not State.CLOSED:
            self._outbox.extend(frames)
            if len(self._outbox) > self.server.config.max_backlog:
                return self._evict_slow_consumer()
            self._wake()

    def hold(self) -> None:
        """Until `release`, writes wait, then go out in one: a connect's replies (CONNECT,
        `connected`, `authenticated`) were three writes, each a system call and a WebSocket
        frame write of its own. Only on a WebSocket writing directly; otherwise nothing changes."""
        if self.state is State.WEBSOCKET and self._backlog is None:
            self._backlog = deque()

    def release(self) -> None:
        if self._backlog is None or self._drainer is not None:
            return  # not held: a drain owns the backlog
        frames, self._backlog = list(self._backlog), None
        if frames and self.state is State.WEBSOCKET:
            self._write_websocket(frames)

    def _write_websocket(self, frames: Sequence[Frame]) -> None:
        if self._backlog is not None:  # a write is waiting on the transport, or held: keep the order
            self._backlog.extend(frames)
            if len(self._backlog) > self.server.config.max_backlog:
                self._evict_slow_consumer()
            return
        pending = self._ws.write(frames)
        if pending is not None:
            self._backlog = deque()
            self._drainer = asyncio.ensure_future(self._drain(pending))

    async def _drain(self, pending: asyncio.Future) -> None:
        try:
            await pending
            while self._backlog and self.state is State.WEBSOCKET:
                frames = list(self._backlog)  # what queued meanwhile goes out in one write
                self._backlog.clear()
                await self._ws.send_frames(frames)
        finally:
            self._backlog = self._drainer = None

    def _evict_slow_consumer(self) -> None:
        if self.state is State.CLOSED or self._evicted:
            return
        self._evicted = True
        self.server.slow_consumers += 1
        logger.warning("session %s fell %d frames behind: disconnected as a slow consumer", self.sid, self.server.config.max_backlog)
        # What it has not taken is dropped (the event log keeps it for recovery); the close
        # packet is all that is left to send, so a long-polling client learns on its next GET.
        self._outbox.clear()
        if self._backlog is not None:
            self._backlog.clear()
        asyncio.ensure_future(self.close("slow consumer"))

    def _wake(self, _done: asyncio.Future | None = None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def send_message(self, data: str | bytes) -> None:
        await self.write([eio.encode_packet(eio.Packet(eio.PacketType.MESSAGE, data))])

    # -- reading ---------------------------------------------------------------------------

    async def receive(self, packet: eio.Packet) -> None:
        """A packet that arrived on the session's current transport."""
        if packet.type is eio.PacketType.PONG:
            self._pong_received()
        elif packet.type is eio.PacketType.MESSAGE:
            await self.server.handler.on_message(self, packet.data)
        elif packet.type is eio.PacketType.CLOSE:
            await self.close("transport close", notify_client=False)
        # OPEN, PING, UPGRADE and NOOP mean nothing on an open transport: ignored, as Node does.

    # -- long-polling ----------------------------------------------------------------------

    async def poll(self, client_gone: asyncio.Future | None = None) -> str | None:
        """Wait for frames and return them as one polling response body, or None once
        `client_gone` is done first: the client went away, which ends the session, as in Node.

        A session that closed since the request found it answers what was left, or a noop.
        """
        if self.state is State.WEBSOCKET:
            raise SessionError(eio.ErrorCode.BAD_REQUEST, close_session=False)
        if self._poll_waiting:
            raise SessionError(eio.ErrorCode.BAD_REQUEST, close_session=True)
        self._poll_waiting = True
        if client_gone is not None:
            client_gone.add_done_callback(self._wake)
        try:
            while not self._outbox and self.state in (State.POLLING, State.UPGRADING):
                if client_gone is not None and client_gone.done():
                    # Closed while this GET still counts as waiting: no noop is owed to a next one.
                    await self.close("transport close", notify_client=False)
                    return None
                self._waiter = self._loop.create_future()
                await self._waiter
        finally:
            self._poll_waiting = False
            self._waiter = None
            if client_gone is not None:
                client_gone.remove_done_callback(self._wake)
        if self.state is State.CLOSED:
            self.server.take_client_close(self.sid)  # this GET was the one owed a noop
        frames, self._outbox = self._outbox, []
        if not frames:  # upgraded or closed by the client while waiting
            return NOOP_FRAME
        return eio.RECORD_SEPARATOR.join(_frame_to_payload_part(f) for f in frames)

    async def post(self, body: str) -> None:
        """Packets a polling client sent; raises DecodeError on a malformed body."""
        if self.state is State.CLOSED:
            raise SessionError(eio.ErrorCode.UNKNOWN_SID, close_session=False)
        if self.state is State.WEBSOCKET:
            raise SessionError(eio.ErrorCode.BAD_REQUEST, close_session=False)
        if self._post_running:
            raise SessionError(eio.ErrorCode.BAD_REQUEST, close_session=True)
        packets = eio.decode_payload(body)
        self._post_running = True
        try:
            for packet in packets:
                if self.state is State.CLOSED:
                    break
                await self.receive(packet)
        finally:
            self._post_running = False

    # -- upgrade ---------------------------------------------------------------------------

    async def probe(self, ws: FrameWriter) -> None:
        """"2probe" on a new WebSocket: answer it and release the waiting GET with a noop."""
        self.state = advance(self.state, Move.PROBE)
        self._probe_ws = ws
        await ws.send_frames(["3probe"])
        await self.write([NOOP_FRAME])
        loop = asyncio.get_running_loop()
        self._upgrade_timer = loop.call_later(
            self.server.config.upgrade_timeout, self._upgrade_expired, ws
        )

    async def upgrade(self, ws: FrameWriter) -> None:
        """"5" on the probed WebSocket: move over, sending what waited on polling first."""
        if ws is not self._probe_ws:
            raise IllegalMove("upgrade from a WebSocket that did not probe")
        advance(self.state, Move.UPGRADE)  # raises before anything changes if not allowed
        self._cancel_upgrade_timer()
        # Drain in order; writes arriving meanwhile land in the outbox and are drained too.
        while self._outbox:
            frames, self._outbox = self._outbox, []
            await ws.send_frames([f for f in frames if f != NOOP_FRAME])
        self.state = advance(self.state, Move.UPGRADE)
        self._ws, self._probe_ws = ws, None
        self._wake()  # a GET still waiting gets its noop now

    async def abandon_upgrade(self, ws: FrameWriter) -> None:
        if self.state is State.UPGRADING and ws is self._probe_ws:
            self._cancel_upgrade_timer()
            self.state = advance(self.state, Move.ABANDON_UPGRADE)
            self._probe_ws = None
            await ws.close()

    def _upgrade_expired(self, ws: FrameWriter) -> None:
        asyncio.ensure_future(self.abandon_upgrade(ws))

    def _cancel_upgrade_timer(self) -> None:
        if self._upgrade_timer is not None:
            self._upgrade_timer.cancel()
            self._upgrade_timer = None

    def attach_websocket(self, ws: FrameWriter) -> None:
        """The WebSocket a session was opened on."""
        self._ws = ws

    # -- heartbeat and close ---------------------------------------------------------------

    def start_heartbeat(self) -> None:
        # Timers, not a task per session, and on the server's one heap (timers.py), not a loop
        # timer each: thousands of idle sessions cost a small heap entry each.
        self._ping_timer = self.server.timers.call_later(self.server.config.ping_interval, self._send_ping)

    def _send_ping(self) -> None:
        self._pong_deadline = self.server.timers.call_later(self.server.config.ping_timeout, self._ping_timed_out)
        asyncio.ensure_future(self.write(["2"]))

    def _pong_received(self) -> None:
        # As Node does: the next ping is due pingInterval after the pong, not after the ping.
        self.server.heartbeats += 1
        if self._pong_deadline is not None:
            self._pong_deadline.cancel()
            self._pong_deadline = None
            self.start_heartbeat()

    def _ping_timed_out(self) -> None:
        self.server.timeouts += 1
        asyncio.ensure_future(self.close("ping timeout"))

    def _stop_timers(self) -> None:
        for timer in (self._ping_timer, self._pong_deadline, self._upgrade_timer):
            if timer is not None:
                timer.cancel()

    async def close(self, reason: str, *, notify_client: bool = True, reconnect: bool = False) -> None:
        """End the session; `notify_client` sends a CLOSE packet first (server-initiated).

        `reconnect` (a node draining) ends the transport instead, with no CLOSE packet, as Node's
        server does when it stops: python-engineio takes a CLOSE packet for a deliberate
        disconnect and its client never reconnects, while a dropped transport (a WebSocket close
        frame; for polling, a noop and then a refused GET) is one it reconnects after.

        One close runs; a second caller (a ping timeout during a shutdown) waits for it, so no
        one tells the client before its sockets are saved, and no one returns before that. A
        close from within the close (its handler's) returns at once: it would wait for itself."""
        closing = self._closing
        if closing is None:
            if self.state is State.CLOSED:
                return
            self._closing = True  # under way, not yet waiting on anything
            _, waiting = result_or_future(self._close(reason, notify_client, reconnect))
            if waiting is None:  # done without waiting
                return
            self._closing = closing = waiting
        elif closing is True or closing is asyncio.current_task():
            return
        await asyncio.shield(closing)

    async def _close(self, reason: str, notify_client: bool, reconnect: bool) -> None:
        self.release()  # what was held goes before the close
        if notify_client:
            # The handler (which saves sockets for recovery) runs before the client hears: told,
            # it reconnects at once, perhaps to another node, which must find its state there.
            await self._handle_close(reason)
            if not reconnect:
                await self.write([CLOSE_FRAME])
        was_polling = self.state is State.POLLING
        self.state = advance(self.state, Move.CLOSE)
        self._wake()
        self._stop_timers()
        self.server.sessions.pop(self.sid, None)
        if not notify_client and was_polling and not self._poll_waiting:
            self.server.remember_client_close(self.sid)
        if self._drainer is not None:
            self._drainer.cancel()  # what is queued for this client is not coming out now
        for ws in (self._ws, self._probe_ws):
            if ws is not None:
                # Eagerly: closing writes a close frame, which waits forever on a client that
                # stopped reading; the session must still end and leave its rooms now.
                start_eagerly(ws.close())
        if not notify_client:
            await self._handle_close(reason)

    async def _handle_close(self, reason: str) -> None:
        try:
            await self.server.handler.on_close(self, reason)
        except Exception:
            logger.exception("close handler failed for session %s", self.sid)


def _frame_to_payload_part(frame: Frame) -> str:
    if isinstance(frame, bytes):
        return "b" + base64.b64encode(frame).decode("ascii")
    return frame


class EngineServer:
    """The process's Engine.IO sessions, by sid."""

    def __init__(self, config: EngineConfig, handler: EngineHandler, node_id: str | None = None) -> None:
        self.config = config
        self.handler = handler
        # Every sid starts with the node's id, so any node can tell which one owns a session.
        self.node_id = node_id or secrets.token_urlsafe(6)
        self.sessions: dict[str, EngineSession] = {}
        self._client_closed: set[str] = set()
        self.heartbeats = 0  # pongs received
        self.timeouts = 0  # sessions closed for a missed pong
        self.slow_consumers = 0  # sessions closed for falling max_backlog frames behind
        self.timers = Timers()  # every session's heartbeat, on one loop timer

    def remember_client_close(self, sid: str) -> None:
        """A polling client closed with no GET waiting: its next GET gets a noop, not a 400.

        Node keeps such a session answerable for one more GET so the client's poll in flight
        ends cleanly; a pingTimeout is ample for a request that was already sent.
        """
        self._client_closed.add(sid)
        asyncio.get_running_loop().call_later(self.config.ping_timeout, self._client_closed.discard, sid)

    def take_client_close(self, sid: str) -> bool:
        if sid in self._client_closed:
            self._client_closed.discard(sid)
            return True
        return False

    async def open(self, state: State, scope: dict, ws: FrameWriter | None = None) -> EngineSession:
        sid = self.node_id + secrets.token_urlsafe(15)
        session = EngineSession(self, sid, state, scope)
        if ws is not None:
            session.attach_websocket(ws)
        self.sessions[sid] = session
        handshake = {
            "sid": sid,
            "upgrades": ["websocket"] if state is State.POLLING else [],
            "pingInterval": round(self.config.ping_interval * 1000),
            "pingTimeout": round(self.config.ping_timeout * 1000),
            "maxPayload": self.config.max_payload,
        }
        await session.write([f"0{json.dumps(handshake, separators=(',', ':'))}"])
        session.start_heartbeat()
        await self.handler.on_open(session)
        return session
