"""The one emit API for every producer: log the event, encode it once, send it to the room.

Each room event is appended to the recovery log (its offset rides along as the event's last
argument, as Socket.IO's connection state recovery expects), encoded once and sent to the room's
channel-layer group; with Redis the append and the publish are one script, so every process
hears the events of all producers in log order. Async code awaits `emit`: when the layer or
Redis cannot be reached the event waits in this process's EventQueue and is retried. Celery
tasks, views and admin actions call `emit_sync`, which raises EmitFailed instead so the task
retries.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

import redis.exceptions
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from .errors import RealtimeError
from .event_queue import FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS, EventQueue
from .fanout import MESSAGE_TYPE, RECHECK_NAMESPACE
from .protocol import socketio as sio
from .pubsub_layer import message_template, publish_channels
from .recovery import make_event_log
from .rooms import room_to_group, validate_room

logger = logging.getLogger(__name__)
DELIVERY_ERRORS = (OSError, ConnectionError, TimeoutError, redis.exceptions.RedisError)


# Where a room message's offset goes until the log gives it (pubsub_layer.message_template).
# JSON writes it as it is; the offset is an event's last argument, so its last occurrence.
OFFSET_SLOT = "<offset>"
# The shortest a sync emit's try may take, even at its deadline: a Redis round trip or several.
MIN_TRY_SECONDS = 1.0


class EmitFailed(RealtimeError):
    code = "emit_failed"
    default_message = "the event could not reach the channel layer"


@dataclass
class RoomEvent:
    rooms: tuple[str, ...]  # one event for the union: a socket in several of them gets it once
    event: str
    data: Any
    namespace: str = "/"
    offset: str | None = None  # set once the event is in the recovery log; retries keep it
    # Its append's id: a retry of an append whose answer was lost gets the first one's offset.
    # A producer that emits an event again after giving up on it (a claim given back, the next
    # pass) names it, so that second emit is the same event, not a new one ("": a random id).
    event_id: str = ""

    def __post_init__(self) -> None:
        self.event_id = self.event_id or secrets.token_hex(8)


def encode_event(event: str, data: Any, namespace: str = "/", offset: str | None = None) -> list[str | bytes]:
    """The Engine.IO frames of a Socket.IO EVENT: built once, written to every socket as is."""
    args = [event, data] if offset is None else [event, data, offset]
    text, *attachments = sio.encode_packet(sio.Packet(sio.PacketType.EVENT, namespace, args))
    return ["4" + text, *attachments]


def room_message(namespace: str, rooms: tuple[str, ...], event: str, data: Any, offset: str | None) -> dict:
    """The channel-layer message of a room event, as each process's fan-out reads it."""
    return {
        "type": MESSAGE_TYPE,
        "namespace": namespace,
        "rooms": list(rooms),
        "offset": offset,  # also the event's id: a process delivers it once, whatever the rooms or the path
        "frames": encode_event(event, data, namespace, offset),
    }


class Emitter:
    """A producer: the recovery log, the channel layer, and the retry queue of this process."""

    def __init__(self, log=None) -> None:
        self.log = log if log is not None else make_event_log(
            settings.REDIS_URL, settings.RECOVERY_MAX_DISCONNECTION_MS, settings.REDIS_PREFIX
        )
        self.queue = EventQueue(settings.EVENT_QUEUE_MAX, self.deliver)

    async def emit(self, item: RoomEvent) -> None:
        if self.queue.pending:  # nothing overtakes an event already waiting
            self.queue.put(item)
            return
        try:
            await self.deliver(item)
        except DELIVERY_ERRORS:
            self.queue.put(item)

    async def deliver(self, item: RoomEvent) -> None:
        layer = get_channel_layer()
        groups = [room_to_group(room) for room in item.rooms]
        channels = publish_channels(layer, groups)
        if item.offset is None and channels is not None:
            # Logged and published in one script: every process hears the events in log order
            # (pubsub_layer's docstring), whichever process emits them.
            message = room_message(item.namespace, item.rooms, item.event, item.data, OFFSET_SLOT)
            message["t"] = time.time()
            item.offset = await self.log.append_and_publish(item.namespace, item.rooms, item.event, item.data,
                                                            item.event_id, message_template(message, OFFSET_SLOT), channels)
            return
        if item.offset is None:
            item.offset = await self.log.append(item.namespace, item.rooms, item.event, item.data, item.event_id)
        message = room_message(item.namespace, item.rooms, item.event, item.data, item.offset)
        message["t"] = time.time()  # for the fan-out's layer latency in /metrics
        for group in groups:
            await layer.group_send(group, message)


