"""What the fan-out needs of channels_redis 4.3's pub/sub layer beyond its public API.

Both reach into the layer's internals (`_get_layer`, its shards' `_lock`, `_subscribed_to`,
`_pubsub`; channels_redis is pinned in requirements.txt), so they live here, together; any other
layer (the in-memory one) gets the public API, or nothing.

Joining and leaving many groups in one go (`GroupMembership`). Every signed-in socket joins its
user's room, a group nobody else in the process is in, so a burst of sign-ins (a deploy's
reconnect storm, tests/benchmarks) is a burst of group_add calls, and a burst of disconnects one
of group_discard calls: each a SUBSCRIBE or UNSUBSCRIBE of its own, one after another on the
shard's lock (~105 us of server CPU per connect, README "Benchmark"). Joins (and leaves) that
pile up while one is in flight go together (batching.Coalescer): one command per shard for all
of their channels, registered as group_add and group_discard would have for each. The fan-out
never joins and leaves one room at the same time (its room locks).

Groups heard through one pattern (`GroupMembership(pattern_prefixes=...)`). Private rooms
(user:, wallet:, automation:) are each one user's or one entity's: a burst of sign-ins is a burst
of groups nobody else here is in, and even batched, each one's SUBSCRIBE, the confirmation the
layer's receive loop then reads through redis-py, and its UNSUBSCRIBE at the end were a fifth of
a signed-in connect's server CPU (README "Benchmark"). Groups whose names start with one of
`pattern_prefixes` are heard instead through one PSUBSCRIBE per shard, made at the first such
join: joining or leaving one is then a change to the layer's own group table, which its receive
loop reads for a pattern's message as for any other (it looks the message's channel up there,
and drops one nobody here is in). Every process hears every private room's messages, as
Socket.IO's Redis adapter has every process hear every room's; private rooms carry a user's own
events, a small share of the traffic beside the markets', which keep a subscription each.

Hearing that the subscriber connection was made again (`watch_resubscribes`). When it drops,
redis-py connects and subscribes again by itself, but room messages published in between
reached no one in this process, and channels_redis says nothing (4.3 keeps an `on_reconnect`
argument and never calls it). redis-py does call a connection's connect callbacks after every
reconnect, after its own that subscribes again: the fan-out registers one there
(fanout.Fanout.resubscribed) and reads what it missed from the log (gap_fill.py).

Joining and leaving while Redis is away. A SUBSCRIBE or UNSUBSCRIBE that cannot reach Redis
would fail a socket's sign-in, or skip the rest of a disconnect (its connection slot kept). Both
succeed instead: the channel is added to (or removed from) the set redis-py subscribes again on
reconnect, and the reconnect's gap fill reads from the log what the room missed since the join
(fanout's `_joined_ms`). That set is changed before the command goes out, not after it fails: a
command that fails on a stale connection has redis-py reconnect at once, inside the call, and
subscribe that set before the error reaches us; changed after, the room would go unheard until
the next drop. Only a subscriber connection never made (the process started while Redis was
away) still fails a join: no reconnect would come to subscribe it.

Publishing a room event from a script (`publish_channels`, `message_template`). An emit logs
its event and publishes it: two round trips, and between them another process's whole emit to
the room could go, its later event reaching every socket first (a socket.io-client recovering
from that one's offset was sent the earlier one again, or lost it). One script does both
(recovery.RedisEventLog.append_and_publish), so every process hears the events in log order:
it needs the channels a group_send publishes on, and the message's bytes as the layer's
serializer writes them, cut where the script puts the offset the log gave.

Sending to a channel nobody hears (`send_heard`, `listen`, `unlisten`). A pub/sub message to a
channel no process subscribes to is gone, and the layer's `send` does not say so; Redis' PUBLISH
does, with the number of subscribers that got it. A node asking another for a polling session
(forwarding.py) learns that way at once that the owner is gone, instead of after a long-poll's
time; `listen` subscribes a channel before its name is given out, and a draining node
`unlisten`s before it exits, so that count is the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable

import msgpack

from .batching import Coalescer
from .redis_client import REDIS_AWAY


def _redis_layer(layer):
    """channels_redis' per-loop pub/sub layer behind `layer`, or None for any other layer."""
    get_layer = getattr(layer, "_get_layer", None)
    return get_layer() if get_layer is not None else None


def watch_resubscribes(layer, callback: Callable) -> None:
    """Have `callback(connection)` called after each reconnect of the layer's subscriber
    connections that exist now. `callback` must be a bound method (redis-py keeps a weak
    reference); registering it twice on one connection is a no-op, so call this after each
    subscribe that may have made a connection (a room's group can live on another shard)."""
    redis_layer = _redis_layer(layer)
    if redis_layer is None:
        return  # the in-memory layer has no connection to lose
    for shard in redis_layer._shards:
        connection = getattr(shard._pubsub, "connection", None)
        if connection is not None:
            connection.register_connect_callback(callback)


