"""The Socket.IO server: namespaces, sockets, acknowledgements, on top of the Engine.IO server.

It sees only the engine's open / message / close callbacks (so the engine works alone) and
hands each namespace's connects, events and disconnects to the `Namespace` registered for it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from typing import Any

from .emit import encode_event
from .engine import EngineSession
from .fanout import Fanout
from .protocol import socketio as sio
from .protocol.errors import DecodeError
from .recovery import offset_key, valid_offset
from .redis_client import REDIS_AWAY

logger = logging.getLogger(__name__)
INVALID_NAMESPACE = {"message": "Invalid namespace"}
# How long after its replay a recovered socket drops live events it was replayed: an emit can
# publish up to its retries after it logged (emit_sync's retry_for, emit_in_background's 60 s).
REPLAYED_GUARD_SECONDS = 60.0
# Disconnects after which a client may come back and recover: the network's doing (a slow
# consumer is one whose network could not keep up), not a decision to end the session.
RECOVERABLE_REASONS = frozenset({"transport close", "transport error", "ping timeout", "slow consumer", "server shutting down"})


class ConnectionRefused(Exception):
    """Raised by `Namespace.on_connect` to answer CONNECT_ERROR {message, data?}."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class Namespace:
    """What an application registers per namespace; every hook may be left as is."""

    async def on_connect(self, socket: Socket, auth: dict | None) -> None:
        """Accept by returning, refuse by raising ConnectionRefused."""

    async def on_connected(self, socket: Socket) -> None:
        """After the CONNECT reply went out: the place to emit a greeting."""

    async def on_event(self, socket: Socket, event: str, args: list, ack: Ack | None) -> None:
        """A client event; `ack` is set when the client asked for an acknowledgement."""

    async def on_disconnect(self, socket: Socket, reason: str) -> None:
        """The socket left (client, transport or server)."""

    def session_state(self, socket: Socket) -> dict:
        """What of `socket.data` to keep for connection state recovery (JSON-serialisable)."""
        return {}

    async def on_recover(self, socket: Socket, state: dict, rooms: set[str]) -> set[str]:
        """A socket came back with its saved `state`: restore it; return the rooms to rejoin."""
        return rooms


class Ack:
    """Answers one client event's acknowledgement id, at most once."""

    def __init__(self, socket: Socket, ack_id: int) -> None:
        self.socket = socket
        self.id = ack_id
        self.sent = False

    async def __call__(self, *args: Any) -> None:
        if self.sent:
            return
        self.sent = True
        await self.socket.send_packet(sio.Packet(sio.PacketType.ACK, self.socket.namespace, list(args), self.id))


class Socket:
    """One client's connection to one namespace."""

    # One per connection, thousands per process: slots, not a dict per instance.
    __slots__ = ("server", "session", "namespace", "sid", "pid", "rooms", "data", "connected", "recovered", "recovering",
                 "withheld", "replayed")

    def __init__(self, server: SocketIOServer, session: EngineSession, namespace: str) -> None:
        self.server = server
        self.session = session
        self.namespace = namespace
        self.sid = secrets.token_urlsafe(15)
        self.pid = secrets.token_urlsafe(15)  # private id for connection state recovery
        self.rooms: set[str] = set()
        self.data: dict[str, Any] = {}  # per-socket state of the application (user, ...)
        self.connected = True
        self.recovered = False
        # While missed events are replayed, live room frames wait here as (offset, frames).
        self.recovering: list[tuple[str | None, list]] | None = None
        # While who may be in one of its rooms is asked again (Fanout.hold), live room frames
        # wait here as (rooms, [(offset, frames), ...]): they may be for its room's new owner.
        self.withheld: list[tuple[tuple[str, ...], list]] | None = None
        # After a recovery's replay: (the last replayed offset's key, until when, monotonic).
        # An event logged before the replay read the log may be published after it: not twice.
        self.replayed: tuple[tuple[int, int], float] | None = None

    async def emit(self, event: str, *args: Any) -> None:
        await self.send_packet(sio.Packet(sio.PacketType.EVENT, self.namespace, [event, *args]))

    async def send_packet(self, packet: sio.Packet) -> None:
        if not self.connected:
            return
        text, *attachments = sio.encode_packet(packet)
        await self.session.write(["4" + text, *attachments])

    async def join(self, room: str) -> None:
        await self.server.fanout.join(self, room)

    async def leave(self, room: str) -> None:
        await self.server.fanout.leave(self, room)

    async def disconnect(self) -> None:
        """Server-side disconnect from this namespace (the engine session stays open)."""
        if self.connected:
            await self.send_packet(sio.Packet(sio.PacketType.DISCONNECT, self.namespace))
            await self.server.remove_socket(self, "server namespace disconnect")


