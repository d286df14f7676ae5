"""Connection state recovery: the room event log with offsets, and saved session state.

Socket.IO v4's protocol: the CONNECT reply carries a private id (pid), every room event carries
its offset as a last argument, and a reconnecting client sends {pid, offset}; the server then
restores the session's rooms and user and replays the room events it missed.

One log for all rooms, each entry tagged with its room: a client keeps one offset however many
rooms it is in, so offsets must be ordered across rooms, which a single log gives for free.
Redis Streams in production (entry ids are the offsets), a bounded deque on the embedded default.
Both are bounded in length; session state expires after RECOVERY_MAX_DISCONNECTION_MS, which
bounds recovery in time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import msgpack

from .redis_client import OwnConnection, redis_client

logger = logging.getLogger(__name__)

# Events kept for replay. At 20 updates/s on 50 rooms, 100,000 entries cover the default
# two-minute window a hundred times over; a replay scans at most this many entries.
LOG_MAX_ENTRIES = 100_000
# How long an append remembers that it was done, so a retry of it (its answer lost with the
# connection, the command done) gets the same offset instead of logging the event twice: longer
# than the retries of an emit (a Celery task's, five minutes), and than a domain's emit again of
# an event it gave up on under the same id (a claim given back or lapsed: its 90 s lease, a pass).
APPENDED_MS = 10 * 60 * 1000
# An event's append, once: its id (a retry's) -> the offset it was given, else XADD and trim (as
# in RedisEventLog.append's docstring) and remember the offset for APPENDED_MS.
_APPEND = """
local done = redis.call('GET', KEYS[2])
if done then return done end
local offset = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'm', ARGV[1])
redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[3])
redis.call('SET', KEYS[2], offset, 'PX', ARGV[4])
"""
# The append, then the message (pubsub_layer.message_template's five parts, ARGV[5..9], the
# offset put in) published on each channel: in one script, so no other event is logged between
# an event's append and its publish, and every subscriber hears them in log order. An event
# already appended is not published again: its first script published it, so every process
# then in its rooms heard it or reads it from the log when it subscribes again, and a copy sent
# now would come after later events (a socket's last offset would go back).
_APPEND_ONCE_AND_PUBLISH = """
local function str(s)
  local n = #s
  if n < 32 then return string.char(0xa0 + n) .. s end
  if n < 256 then return string.char(0xd9, n) .. s end
  if n < 65536 then return string.char(0xda, math.floor(n / 256), n % 256) .. s end
  return string.char(0xdb, math.floor(n / 16777216), math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256) .. s
end
""" + _APPEND + """
local message = ARGV[5] .. str(offset) .. ARGV[6] .. str(ARGV[7] .. offset .. ARGV[8]) .. ARGV[9]
for i = 10, #ARGV do redis.call('PUBLISH', ARGV[i], message) end
return offset
"""
_APPEND_ONCE = _APPEND + "return offset\n"
# How long a taken session state stays readable by the take that took it (its one retry: the
# connection dropped after Redis did the GETDEL, before its answer came back).
TAKEN_MS = 10_000
# A saved session state, taken once: by this take (KEYS[2] is its own) again if it already took it.
_TAKE_ONCE = """
local state = redis.call('GETDEL', KEYS[1])
if state then
  redis.call('SET', KEYS[2], state, 'PX', ARGV[1])
  return state