class GroupMembership:
    def __init__(self, layer, channel: str, pattern_prefixes: tuple[str, ...] = ()) -> None:
        self.layer = layer
        self.channel = channel
        self.pattern_prefixes = pattern_prefixes  # groups heard through one pattern (module docstring)
        self._made_patterns: tuple[object, list[bytes]] | None = None  # (layer, its patterns)
        self._join = Coalescer(self._join_all)
        self._leave = Coalescer(self._leave_all)

    async def join(self, group: str) -> None:
        await self._join(group)

    async def leave(self, group: str) -> None:
        await self._leave(group)

    def join_now(self, group: str) -> bool:
        """Join `group` at once if that needs no Redis command: a group heard through a pattern
        that every shard has subscribed. False: nothing done, `join` it."""
        layer = _redis_layer(self.layer)
        if layer is None or not group.startswith(self.pattern_prefixes) or self.channel not in layer.channels:
            return False
        patterns = self._patterns(layer)
        for shard in layer._shards:
            if shard._pubsub is None or not all(pattern in shard._pubsub.patterns for pattern in patterns):
                return False
        layer.groups.setdefault(layer._get_group_channel_name(group), set()).add(self.channel)
        return True

    def leave_now(self, group: str) -> bool:
        """Leave a group heard through a pattern at once (no command: the pattern stays for the
        others). False for any other group: `leave` it."""
        layer = _redis_layer(self.layer)
        if layer is None or not group.startswith(self.pattern_prefixes):
            return False
        group_channel = layer._get_group_channel_name(group)
        members = layer.groups.get(group_channel)
        if members is not None:
            members.discard(self.channel)
            if not members:
                del layer.groups[group_channel]
        return True

    def _patterns(self, layer) -> list[bytes]:
        """The shards' patterns, as bytes: how redis-py's pubsub.patterns names them."""
        if self._made_patterns is None or self._made_patterns[0] is not layer:  # one layer per event loop
            patterns = [(_glob_escape(layer._get_group_channel_name(p)) + "*").encode() for p in self.pattern_prefixes]
            self._made_patterns = (layer, patterns)
        return self._made_patterns[1]

    async def _join_all(self, groups: list[str]) -> list:
        layer = _redis_layer(self.layer)
        if layer is None:  # the in-memory layer: one call each
            return [await self.layer.group_add(group, self.channel) for group in groups]
        if self.channel not in layer.channels:  # as group_add says it
            raise RuntimeError(f"group_add of {self.channel!r}, a channel not made in this process")
        by_shard = defaultdict(list)
        patterned = False
        for group in dict.fromkeys(groups):
            group_channel = layer._get_group_channel_name(group)
            if group.startswith(self.pattern_prefixes):
                patterned = True
            else:
                by_shard[layer._get_shard(group_channel)].append(group_channel)
        if patterned:  # before the groups are in the table: a join returns once it is heard
            await _subscribe({shard: self._patterns(layer) for shard in layer._shards}, True, patterns=True)
        for group in dict.fromkeys(groups):
            layer.groups.setdefault(layer._get_group_channel_name(group), set()).add(self.channel)
        await _subscribe(by_shard, True)
        return [None] * len(groups)

    async def _leave_all(self, groups: list[str]) -> list:
        layer = _redis_layer(self.layer)
        if layer is None:
            return [await self.layer.group_discard(group, self.channel) for group in groups]
        by_shard = defaultdict(list)
        for group in dict.fromkeys(groups):
            if self.leave_now(group):  # heard through the pattern, which stays for the others
                continue
            group_channel = layer._get_group_channel_name(group)
            members = layer.groups.get(group_channel)
            if members is None or self.channel not in members:
                continue
            members.discard(self.channel)
            if not members:  # the last member out: the process stops hearing the group
                del layer.groups[group_channel]
                by_shard[layer._get_shard(group_channel)].append(group_channel)
        await _subscribe(by_shard, False)
        return [None] * len(groups)