class _Connection:
    """Socket.IO state of one engine session: its sockets, a binary packet being assembled, and
    the packets waiting to be handled.

    Packets are handled in order by one task per connection, not inside the transport's read:
    a slow handler (a token confirmed with Supabase, a database query) must not stop the
    transport from reading the client's pongs, or a busy socket would die of a ping timeout.
    The queue and the task exist only while there is something to handle: an idle connection,
    most connections most of the time, holds neither (an empty deque alone is ~700 bytes).
    """

    __slots__ = ("sockets", "assembler", "connect_timer", "pending", "worker", "leaving")

    # Packets one client may have waiting; past it the client is flooding and is cut off.
    MAX_PENDING = 1000

    def __init__(self) -> None:
        self.sockets: dict[str, Socket] = {}
        self.assembler: sio.BinaryAssembler | None = None
        self.connect_timer: asyncio.TimerHandle | None = None
        self.pending: deque | None = None
        self.worker: asyncio.Task | None = None
        # Namespaces whose DISCONNECT is read but not yet handled. A client that leaves sends
        # it and then closes the connection, whose close is handled at once, before the queue:
        # its socket must still end as one that left (not saved for a recovery), as in Node.
        self.leaving: set[str] | None = None

    def enqueue(self, handling) -> bool:
        """Queue a coroutine; False (and the coroutine discarded) when too many are waiting."""
        if self.pending is None:
            self.pending = deque()
        elif len(self.pending) >= self.MAX_PENDING:
            handling.close()
            return False
        self.pending.append(handling)
        if self.worker is None or self.worker.done():
            self.worker = asyncio.ensure_future(self._work())
        return True

    async def _work(self) -> None:
        while self.pending:
            await self.pending.popleft()
        # Nothing left: let the queue and this finished task go (enqueue makes new ones).
        self.pending = self.worker = None

    def discard_pending(self) -> None:
        while self.pending:
            self.pending.popleft().close()


