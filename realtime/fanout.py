"""This process's room memberships, and delivery of each room frame to its local sockets.

Rooms are channel-layer groups whose members are processes, not sockets (DESIGN.md decision 3):
the process joins a room's group when its first local socket joins and leaves it with the last,
reads every room message once from its own channel, and writes the ready frame to each local
socket in the room. A room of 5,000 sockets costs one layer message per process per emit.
With Redis, what was published while the process's subscriber connection was down is read back
from the event log once it subscribes again (`resubscribed`, gap_fill.py), room re-checks
included: they are logged as room events are (RECHECK_NAMESPACE).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from channels.layers import get_channel_layer

from .eager import result_or_future
from .pubsub_layer import GroupMembership, watch_resubscribes
from .recovery import offset_key
from .rooms import PRIVATE_GROUP_PREFIXES, room_to_group

if TYPE_CHECKING:
    from .server import Socket

logger = logging.getLogger(__name__)
MESSAGE_TYPE = "room.emit"
# Who may be in a room changed (realtime.permissions.room_access_changed): each process that has
# sockets in it asks the policy about them again. Sent as a room event of this namespace (no
# Socket.IO namespace: they all start with "/"), so it is logged and ordered with the room's
# events: a process that missed it reads it back with them, and no socket is ever sent it.
RECHECK_NAMESPACE = "#recheck"
# Offsets of the events delivered last, to drop a second copy: a multi-room event comes once per
# room group, within milliseconds; after a re-subscribe, the log is read from a few seconds
# before the last delivery (gap_fill.REWIND_SECONDS). 10,000 covers 2,000 events/s per process.
SEEN_EVENTS = 10_000
# After a re-subscribe, how long to wait before reading the log: redis-py has sent the SUBSCRIBEs
# when it calls back; the wait lets Redis take them before the read, so every event is either
# published to us afterwards or already logged when we read.
FILL_DELAY_S = 0.1
# Live messages wait while the log is read; a read that hangs (Redis gone again) must not hold
# them for longer than this.
FILL_TIMEOUT_S = 5.0
# Room messages taken off the channel at once when they queue up (see Fanout._read): enough to
# cut the writes per socket a hundredfold under load, few enough that a batch of a room's
# events for 5,000 sockets is written in well under a second.
BATCH_MAX = 100


class LatencyStats:
    """Emit-to-fan-out latency (producer's clock to this process's): count, sum, max, and
    p50/p99 of the last SAMPLES messages, for /metrics."""

    SAMPLES = 1000  # enough for a stable p99, small enough to sort on every scrape

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self.recent: deque[float] = deque(maxlen=self.SAMPLES)

    def record(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.max = max(self.max, seconds)
        self.recent.append(seconds)

    def summary(self) -> dict:
        ordered = sorted(self.recent)
        at = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2) if ordered else None  # noqa: E731
        return {"count": self.count, "sumMs": round(self.total * 1000, 1), "p50Ms": at(0.5), "p99Ms": at(0.99), "maxMs": round(self.max * 1000, 2)}


class Fanout:
    def __init__(self, layer_alias: str = "default", fill_gap=None, recheck=None) -> None:
        self.layer_alias = layer_alias
        # async (room, its local sockets) -> None: asks the policy again (namespace.recheck_room)
        self.recheck = recheck
        self._rechecks: set[asyncio.Task] = set()
        self._checking: dict[Socket, set[object]] = {}  # socket -> the re-checks holding it (hold)
        # async (last offset delivered, {room: joined at, epoch ms}) -> room messages logged
        # since (gap_fill.LogGapFill); None where the layer cannot lose messages (in memory).
        self.fill_gap = fill_gap
        self._members: dict[tuple[str, str], set[Socket]] = defaultdict(set)  # (namespace, room)
        self._group_refs: dict[str, int] = defaultdict(int)  # room -> local sockets, any namespace
        self._channel: str | None = None
        self._groups: GroupMembership | None = None  # made with the channel
        self._reader: asyncio.Task | None = None
        # Per room, while a join or leave of it runs or waits: joining one room (a Redis
        # SUBSCRIBE) must not wait for another's, and an idle room (a user's, one per signed-in
        # socket) holds no lock. Room -> [lock, joins and leaves holding or waiting for it].
        self._locks: dict[str, list] = {}
        self._channel_lock = asyncio.Lock()
        self.latency = LatencyStats()
        self._seen: set[str] = set()  # offsets of recent events already delivered here
        self._seen_order: deque[str] = deque()
        self._last_offset: str | None = None  # of the event delivered last
        self._joined_ms: dict[str, float] = {}  # room -> when this process subscribed to it
        self._held: list[dict] | None = None  # live room messages, while a gap is read
        self._filling: asyncio.Task | None = None
        self._fill_again = False
        self.refilled = 0  # events delivered from the log after a re-subscribe (/metrics)

    @property
    def layer(self):
        return get_channel_layer(self.layer_alias)

    async def join(self, socket: Socket, room: str) -> None:
        if room in socket.rooms:
            return
        group = room_to_group(room)
        if room in self._locks or not self._joined_now(room, group):
            async with self._room_lock(room):
                if self._group_refs[room] == 0:
                    await (await self._membership()).join(group)
                    self._joined_ms[room] = time.time() * 1000
                    watch_resubscribes(self.layer, self.resubscribed)
                self._group_refs[room] += 1
        socket.rooms.add(room)
        self._members[(socket.namespace, room)].add(socket)
        if not socket.connected:  # it went while the group join awaited, and left all it was in then
            await self.leave(socket, room)

    async def leave(self, socket: Socket, room: str) -> None:
        if room not in socket.rooms:
            return
        socket.rooms.discard(room)
        key = (socket.namespace, room)
        self._members[key].discard(socket)
        if not self._members[key]:
            del self._members[key]
        if room not in self._locks and self._left_now(room):
            return
        async with self._room_lock(room):
            self._group_refs[room] -= 1
            if self._group_refs[room] == 0:
                del self._group_refs[room]
                self._joined_ms.pop(room, None)
                await self._groups.leave(room_to_group(room))

    def _joined_now(self, room: str, group: str) -> bool:
        """Count one more local member of `room` if that needs no await: the room is joined here
        already, or its group is heard through a pattern (pubsub_layer). Only while no join or
        leave of the room is in flight (the caller checks `_locks`): nothing can come between."""
        if self._group_refs.get(room):
            self._group_refs[room] += 1
            return True
        if self._groups is not None and self._groups.join_now(group):
            self._group_refs[room] = 1
            self._joined_ms[room] = time.time() * 1000
            return True
        return False

    def _left_now(self, room: str) -> bool:
        """As _joined_now, for a leave: one local member fewer, and the last one's group left if
        that needs no await."""
        refs = self._group_refs.get(room, 0)
        if refs > 1:
            self._group_refs[room] = refs - 1
            return True
        if refs == 1 and self._groups is not None and self._groups.leave_now(room_to_group(room)):
            del self._group_refs[room]
            self._joined_ms.pop(room, None)
            return True
        return False

    async def leave_all(self, socket: Socket) -> None:
        for room in list(socket.rooms):
            await self.leave(socket, room)

    @asynccontextmanager
    async def _room_lock(self, room: str):
        entry = self._locks.get(room)
        if entry is None:
            entry = self._locks[room] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[room]

    def local_members(self, namespace: str, room: str) -> set[Socket]:
        return self._members.get((namespace, room), set())

    def deliver(self, namespace: str, rooms: list[str], events: list[tuple[str | None, list]]) -> None:
        """Write the frames of `events` ((offset, frames) each, in order) to every local socket
        in any of `rooms`: one write per socket for all of them."""
        frames = events[0][1] if len(events) == 1 else [f for _, fs in events for f in fs]
        if len(rooms) == 1:
            targets = list(self._members.get((namespace, rooms[0]), ()))
        else:
            targets = list(dict.fromkeys(s for room in rooms for s in self._members.get((namespace, room), ())))
        held_for, oldest = tuple(rooms), None  # each made once per call, if a socket needs it
        for socket in targets:
            if socket.withheld is not None:  # one of its rooms is being re-checked (hold)
                socket.withheld.append((held_for, events))
            elif socket.recovering is not None:  # replaying missed events: hold live ones back
                socket.recovering.extend(events)
            elif socket.replayed is not None:  # recovered lately: not what its replay sent
                oldest = oldest or _oldest(events)
                _push_unreplayed(socket, events, frames, oldest)
            else:
                _push(socket, frames)

    def hold(self, socket: Socket, recheck: object) -> None:
        """Keep `socket`'s live room frames back until `release(socket, recheck)`: who may be in
        one of its rooms is being asked again, and what comes meanwhile may be for its new owner."""
        self._checking.setdefault(socket, set()).add(recheck)
        if socket.withheld is None:
            socket.withheld = []

    def release(self, socket: Socket, recheck: object) -> None:
        """`recheck` is done with `socket` (it left the room if refused): once no re-check holds
        it (two of one room may overlap: A -> B -> C), what was kept back goes out, but for rooms
        it is no longer in. Releasing twice, or what was not held, does nothing."""
        checking = self._checking.get(socket)
        if checking is None or recheck not in checking:
            return
        checking.discard(recheck)
        if checking:
            return
        del self._checking[socket]
        withheld, socket.withheld = socket.withheld or [], None
        kept = [event for rooms, events in withheld if not socket.rooms.isdisjoint(rooms) for event in events]
        if not kept or not socket.connected:
            return
        if socket.recovering is not None:
            socket.recovering.extend(kept)
        elif socket.replayed is not None:
            _push_unreplayed(socket, kept, None, _oldest(kept))
        else:
            _push(socket, [frame for _, frames in kept for frame in frames])

    async def _membership(self) -> GroupMembership:
        if self._groups is not None:
            return self._groups
        async with self._channel_lock:
            if self._channel is None:
                self._channel = await self.layer.new_channel("fanout.")
                self._groups = GroupMembership(self.layer, self._channel, pattern_prefixes=PRIVATE_GROUP_PREFIXES)
                self._reader = asyncio.ensure_future(self._read())
                watch_resubscribes(self.layer, self.resubscribed)
        return self._groups

    def resubscribed(self, connection=None) -> None:
        """The layer's subscriber connection was made again (pubsub_layer.watch_resubscribes): room messages
        published while it was down reached no socket here. Read them from the log."""
        if self.fill_gap is None or self._channel is None:
            return
        if self._filling is not None:
            self._fill_again = True  # dropped again while reading: the read may predate it
            return
        self._filling = asyncio.ensure_future(self._fill())

    async def _fill(self) -> None:
        """Hold live messages; read what was missed; deliver both in log order, each once."""
        self._held = []
        try:
            again = True
            while again:
                self._fill_again = False
                await asyncio.sleep(FILL_DELAY_S)
                try:
                    missed = await asyncio.wait_for(self.fill_gap(self._last_offset, dict(self._joined_ms)), FILL_TIMEOUT_S)
                except Exception:
                    logger.exception("could not read the events missed while re-subscribing; sockets here may lack some")
                    missed = []
                held, self._held = self._held, []
                live = {m.get("offset") for m in held}
                # the rewind re-reads some delivered ones; the newest may also have come live
                missed = [m for m in missed if m["offset"] not in self._seen and m["offset"] not in live]
                if missed:
                    self.refilled += len(missed)
                    logger.warning("delivering %d room events published while the layer re-subscribed", len(missed))
                await self._deliver_in_order(sorted(missed + held, key=_log_order))
                again = self._fill_again
        finally:
            held, self._held = self._held, None
            self._deliver_batch(held)
            self._filling = None

    async def _read(self) -> None:
        """Deliver what arrives on this process's channel, in order.

        Each socket's frames cost a write system call, most of a delivery's CPU. So when room
        messages queue up on the channel (the process is behind), all that are there are taken
        at once and a socket gets one write for all of them; a process that keeps up takes
        them one by one and adds no wait.
        """
        layer = self.layer
        next_message: asyncio.Future | None = None
        while True:
            batch = [await (next_message or layer.receive(self._channel))]
            next_message = None
            while len(batch) < BATCH_MAX:
                message, next_message = result_or_future(layer.receive(self._channel))
                if next_message is not None:
                    break
                batch.append(message)
            if self._held is not None:  # a gap is being read: these go out after it, in order
                self._held.extend(batch)
            else:
                self._deliver_batch(batch)

    async def _deliver_in_order(self, messages: list[dict]) -> None:
        """Deliver a gap's `messages` in order; each re-check among them is done before the
        events after it go out: they may be a new owner's, not for the old one's socket. Bounded,
        as the log read is; live messages are held meanwhile, as for the read. Live, a re-check
        runs as it arrives and holds nothing (any user can make one, deleting an automation it
        watches: it must not stall every room of the process)."""
        start = 0
        for i, message in enumerate(messages):
            if message.get("namespace") == RECHECK_NAMESPACE:
                rechecks = self._deliver_batch(messages[start:i + 1])
                if rechecks:
                    await asyncio.wait(rechecks, timeout=FILL_TIMEOUT_S)
                start = i + 1
        self._deliver_batch(messages[start:])

    def _deliver_batch(self, batch: list[dict]) -> list[asyncio.Task]:
        """Deliver runs of messages for the same rooms together (they reach the same sockets);
        the re-checks it started."""
        run_key, run, rechecks = None, [], []
        for message in batch:
            if message.get("type") != MESSAGE_TYPE:
                logger.warning("fan-out channel got an unexpected %r message", message.get("type"))
                continue
            try:
                rooms = message["rooms"]
                offset = message.get("offset")
                if offset is not None:
                    if self._seen_before(offset):
                        continue  # once per room group, or live and read back from the log
                    self._last_offset = offset
                if message["namespace"] == RECHECK_NAMESPACE:
                    if run:  # what came before it goes out before its sockets are held
                        self._deliver_run(run_key, run)
                        run_key, run = None, []
                    rechecks.extend(self._recheck(room) for room in rooms)
                    continue
                if "t" in message:
                    self.latency.record(time.time() - message["t"])
                key = (message["namespace"], tuple(rooms))
                event = (offset, message["frames"])
            except Exception:
                logger.exception("malformed room message for rooms %s", message.get("rooms"))
                continue
            if key != run_key and run:
                self._deliver_run(run_key, run)
                run = []
            run_key = key
            run.append(event)
        if run:
            self._deliver_run(run_key, run)
        return [task for task in rechecks if task is not None]

    def _recheck(self, room: str) -> asyncio.Task | None:
        sockets = [s for (_, r), members in self._members.items() if r == room for s in members]
        if not sockets or self.recheck is None:
            return None
        recheck = object()  # this re-check's hold, whatever others hold the same sockets
        for socket in sockets:  # from this message on, until each is checked (`checked`)
            self.hold(socket, recheck)
        task = asyncio.ensure_future(self.recheck(room, sockets, lambda socket: self.release(socket, recheck)))
        self._rechecks.add(task)  # held: the loop keeps only a weak reference to a task
        task.add_done_callback(lambda task: self._rechecked(task, recheck, sockets))
        return task

    def _rechecked(self, task: asyncio.Task, recheck: object, sockets: list[Socket]) -> None:
        self._rechecks.discard(task)
        for socket in sockets:  # a check that failed or was cancelled holds nothing for ever
            self.release(socket, recheck)

    def _deliver_run(self, key: tuple[str, tuple[str, ...]], events: list) -> None:
        try:
            self.deliver(key[0], list(key[1]), events)
        except Exception:
            logger.exception("delivery to rooms %s failed", key[1])

    def _seen_before(self, offset: str) -> bool:
        if offset in self._seen:
            return True
        self._seen.add(offset)
        self._seen_order.append(offset)
        if len(self._seen_order) > SEEN_EVENTS:
            self._seen.discard(self._seen_order.popleft())
        return False


def _push(socket: Socket, frames: list) -> None:
    try:
        socket.session.push(frames)  # never waits on a slow socket: engine.py
    except Exception:  # one broken socket must not cost the others this message
        logger.exception("write to socket %s failed", socket.sid)


def _oldest(events: list) -> tuple:
    """The oldest offset's key among `events` ((offset, frames) each); past any if none has one."""
    return min((offset_key(offset) for offset, _ in events if offset is not None), default=(float("inf"), 0))


def _push_unreplayed(socket: Socket, events: list, frames: list | None, oldest: tuple) -> None:
    """Push `events` ((offset, frames) each; `frames` all of theirs, if made) but those the
    socket's recovery replayed already. Usually none was (`oldest` is past the replay's last):
    then the shared frames go as they are, nothing parsed per socket."""
    last, until = socket.replayed
    if time.monotonic() > until:
        socket.replayed = None
    elif oldest <= last:
        events, frames = [(offset, fs) for offset, fs in events if offset is None or offset_key(offset) > last], None
    if frames is None:
        frames = [frame for _, fs in events for frame in fs]
    if frames:
        _push(socket, frames)


def _log_order(message: dict) -> tuple[int, int]:
    offset = message.get("offset")
    return offset_key(offset) if offset is not None else (0, 0)