async def _subscribe(by_shard: dict, subscribe: bool, patterns: bool = False) -> None:
    """SUBSCRIBE (or UNSUBSCRIBE) each shard's channels in one command, skipping those it is
    already (not) subscribed to, as the shard's own subscribe/unsubscribe does one at a time.
    With `patterns`, PSUBSCRIBE the glob patterns given (redis-py's pubsub knows which it has)."""
    for shard, names in by_shard.items():
        async with shard._lock:
            if patterns:
                subscribed = shard._pubsub.patterns if shard._pubsub is not None else ()
            else:
                subscribed = shard._subscribed_to
            todo = [name for name in names if (name in subscribed) is not subscribe]
            if not todo:
                continue
            shard._ensure_redis()
            shard._ensure_receiver()
            pubsub = shard._pubsub
            if patterns:
                command = pubsub.psubscribe if subscribe else pubsub.punsubscribe
            else:
                command = pubsub.subscribe if subscribe else pubsub.unsubscribe
            if pubsub.connection is None:
                # Never connected: no reconnect would come to subscribe them; a failure fails the join.
                await command(*todo)
            else:
                # What redis-py subscribes again on reconnect is made what the process wants first,
                # so whichever reconnect comes (its own inside a failing call, or a later one)
                # does it (see the module's docstring).
                wanted = pubsub._normalize_keys(dict.fromkeys(todo))
                table = pubsub.patterns if patterns else pubsub.channels
                if subscribe:
                    table.update(wanted)
                else:
                    for name in wanted:
                        table.pop(name, None)
                with contextlib.suppress(*REDIS_AWAY):  # Redis away (a restart, a failover)
                    await command(*todo)
            if patterns:
                continue  # redis-py's pubsub.patterns is the record
            if subscribe:
                shard._subscribed_to.update(todo)
            else:
                shard._subscribed_to.difference_update(todo)


def _glob_escape(text: str) -> str:
    """`text` matched literally in a Redis glob pattern."""
    return "".join("\\" + c if c in "*?[]\\^" else c for c in text)


def publish_channels(layer, groups: list[str]) -> list[str] | None:
    """The Redis channels a group_send to each of `groups` publishes on; None where a script
    cannot stand in for group_send: any layer but channels_redis' pub/sub one on one host (the
    log's, REDIS_URL: galaxy/settings.py) writing plain msgpack (no encryption, no prefix)."""
    redis_layer = _redis_layer(layer)
    if redis_layer is None or len(redis_layer._shards) != 1:
        return None
    serializer = layer._serializer
    if serializer.as_bytes is not msgpack.packb or serializer.crypter or serializer.random_prefix_length:
        return None
    return [redis_layer._get_group_channel_name(group) for group in groups]


def message_template(message: dict, slot: str) -> list[bytes]:
    """`message` as msgpack.packb writes it, cut around the two places its offset goes: its
    "offset" (`slot` there) and the last `slot` in its first frame. [head, middle, frame head,
    frame tail, tail]; the message is head, str(offset), middle, str(frame head, offset, frame
    tail), tail, where str() is msgpack's string header before the UTF-8 bytes."""
    packer = msgpack.Packer()
    rest = {key: value for key, value in message.items() if key not in ("offset", "frames")}
    first, *attachments = message["frames"]
    frame_head, frame_tail = first.rsplit(slot, 1)
    return [
        packer.pack_map_header(len(rest) + 2) + b"".join(packer.pack(k) + packer.pack(v) for k, v in rest.items())
        + packer.pack("offset"),
        packer.pack("frames") + packer.pack_array_header(1 + len(attachments)),
        frame_head.encode(),
        frame_tail.encode(),
        b"".join(packer.pack(attachment) for attachment in attachments),
    ]


async def send_heard(layer, channel: str, message: dict) -> int | None:
    """`layer.send`, and how many subscribers got the message: 0 means nobody listens on
    `channel`; None means the layer cannot tell (any layer but channels_redis' pub/sub one)."""
    redis_layer = _redis_layer(layer)
    if redis_layer is None:
        await layer.send(channel, message)
        return None
    shard = redis_layer._get_shard(channel)
    async with shard._lock:  # as the shard's own publish, which drops PUBLISH's answer
        shard._ensure_redis()
        return await shard._redis.publish(channel, redis_layer.channel_layer.serialize(message))


async def listen(layer, channel: str) -> None:
    """Subscribe `channel` now (its first `receive` would): messages sent from here on wait for
    that receive. Any other layer keeps a channel's messages until they are received."""
    redis_layer = _redis_layer(layer)
    if redis_layer is None:
        return
    redis_layer.channels.setdefault(channel, asyncio.Queue())  # where its receive reads
    # Not `channel in channels`, as receive checks: a subscribe that failed (Redis down) leaves
    # the channel there, unsubscribed, and receive never tries again. Once subscribed, no lock.
    shard = redis_layer._get_shard(channel)
    if channel not in shard._subscribed_to:
        await shard.subscribe(channel)


async def unlisten(layer, channel: str) -> None:
    """Stop hearing `channel` (a node about to exit): sends to it are heard by nobody once Redis
    has read the UNSUBSCRIBE (a send on another connection may reach Redis first: the caller
    settles, forwarding.STOP_SETTLE_SECONDS), so their senders learn at once; what reached it
    before stays for its `receive`."""
    redis_layer = _redis_layer(layer)
    if redis_layer is not None:
        await _subscribe({redis_layer._get_shard(channel): [channel]}, False)