class SocketIOServer:
    """The engine's handler: decodes Socket.IO packets and routes them to namespaces."""

    def __init__(self, namespaces: dict[str, Namespace], fanout: Fanout, connect_timeout: float,
                 *, event_log=None, session_store=None) -> None:
        self.namespaces = namespaces
        self.fanout = fanout
        self.connect_timeout = connect_timeout  # seconds a client has to send its first CONNECT
        # Connection state recovery is on when both are given (recovery.py).
        self.event_log = event_log
        self.session_store = session_store
        self.recovered = 0  # sockets that came back with their state
        self.not_recovered = 0  # came back with a pid, but too late or unknown

    async def on_open(self, session: EngineSession) -> None:
        session.data["sio"] = _Connection()
        self._arm_connect_timer(session)

    def _arm_connect_timer(self, session: EngineSession) -> None:
        """The client has `connect_timeout` to send a CONNECT; the server's time deciding on it
        (a token check with Supabase, say) does not count, so the timer stops when one arrives."""
        conn: _Connection = session.data["sio"]
        if conn.connect_timer is not None:
            conn.connect_timer.cancel()
        loop = asyncio.get_running_loop()
        conn.connect_timer = loop.call_later(self.connect_timeout, self._connect_expired, session)

    def _connect_expired(self, session: EngineSession) -> None:
        if not session.data["sio"].sockets:
            asyncio.ensure_future(session.close("connect timeout"))

    async def on_message(self, session: EngineSession, data: str | bytes) -> None:
        conn: _Connection = session.data["sio"]
        try:
            # A binary packet's attachments together within maxHttpBufferSize, as one message.
            packet = self._assemble(conn, data, session.server.config.max_payload)
        except DecodeError as exc:
            logger.info("closing session %s: %s", session.sid, exc)
            await session.close("parse error", notify_client=False)
            return
        if packet is not None and packet.type is sio.PacketType.DISCONNECT:
            conn.leaving = (conn.leaving or set()) | {packet.namespace}
        if packet is not None and not conn.enqueue(self._dispatch_safely(session, conn, packet)):
            logger.info("closing session %s: more than %d packets waiting", session.sid, conn.MAX_PENDING)
            await session.close("transport error", notify_client=False)

    async def _dispatch_safely(self, session: EngineSession, conn: _Connection, packet: sio.Packet) -> None:
        if session.closed:
            return
        try:
            await self._dispatch(session, conn, packet)
        except Exception:
            logger.exception("packet handling failed on session %s", session.sid)

    def _assemble(self, conn: _Connection, data: str | bytes, max_attachment_bytes: int) -> sio.Packet | None:
        if isinstance(data, bytes):
            if conn.assembler is None:
                raise DecodeError("binary message without a packet expecting it")
            packet = conn.assembler.add(data)
            if packet is not None:
                conn.assembler = None
            return packet
        if conn.assembler is not None:
            raise DecodeError("text message while binary attachments were expected")
        started = sio.start_packet(sio.decode_packet(data), max_attachment_bytes)
        if isinstance(started, sio.BinaryAssembler):
            conn.assembler = started
            return None
        return started

    async def _dispatch(self, session: EngineSession, conn: _Connection, packet: sio.Packet) -> None:
        ptype = packet.type
        if ptype is sio.PacketType.CONNECT:
            try:
                await self._connect(session, conn, packet)
            except Exception:
                # Never a client left waiting for an answer that will not come: the transport
                # drops (no CLOSE packet: python-socketio takes one for a server's goodbye and
                # stays away), and every Socket.IO client's reconnection tries again.
                logger.exception("could not connect a socket on session %s", session.sid)
                await session.close("server error", notify_client=False)
            return
        if ptype is sio.PacketType.CONNECT_ERROR:
            await session.close("parse error", notify_client=False)
            return
        if ptype is sio.PacketType.DISCONNECT:
            conn.leaving.discard(packet.namespace)
        socket = conn.sockets.get(packet.namespace)
        if socket is None:
            return  # not connected to that namespace: ignored, as Node does
        if ptype is sio.PacketType.DISCONNECT:
            await self.remove_socket(socket, "client namespace disconnect")
        elif ptype in (sio.PacketType.EVENT, sio.PacketType.BINARY_EVENT):
            event, args = packet.data[0], packet.data[1:]
            ack = Ack(socket, packet.id) if packet.id is not None else None
            try:
                await self.namespaces[socket.namespace].on_event(socket, event, args, ack)
            except Exception:
                logger.exception("event %r failed on socket %s", event, socket.sid)
        # ACK from a client: this server does not ask clients for acknowledgements yet.

    async def _connect(self, session: EngineSession, conn: _Connection, packet: sio.Packet) -> None:
        if conn.connect_timer is not None:
            conn.connect_timer.cancel()
            conn.connect_timer = None
        namespace = self.namespaces.get(packet.namespace)
        if namespace is None:
            await self._refuse(session, conn, packet.namespace, INVALID_NAMESPACE)
            return
        previous = conn.sockets.get(packet.namespace)
        if previous is not None:
            await self.remove_socket(previous, "client namespace disconnect")
        auth = dict(packet.data) if isinstance(packet.data, dict) else None
        pid, offset = (auth.pop("pid", None), auth.pop("offset", None)) if auth is not None else (None, None)
        socket = Socket(self, session, packet.namespace)
        # Decided first, recovering or not (as Node's middlewares run for a recovered socket):
        # a token sent with this CONNECT is checked, and a recovery restores what it allows.
        try:
            await namespace.on_connect(socket, auth)
        except ConnectionRefused as exc:
            body = {"message": exc.message} if exc.data is None else {"message": exc.message, "data": exc.data}
            await self._refuse(session, conn, packet.namespace, body)
            return
        missed = await self._recover(socket, namespace, pid, offset) if pid is not None else None
        if pid is not None:
            if missed is None:
                self.not_recovered += 1
            else:
                self.recovered += 1
        if session.closed:  # the client left meanwhile: nothing to register
            if missed is not None:
                # A recovery joined the rooms and took the user's connection slot: the socket is
                # never registered, so the close did not end it. End it now, saving its state
                # again, so the client's next try recovers (its missed events are still logged).
                socket.recovering = None
                await self.remove_socket(socket, "transport close")
            return
        conn.sockets[packet.namespace] = socket
        reply = {"sid": socket.sid, "pid": socket.pid} if self.session_store is not None else {"sid": socket.sid}
        if missed is not None:
            await socket.send_packet(sio.Packet(sio.PacketType.CONNECT, packet.namespace, reply))
            await self._replay(socket, missed)
            await namespace.on_connected(socket)
            return
        # The reply and the greetings on_connected sends go out together (engine.hold). Not a
        # replay: held, thousands of missed events would count as a slow consumer's backlog.
        session.hold()
        try:
            await socket.send_packet(sio.Packet(sio.PacketType.CONNECT, packet.namespace, reply))
            await namespace.on_connected(socket)
        finally:
            session.release()

    async def _recover(self, socket: Socket, namespace: Namespace, pid: object, offset: object) -> list | None:
        """Restore a returning socket's id, state and rooms; the events it missed, or None.

        None means not recovered: an unknown or expired pid, an offset the log no longer
        reaches, or no recovery configured. The client then gets a new pid and knows it.
        """
        if self.session_store is None or not isinstance(pid, str) or not valid_offset(offset):
            return None
        try:
            state = await self.session_store.take(pid)
            if state is None or state.get("namespace") != socket.namespace:
                return None
            saved_rooms = set(state.get("rooms", []))
            if await self.event_log.since(offset, socket.namespace, saved_rooms) is None:
                return None  # the log no longer reaches back to the client's offset
        except REDIS_AWAY as exc:  # the client starts afresh rather than waiting for Redis
            logger.warning("socket %s not recovered: Redis is away: %s", socket.sid, exc)
            return None
        decided = dict(socket.data)  # on_connect's: kept if recovery fails after all
        socket.recovering = []  # from the first join on, live frames wait for the replay
        # Its old ids from here on: what on_recover holds (the user's connection slot) is held
        # under the sid its disconnect will give back.
        fresh_ids = socket.sid, socket.pid
        socket.sid, socket.pid = state["sid"], pid
        try:
            for room in await namespace.on_recover(socket, state.get("data", {}), saved_rooms):
                await socket.join(room)
            # Read again after joining: whatever was logged meanwhile is replayed or held, not lost.
            missed = await self.event_log.since(offset, socket.namespace, socket.rooms)
        except Exception:  # a store gone midway: as below, or the socket would stay half-restored
            logger.exception("socket %s not recovered: restoring it failed", socket.sid)
            missed = None
        if missed is None:  # trimmed in the last milliseconds: undo, the client starts afresh
            await self.fanout.leave_all(socket)
            await namespace.on_disconnect(socket, "recovery failed")
            socket.recovering, socket.data = None, decided
            socket.sid, socket.pid = fresh_ids
            return None
        socket.recovered = True
        return missed

    async def _replay(self, socket: Socket, missed: list) -> None:
        """Missed events in order, then the live ones that arrived meanwhile, each once."""
        last = None
        for event in missed:
            await socket.session.write(encode_event(event.event, event.data, socket.namespace, event.offset))
            last = offset_key(event.offset)
        held = socket.recovering
        i = 0
        while i < len(held):  # frames may still arrive while earlier ones are written
            offset, frames = held[i]
            if offset is None or last is None or offset_key(offset) > last:
                await socket.session.write(frames)
            i += 1
        socket.recovering = None
        if last is not None:
            socket.replayed = (last, time.monotonic() + REPLAYED_GUARD_SECONDS)

    async def _refuse(self, session: EngineSession, conn: _Connection, namespace: str, body: dict) -> None:
        await self._send(session, sio.Packet(sio.PacketType.CONNECT_ERROR, namespace, body))
        if not conn.sockets and not session.closed:
            self._arm_connect_timer(session)  # still nothing connected: the clock runs again

    async def _send(self, session: EngineSession, packet: sio.Packet) -> None:
        text, *attachments = sio.encode_packet(packet)
        await session.write(["4" + text, *attachments])

    async def remove_socket(self, socket: Socket, reason: str) -> None:
        if not socket.connected:
            return
        socket.connected = False
        conn: _Connection = socket.session.data["sio"]
        if conn.sockets.get(socket.namespace) is socket:
            del conn.sockets[socket.namespace]
        if conn.leaving and socket.namespace in conn.leaving:
            reason = "client namespace disconnect"  # its DISCONNECT came before the close
        if self.session_store is not None and reason in RECOVERABLE_REASONS:
            await self._save_for_recovery(socket)
        await self.fanout.leave_all(socket)
        try:
            await self.namespaces[socket.namespace].on_disconnect(socket, reason)
        except Exception:
            logger.exception("disconnect handler failed on socket %s", socket.sid)

    async def _save_for_recovery(self, socket: Socket) -> None:
        state = {
            "sid": socket.sid,
            "namespace": socket.namespace,
            "rooms": sorted(socket.rooms),
            "data": self.namespaces[socket.namespace].session_state(socket),
        }
        try:
            await self.session_store.save(socket.pid, state)
        except Exception:
            logger.exception("could not save socket %s for recovery", socket.sid)

    async def on_close(self, session: EngineSession, reason: str) -> None:
        conn: _Connection = session.data["sio"]
        conn.discard_pending()  # the one being handled finishes and finds the socket gone
        conn.assembler = None  # its attachments go now, not when a collection finds the session
        if conn.connect_timer is not None:
            conn.connect_timer.cancel()
        for socket in list(conn.sockets.values()):
            await self.remove_socket(socket, reason)
