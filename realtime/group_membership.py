"""This process joining and leaving room groups on the channel layer, many in one go.

Every signed-in socket joins its user's room, a group nobody else in the process is in, so a
burst of sign-ins (a deploy's reconnect storm, tests/benchmarks) is a burst of group_add calls,
and a burst of disconnects one of group_discard calls. On channels_redis' pub/sub layer each is
a SUBSCRIBE or UNSUBSCRIBE of its own, one after another on the shard's lock (~105 us of server
CPU per connect, README "Benchmark"). Joins (and leaves) that pile up while one is in flight go
together (batching.Coalescer): one command per shard for all of their channels, registered as
group_add and group_discard would have for each.

This reaches into channels_redis 4.3's pub/sub layer (`_get_layer`, its shards' `_lock`,
`_subscribed_to`, `_pubsub`), pinned in requirements.txt; any other layer gets group_add and
group_discard. The fan-out never joins and leaves one room at the same time (its room locks).
"""

from __future__ import annotations

from collections import defaultdict

from .batching import Coalescer


class GroupMembership:
    def __init__(self, layer, channel: str) -> None:
        self.layer = layer
        self.channel = channel
        self._join = Coalescer(self._join_all)
        self._leave = Coalescer(self._leave_all)

    async def join(self, group: str) -> None:
        await self._join(group)

    async def leave(self, group: str) -> None:
        await self._leave(group)

    async def _join_all(self, groups: list[str]) -> list:
        get_layer = getattr(self.layer, "_get_layer", None)
        if get_layer is None:  # the in-memory layer: nothing to save
            for group in groups:
                await self.layer.group_add(group, self.channel)
            return [None] * len(groups)
        layer = get_layer()
        if self.channel not in layer.channels:  # as group_add says it
            raise RuntimeError(f"group_add of {self.channel!r}, a channel not made in this process")
        by_shard = defaultdict(list)
        for group in dict.fromkeys(groups):
            group_channel = layer._get_group_channel_name(group)
            layer.groups.setdefault(group_channel, set()).add(self.channel)
            by_shard[layer._get_shard(group_channel)].append(group_channel)
        for shard, names in by_shard.items():
            async with shard._lock:
                new = [name for name in names if name not in shard._subscribed_to]
                if new:
                    shard._ensure_redis()
                    shard._ensure_receiver()
                    await shard._pubsub.subscribe(*new)
                    shard._subscribed_to.update(new)
        return [None] * len(groups)

    async def _leave_all(self, groups: list[str]) -> list:
        get_layer = getattr(self.layer, "_get_layer", None)
        if get_layer is None:
            for group in groups:
                await self.layer.group_discard(group, self.channel)
            return [None] * len(groups)
        layer = get_layer()
        by_shard = defaultdict(list)
        for group in dict.fromkeys(groups):
            group_channel = layer._get_group_channel_name(group)
            members = layer.groups.get(group_channel)
            if members is None or self.channel not in members:
                continue
            members.discard(self.channel)
            if not members:  # the last member out: the process stops hearing the group
                del layer.groups[group_channel]
                by_shard[layer._get_shard(group_channel)].append(group_channel)
        for shard, names in by_shard.items():
            async with shard._lock:
                gone = [name for name in names if name in shard._subscribed_to]
                if gone:
                    shard._ensure_redis()
                    shard._ensure_receiver()
                    await shard._pubsub.unsubscribe(*gone)
                    shard._subscribed_to.difference_update(gone)
        return [None] * len(groups)
