"""The Galaxy API's main namespace: the seed's connection events, and routing of the rest.

Built-in events (`ping`, `subscribe`, `unsubscribe`, `authenticate`) are answered here; every
`prefix:name` event goes through the router to its domain consumer. Whatever a handler raises
becomes one error reply (DESIGN.md decision 9); nothing reaches another client's session.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import InterfaceError, OperationalError

from . import metrics
from .auth import AuthFailed, Principal, TokenVerifier, bearer_token
from .consumers import EventRequest, now_ms, validate
from .emit import encode_event
from .errors import RateLimited, RealtimeError, ServiceUnavailable, ack_error, error_event
from .permissions import check_room_access, is_private
from .redis_client import REDIS_AWAY
from .router import EventRouter
from .serializers import AuthenticateSerializer, RoomSerializer
from .server import Ack, ConnectionRefused, Namespace, Socket
from .timers import Timers
from .transports.handshake import header

logger = logging.getLogger(__name__)
# Events a socket may keep sending while blocked before it is disconnected as a flood.
FLOOD_DISCONNECT_AFTER = 20
# The seed's heartbeat event is exempt from rate limits: a client must never be punished for it.
UNLIMITED_EVENTS = frozenset({"ping"})
# What a handler raises while the database or Redis cannot be reached: worth trying again.
STORE_AWAY = (OperationalError, InterfaceError, *REDIS_AWAY)
# A room re-check that could not ask the policy (a store away) tries again this often, this long
# (as an owner change's own sends are retried: permissions.RECHECK_RETRY_SECONDS).
RECHECK_RETRY_SECONDS = 2.0
RECHECK_GIVE_UP_SECONDS = 60.0


class GalaxyNamespace(Namespace):
    def __init__(self, router: EventRouter, heartbeat_interval: float, *, verifier: TokenVerifier,
                 connection_limit, event_limiter, event_log) -> None:
        self.router = router
        self.event_log = event_log
        self.heartbeat = HeartbeatEmitter(heartbeat_interval, event_log)
        self.verifier = verifier
        self.connection_limit = connection_limit
        self.event_limiter = event_limiter
        self.expiry_timers = Timers()  # each signed-in socket's token expiry, on one loop timer
        self.rate_limited = 0  # events refused by the per-connection limit
        self.flood_disconnects = 0
        router.add("ping", self.ping)
        router.add("subscribe", self.subscribe)
        router.add("unsubscribe", self.unsubscribe)
        router.add("authenticate", self.authenticate)

    # -- connection lifecycle --------------------------------------------------------------

    async def on_connect(self, socket: Socket, auth: dict | None) -> None:
        """A token in CONNECT's `auth`, else in the handshake's Authorization header, is checked
        before the socket exists: a bad one is refused with CONNECT_ERROR."""
        token = auth.get("token") if isinstance(auth, dict) and "token" in auth else None
        if token is None:
            token = bearer_token(header(socket.session.scope, b"authorization"))
        if token is not None:
            try:
                socket.data["pending_user"] = await self.verifier.verify(token)
            except AuthFailed as exc:
                raise ConnectionRefused(exc.message, {"code": exc.code}) from None

    async def on_connected(self, socket: Socket) -> None:
        # The log's current offset rides along, so a client that gets no room event before
        # its connection drops still has an offset to recover from (Socket.IO's own gap).
        if (process := metrics.current()) is not None:
            process.ensure_publishing()
        # A recovered socket is in its rooms again: only a fresh read is sure to be no older than
        # what it was just sent (an older offset would replay those events on its next recovery).
        try:
            offset = (await (self.event_log.head() if socket.rooms else self.event_log.shared_head()),)
        except REDIS_AWAY as exc:
            # No offset then: the client's next reconnection before a room event is not
            # recovered (and its client knows it), rather than this one failing.
            logger.warning("connected without an offset for socket %s: the event log is away: %s", socket.sid, exc)
            offset = ()
        await socket.emit("connected", {"socketId": socket.sid, "timestamp": now_ms()}, *offset)
        self.heartbeat.add(socket)
        principal = socket.data.pop("pending_user", None)
        if principal is not None:
            try:
                await self.sign_in(socket, principal)
            except AuthFailed:  # told through auth_error; the socket stays, anonymous, and
                await self._leave_private_rooms(socket)  # out of those a recovery gave back
        elif (error := socket.data.pop("auth_error_once_connected", None)) is not None:
            await socket.emit("auth_error", {"error": error})
        elif (user := socket.data.get("user")) is not None and "expiry" not in socket.data:
            # The user a recovery restored, now that its rooms are joined: a sign-out at expiry
            # must find them all to leave them (one armed before the joins could miss the last).
            self._arm_expiry(socket, user)

    async def on_disconnect(self, socket: Socket, reason: str) -> None:
        self.heartbeat.discard(socket)
        await self._forget_user(socket)

    def session_state(self, socket: Socket) -> dict:
        user: Principal | None = socket.data.get("user")
        if user is None:
            return {}
        return {"user": {"user_id": user.user_id, "email": user.email, "permissions": list(user.permissions), "expires_at": user.expires_at}}

    async def on_recover(self, socket: Socket, state: dict, rooms: set[str]) -> set[str]:
        """Restore the user (the one of a token sent with this CONNECT, which on_connected signs
        in, else the saved one while its token is valid); keep only rooms it may still join."""
        saved, sent, now = state.get("user"), socket.data.get("pending_user"), time.time()
        user = None
        if sent is not None:
            # It decides (on_connected signs it in). One the verifier let through expired (its
            # leeway is for clocks apart) opens no private room: its sign-out follows at once,
            # and the replay must not send what came for the user after its token's end.
            user = sent if sent.expires_at > now else None
        elif saved and saved["expires_at"] > now:
            candidate = Principal(saved["user_id"], saved["email"], tuple(saved["permissions"]), saved["expires_at"])
            if await self.connection_limit.acquire(candidate.user_id, socket.sid):
                user = candidate
                socket.data["user"] = user  # its expiry is armed once its rooms are back (on_connected)
            else:  # the user's other tabs took its slot meanwhile: said once connected, as a sign-in's
                socket.data["auth_error_once_connected"] = "too many connections"
        elif saved:
            socket.data["auth_error_once_connected"] = "token expired"  # as a live expiry says it
        self.heartbeat.add(socket)
        allowed = set()
        for room in rooms:
            try:
                await check_room_access(user, room)
            except RealtimeError:
                continue
            allowed.add(room)
        return allowed

    # -- events ----------------------------------------------------------------------------

    async def on_event(self, socket: Socket, event: str, args: list, ack: Ack | None) -> None:
        data = args[0] if args else {}
        try:
            if event not in UNLIMITED_EVENTS:
                await self.check_rate(socket)
            result = await self.router.resolve(event)(EventRequest(socket, event, data))
        except RateLimited as exc:
            await self.refuse_rate_limited(socket, event, ack, exc)
        except RealtimeError as exc:
            await self.reply_error(socket, event, ack, exc)
        except STORE_AWAY as exc:
            logger.warning("handler for %r on socket %s: a store is away: %r", event[:100], socket.sid, exc)
            await self.reply_error(socket, event, ack, ServiceUnavailable())
        except Exception:
            logger.exception("handler for %r failed on socket %s", event[:100], socket.sid)
            await self.reply_error(socket, event, ack, RealtimeError())
        else:
            if ack is not None:
                await ack({"ok": True, **(result or {})})

    async def reply_error(self, socket: Socket, event: str, ack: Ack | None, exc: RealtimeError) -> None:
        if ack is not None:
            await ack(ack_error(exc))
        else:
            await socket.emit("error", error_event(event[:100], exc))

    async def check_rate(self, socket: Socket) -> None:
        # Per connection, not per socket: a client sending CONNECT again on it gets a new
        # socket, which must not lift the block (nor do its other namespaces each get a limit).
        verdict = await self.event_limiter.hit(f"ev:{socket.session.sid}")
        if not verdict.allowed:
            raise RateLimited(verdict.retry_after_ms)
        socket.session.data.pop("dropped", None)

    async def refuse_rate_limited(self, socket: Socket, event: str, ack: Ack | None, exc: RateLimited) -> None:
        """Tell once (and every ack), drop the rest; a client that keeps flooding is cut off."""
        dropped = socket.session.data["dropped"] = socket.session.data.get("dropped", 0) + 1
        self.rate_limited += 1
        if dropped > FLOOD_DISCONNECT_AFTER:
            self.flood_disconnects += 1
            logger.info("disconnecting socket %s: still flooding while rate limited", socket.sid)
            await socket.session.close("rate limited")
        elif ack is not None or dropped == 1:
            await self.reply_error(socket, event, ack, exc)

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
        try:
            token = validate(AuthenticateSerializer, request.data)["token"]
            principal = await self.verifier.verify(token)
        except RealtimeError as exc:
            await request.emit("auth_error", {"error": exc.message})
            raise
        return await self.sign_in(request.socket, principal)

    # -- signing in and out ----------------------------------------------------------------

    async def sign_in(self, socket: Socket, principal: Principal) -> dict:
        """Make `principal` the socket's user: count it, join user:{id}, say `authenticated`."""
        async with self._turn(socket):
            if not socket.connected or socket.session.closed:
                # It left while its token was being checked: nothing to sign in, nothing to hold.
                raise AuthFailed("disconnected")
            current: Principal | None = socket.data.get("user")
            if current is not None and current.user_id != principal.user_id:
                await self._forget_user(socket)
                await self._leave_private_rooms(socket)
            elif current is not None:  # the same user, maybe no longer `admin`: only what it may keep
                await self._leave_rooms_refused(socket, principal)
            user_room = f"user:{principal.user_id}"  # a valid room: the verifier took only such ids
            if not await self.connection_limit.acquire(principal.user_id, socket.sid):
                return await self._auth_error(socket, "too many connections")
            if not socket.connected:  # it left during acquire: give the slot back
                await self.connection_limit.release(principal.user_id, socket.sid)
                raise AuthFailed("disconnected")
            self._cancel_expiry(socket)
            socket.data["user"] = principal
            try:
                await socket.join(user_room)
            finally:
                # Armed once the room is the socket's (or its join failed): the sign-out it brings
                # (at once, for a token inside the leeway) must find the room there to leave it.
                if socket.connected:
                    self._arm_expiry(socket, principal)
            reply = {"userId": principal.user_id, "userEmail": principal.email, "permissions": list(principal.permissions)}
            await socket.emit("authenticated", reply)
            return reply

    async def _auth_error(self, socket: Socket, message: str) -> dict:
        await socket.emit("auth_error", {"error": message})
        raise AuthFailed(message)

    @staticmethod
    def _turn(socket: Socket) -> asyncio.Lock:
        """Held by a sign-in or a sign-out from its first check to its last change: both await
        (Redis, joins, leaves), and interleaved, an expiry's sign-out took the user and the slot
        from under a fresh sign-in of the same user (its ZREM after the sign-in's ZADD), which
        then acted as signed in without counting towards MAX_CONNECTIONS_PER_USER. Sign-ins
        never overlap (a socket's packets are handled one at a time); an expiry is its own task."""
        lock = socket.data.get("turn")
        if lock is None:
            lock = socket.data["turn"] = asyncio.Lock()  # ~100 bytes, only on sockets that sign in
        return lock

    def _arm_expiry(self, socket: Socket, principal: Principal) -> None:
        delay = max(0.0, principal.expires_at - time.time())
        socket.data["expiry"] = self.expiry_timers.call_later(delay, self._expired, socket, principal)

    def _expired(self, socket: Socket, principal: Principal) -> None:
        asyncio.ensure_future(self.sign_out(socket, principal, "token expired"))

    async def sign_out(self, socket: Socket, principal: Principal, reason: str) -> None:
        """`principal`'s token ran out: unless the socket has signed in again since (another
        user, or a fresh token), leave private rooms, become anonymous, may authenticate again."""
        async with self._turn(socket):
            if not socket.connected or socket.data.get("user") is not principal:
                return
            await self._forget_user(socket)
            await self._leave_private_rooms(socket)
            await socket.emit("auth_error", {"error": reason})

    async def _forget_user(self, socket: Socket) -> None:
        self._cancel_expiry(socket)
        user: Principal | None = socket.data.pop("user", None)
        if user is not None:
            await self.connection_limit.release(user.user_id, socket.sid)

    @staticmethod
    def _cancel_expiry(socket: Socket) -> None:
        timer = socket.data.pop("expiry", None)
        if timer is not None:
            timer.cancel()

    @staticmethod
    async def _leave_private_rooms(socket: Socket) -> None:
        for room in [r for r in socket.rooms if is_private(r)]:
            await socket.leave(room)

    async def recheck_room(self, room: str, sockets: list[Socket], checked: Callable[[Socket], None]) -> None:
        """Who may be in `room` changed (fanout.RECHECK_NAMESPACE): each socket the policy now
        refuses leaves it. Until its check is done (`checked(socket)`), its room frames are held
        back (Fanout.hold). One whose check needs a store that is away is checked again every
        RECHECK_RETRY_SECONDS; one not checked by RECHECK_GIVE_UP_SECONDS (a store away, or one
        that stopped answering: no check outlives that) leaves: the re-check comes once, and an
        old owner's socket must not keep the room (its new owner's events) because the database
        blinked."""
        deadline = time.monotonic() + RECHECK_GIVE_UP_SECONDS
        while True:
            unchecked = []
            for socket in sockets:
                if socket.connected and room in socket.rooms:
                    try:
                        await asyncio.wait_for(self._leave_if_refused(socket, room, socket.data.get("user")),
                                               max(deadline - time.monotonic(), 0.001))
                    except (*STORE_AWAY, asyncio.TimeoutError):
                        unchecked.append(socket)
                        continue
                    except Exception:
                        logger.exception("could not check socket %s in %s again", socket.sid, room)
                checked(socket)
            if not unchecked:
                return
            if time.monotonic() >= deadline:
                logger.error("gave up checking %d sockets in %s again: a store stayed away; they leave it", len(unchecked), room)
                for socket in unchecked:
                    await self._leave(socket, room)
                    checked(socket)
                return
            logger.warning("checking %d sockets in %s again in %.0f s: a store is away", len(unchecked), room, RECHECK_RETRY_SECONDS)
            await asyncio.sleep(min(RECHECK_RETRY_SECONDS, max(deadline - time.monotonic(), 0)))
            sockets = unchecked

    async def _leave_rooms_refused(self, socket: Socket, principal: Principal | None) -> None:
        """Leave the private rooms the policy no longer lets `principal` into."""
        for room in [r for r in socket.rooms if is_private(r)]:
            await self._leave_if_refused(socket, room, principal)

    @classmethod
    async def _leave_if_refused(cls, socket: Socket, room: str, principal: Principal | None) -> None:
        try:
            await check_room_access(principal, room)
        except RealtimeError:
            await cls._leave(socket, room)

    @staticmethod
    async def _leave(socket: Socket, room: str) -> None:
        """The client hears `unsubscribed {room}`, as after its own unsubscribe."""
        await socket.leave(room)
        await socket.emit("unsubscribed", {"room": room, "timestamp": now_ms()})


class HeartbeatEmitter:
    """The seed's `ping {timestamp}` to every connected socket of this process, every interval.

    One timer per process, and the frame is encoded once per tick, not once per socket.
    """

    def __init__(self, interval: float, event_log=None) -> None:
        self.interval = interval
        # The log's head rides on each ping, so a quiet socket's offset stays inside the
        # recovery window however long it has been connected without a room event.
        self.event_log = event_log
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
            try:
                offset = await self.event_log.head() if self.event_log is not None else None
            except Exception:  # Redis down: the ping goes out all the same, without an offset
                offset = None
            frames: list[Any] = encode_event("ping", {"timestamp": now_ms()}, offset=offset)
            for socket in list(self.sockets):
                try:
                    await socket.session.write(frames)
                except Exception:
                    logger.exception("heartbeat to socket %s failed", socket.sid)