_emitter: Emitter | None = None


def emitter() -> Emitter:
    """This process's emitter (and with it the recovery log and session store)."""
    global _emitter
    if _emitter is None:
        _emitter = Emitter()
    return _emitter


def _rooms(room: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    rooms = (room,) if isinstance(room, str) else tuple(dict.fromkeys(room))
    if not rooms:
        raise ValueError("emit needs at least one room")
    return tuple(validate_room(r) for r in rooms)


async def emit(room: str | list[str], event: str, data: Any, *, namespace: str = "/", event_id: str = "") -> None:
    """`event` to everyone in `room`, or in any of several rooms (each socket gets it once).
    An emit under the `event_id` of one already logged (within recovery.APPENDED_MS) is that
    event, not a new one: a socket that got it, live or from the log, does not get it twice."""
    await emitter().emit(RoomEvent(_rooms(room), event, data, namespace, event_id=event_id))


def recheck_room_sync(room: str, timeout: float | None = None) -> None:
    """Have every process with sockets in `room` ask the room-access policy about them again
    (from sync code: a model's signal, after commit). EmitFailed if the layer cannot be reached
    (within `timeout`)."""
    _emit_sync_once(RoomEvent((validate_room(room),), "recheck", None, RECHECK_NAMESPACE), timeout)


def emit_sync(room: str | list[str], event: str, data: Any, *, namespace: str = "/", retry_for: float = 0,
              event_id: str = "") -> None:
    """Emit from sync code (Celery tasks, views). With `retry_for`, a layer fault is retried with
    the event queue's backoff and jitter for that many seconds before EmitFailed is raised.
    A retry is the event its first try logged, if that try got so far (as in the async emit's
    queue): sockets that got it then, or recover past it, do not get it twice. So is a later
    emit under the same `event_id` (as `emit`'s), once this one raised EmitFailed."""
    item = RoomEvent(_rooms(room), event, data, namespace, event_id=event_id)
    call_with_retries(lambda timeout: _emit_sync_once(item, timeout), retry_for, f"emit of {event} to {room}")


def call_with_retries(attempt: Callable[[float | None], None], retry_for: float, what: str) -> None:
    """Call `attempt(timeout)` until it does not raise EmitFailed, with the event queue's backoff
    and jitter, for up to `retry_for` seconds; then its EmitFailed is raised. Each try is given
    what is left until the deadline as its timeout (None without retries): a stalled Redis holds
    a command for its socket timeout, per command, so a caller holding a lease for `retry_for`
    is done within it."""
    deadline = time.monotonic() + retry_for
    delay = FIRST_RETRY_SECONDS
    while True:
        try:
            return attempt(max(deadline - time.monotonic(), MIN_TRY_SECONDS) if retry_for else None)
        except EmitFailed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            pause = min(delay * random.uniform(0.5, 1.5), left)
            logger.warning("%s failed, retrying in %.1f s", what, pause)
            time.sleep(pause)
            delay = min(delay * 2, MAX_RETRY_SECONDS)


def _emit_sync_once(item: RoomEvent, timeout: float | None) -> None:
    async def deliver_once() -> None:
        # With Redis, a fresh emitter: async_to_sync may run each call in a new event loop,
        # which Redis connections made in another loop cannot serve. The in-memory log is
        # plain data, and must be the process's one so offsets stay in one sequence.
        emitter_here = Emitter() if settings.REDIS_URL else Emitter(emitter().log)
        await asyncio.wait_for(emitter_here.deliver(item), timeout)

    try:
        async_to_sync(deliver_once)()
    except DELIVERY_ERRORS as exc:
        raise EmitFailed(f"could not emit {item.event} to {', '.join(item.rooms)}: {exc}") from exc