end
return redis.call('GET', KEYS[2])
"""


@dataclass(frozen=True)
class LoggedEvent:
    offset: str
    namespace: str
    rooms: tuple[str, ...]
    event: str
    data: Any


def offset_key(offset: str) -> tuple[int, int]:
    """Offsets ("12" in memory, "1700000000000-3" in Redis) as comparable tuples."""
    ms, _, seq = offset.partition("-")
    return int(ms), int(seq or 0)


def valid_offset(offset: object) -> bool:
    if not isinstance(offset, str) or len(offset) > 40:
        return False
    try:
        offset_key(offset)
    except ValueError:
        return False
    return True


class MemoryEventLog:
    """Bounded by `max_entries` and by age: nobody can recover from older than `max_age_ms`."""

    def __init__(self, max_age_ms: int, max_entries: int = LOG_MAX_ENTRIES) -> None:
        self.max_age_ms = max_age_ms
        self._entries: deque[LoggedEvent] = deque(maxlen=max_entries)
        self._logged_at: deque[float] = deque(maxlen=max_entries)
        self._counter = itertools.count(1)
        self._dropped_through = 0  # the newest offset no longer in the log

    async def append(self, namespace: str, rooms: tuple[str, ...], event: str, data: Any, event_id: str = "") -> str:
        now = time.monotonic()
        horizon = now - self.max_age_ms / 1000
        while self._entries and (len(self._entries) == self._entries.maxlen or self._logged_at[0] < horizon):
            self._dropped_through = int(self._entries.popleft().offset)
            self._logged_at.popleft()
        offset = str(next(self._counter))
        self._entries.append(LoggedEvent(offset, namespace, tuple(rooms), event, data))
        self._logged_at.append(now)
        return offset

    async def head(self) -> str:
        return self._entries[-1].offset if self._entries else str(self._dropped_through)

    shared_head = head  # no round trip to share

    async def since(self, offset: str, namespace: str, rooms: set[str]) -> list[LoggedEvent] | None:
        """Events after `offset` in `rooms`, or None if the log no longer reaches back to it."""
        after = int(offset_key(offset)[0])
        if after < self._dropped_through:
            return None
        return [e for e in self._entries
                if int(e.offset) > after and e.namespace == namespace and not rooms.isdisjoint(e.rooms)]


class RedisEventLog:
    """A Redis Stream, bounded by every append, whichever process makes it: Celery tasks, views
    and admin actions (emit_sync) build a log object per event, so nothing counted per object
    could be trusted to trim. Each XADD drops entries older than the window (MINID; entry ids
    are Redis' milliseconds) and the same round trip caps the length (MAXLEN). Both trim with
    `~`: Redis drops whole nodes only, keeping at most a node's worth (up to 100 entries) more
    than asked, at no cost when there is nothing to drop.

    How far trimming went is read from the stream itself, never recorded: entries only leave
    from its head (no XDEL), so once any entry has left (XINFO's entries-added, Redis 7.0, is
    more than its length) an offset before the first entry still there may have missed events,
    and the client is told so. The age cut uses this host's clock: a skewed one trims a little
    too much or too little, never silently, as the boundary is the stream's own.
    """

    def __init__(self, redis_url: str, prefix: str, max_age_ms: int, max_entries: int = LOG_MAX_ENTRIES) -> None:
        self.client = redis_client(redis_url)
        self.key = f"{prefix}:events"
        self.max_age_ms = max_age_ms
        self.max_entries = max_entries
        self._head_read: asyncio.Future | None = None
        self._head_connection = OwnConnection(self.client)  # a shared read at a time is in flight
        self._append_once = self.client.register_script(_APPEND_ONCE)
        self._append_once_and_publish = self.client.register_script(_APPEND_ONCE_AND_PUBLISH)

    async def append(self, namespace: str, rooms: tuple[str, ...], event: str, data: Any, event_id: str = "") -> str:
        """The event's offset. Appending again under the same `event_id` (a retry whose first
        try's answer was lost) gives the same offset and logs nothing (_APPEND_ONCE)."""
        return await self._run(self._append_once, namespace, rooms, event, data, event_id)

    async def append_and_publish(self, namespace: str, rooms: tuple[str, ...], event: str, data: Any, event_id: str,
                                 template: list[bytes], channels: list[str]) -> str:
        """`append`, and the message of `template` (pubsub_layer.message_template), its offset
        put in, published on each of `channels` in the same script."""
        return await self._run(self._append_once_and_publish, namespace, rooms, event, data, event_id, *template, *channels)

    async def _run(self, script, namespace: str, rooms: tuple[str, ...], event: str, data: Any, event_id: str, *more) -> str:
        blob = msgpack.packb([namespace, list(rooms), event, data], use_bin_type=True)
        oldest_kept = f"{int(time.time() * 1000) - self.max_age_ms}-0"
        done_key = f"{self.key}:appended:{event_id or secrets.token_hex(8)}"
        offset = await script(keys=[self.key, done_key], args=[blob, oldest_kept, self.max_entries, APPENDED_MS, *more])
        return offset.decode()

    async def head(self) -> str:
        entries = await self.client.xrevrange(self.key, count=1)
        return entries[0][0].decode() if entries else "0-0"

    async def shared_head(self) -> str:
        """The newest offset, for a socket in no room yet: connects in a burst share one read.

        A caller that finds a read in flight takes its answer, at most one round trip older than
        its own would be. Nothing logged meanwhile was the socket's to miss (it is in no room); at
        worst a recovery replays an event from just before it subscribed.
        """
        if self._head_read is None:
            self._head_read = asyncio.ensure_future(self._read_shared_head())
            self._head_read.add_done_callback(self._head_read_done)
        return await asyncio.shield(self._head_read)

    async def aclose(self) -> None:
        await self._head_connection.aclose()
        await self.client.aclose()

    async def _read_shared_head(self) -> str:
        entries = await self._head_connection.execute("XREVRANGE", self.key, "+", "-", "COUNT", 1)
        return entries[0][0].decode() if entries else "0-0"

    def _head_read_done(self, read: asyncio.Future) -> None:
        self._head_read = None
        if not read.cancelled():
            read.exception()  # retrieved here: a failure is each waiting caller's to handle

    async def since(self, offset: str, namespace: str, rooms: set[str]) -> list[LoggedEvent] | None:
        # One transaction: a trim between reading the boundary and the entries would go unseen.
        pipe = self.client.pipeline(transaction=True)
        pipe.xinfo_stream(self.key)
        pipe.xrange(self.key, min=f"({offset}", max="+")
        info, entries = await pipe.execute(raise_on_error=False)
        if isinstance(info, Exception):
            if "no such key" not in str(info):
                raise info
        elif info["entries-added"] > info["length"]:  # trimmed: up to where?
            first = info["first-entry"][0] if info["first-entry"] else info["last-generated-id"]
            if offset_key(offset) < offset_key(first.decode()):
                return None  # trimmed past the client's offset: it must refetch
        if isinstance(entries, Exception):
            raise entries
        return [e for e in map(self._event, entries) if e.namespace == namespace and not rooms.isdisjoint(e.rooms)]

    async def after(self, offset: str) -> list[LoggedEvent]:
        """Every event logged after `offset` that the log still holds, in any room."""
        return [self._event(entry) for entry in await self.client.xrange(self.key, min=f"({offset}", max="+")]

    @staticmethod
    def _event(entry: tuple[bytes, dict]) -> LoggedEvent:
        entry_id, fields = entry
        ns, entry_rooms, event, data = msgpack.unpackb(fields[b"m"], raw=False)
        return LoggedEvent(entry_id.decode(), ns, tuple(entry_rooms), event, data)

    @staticmethod
    def rewound(offset: str | None, seconds: float, fallback_ms: float) -> str:
        """The offset `seconds` before `offset` (entry ids are Redis' milliseconds), or before
        `fallback_ms` (epoch milliseconds) when there is no offset yet."""
        ms = offset_key(offset)[0] if offset is not None else int(fallback_ms)
        return f"{max(0, ms - int(seconds * 1000))}-0"


class MemorySessionStore:
    """Saved state of disconnected sockets by pid, for RECOVERY_MAX_DISCONNECTION_MS."""

    def __init__(self, ttl_ms: int) -> None:
        self.ttl_ms = ttl_ms
        self._states: dict[str, tuple[float, dict]] = {}

    async def save(self, pid: str, state: dict) -> None:
        self._states[pid] = (time.monotonic() + self.ttl_ms / 1000, state)

    def sweep(self) -> int:
        """Drop expired states (ROOM_CLEANUP_INTERVAL); how many. Redis expires its own."""
        now = time.monotonic()
        expired = [key for key, (expires, _) in self._states.items() if expires < now]
        for key in expired:
            del self._states[key]
        return len(expired)

    async def take(self, pid: str) -> dict | None:
        expires, state = self._states.pop(pid, (0.0, None))
        return state if expires >= time.monotonic() else None


class RedisSessionStore:
    """Saved state in Redis, where any process the client reconnects to finds it. A save Redis
    refuses (it is away: when mobile clients drop most) is held here and tried again every
    RETRY_SECONDS until Redis takes it or its time is up; until then this process finds it."""

    RETRY_SECONDS = 1.0

    def __init__(self, redis_url: str, ttl_ms: int, prefix: str) -> None:
        self.client = redis_client(redis_url)
        self.ttl_ms = ttl_ms
        self.key = f"{prefix}:recovery:"
        self._unsaved: dict[str, tuple[float, dict]] = {}  # pid -> (expires, monotonic; state)
        self._retrying: asyncio.Task | None = None
        self._take_once = self.client.register_script(_TAKE_ONCE)

    async def save(self, pid: str, state: dict) -> None:
        try:
            await self.client.set(self.key + pid, json.dumps(state), px=self.ttl_ms)
        except Exception as exc:
            logger.warning("recovery state of %s held in this process until Redis takes it: %s", pid, exc)
            self._unsaved[pid] = (time.monotonic() + self.ttl_ms / 1000, state)
            if self._retrying is None or self._retrying.done():
                self._retrying = asyncio.ensure_future(self._retry())

    async def take(self, pid: str) -> dict | None:
        held = self._unsaved.pop(pid, None)
        if held is not None:
            return held[1] if held[0] >= time.monotonic() else None
        # Not a GETDEL: redis-py retries a command whose connection dropped, and a retried GETDEL
        # finds nothing, so a reconnection on a flaky network would not be recovered.
        taken_key = f"{self.key}{pid}:taken:{secrets.token_hex(8)}"
        raw = await self._take_once(keys=[self.key + pid, taken_key], args=[TAKEN_MS])
        return json.loads(raw) if raw else None

    async def _retry(self) -> None:
        while self._unsaved:
            await asyncio.sleep(self.RETRY_SECONDS)
            for pid, (expires, state) in list(self._unsaved.items()):
                left_ms = int((expires - time.monotonic()) * 1000)
                if left_ms <= 0:
                    self._unsaved.pop(pid, None)
                    continue
                try:
                    await self.client.set(self.key + pid, json.dumps(state), px=left_ms)
                    if self._unsaved.pop(pid, None) is None:  # taken here meanwhile: not twice
                        await self.client.delete(self.key + pid)
                except Exception:
                    break  # still away: the rest wait for the next round


def make_event_log(redis_url: str | None, max_age_ms: int, redis_prefix: str = "galaxy"):
    return RedisEventLog(redis_url, redis_prefix, max_age_ms) if redis_url else MemoryEventLog(max_age_ms)


def make_session_store(redis_url: str | None, ttl_ms: int, redis_prefix: str = "galaxy"):
    return RedisSessionStore(redis_url, ttl_ms, redis_prefix) if redis_url else MemorySessionStore(ttl_ms)
