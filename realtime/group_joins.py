"""This process joining room groups on the channel layer, many in one go.

Every signed-in socket joins its user's room, a group nobody else in the process is in, so a
burst of sign-ins (a deploy's reconnect storm, tests/benchmarks) is a burst of group_add calls.
On channels_redis' pub/sub layer each is a SUBSCRIBE of its own, one after another on the
shard's lock (~105 us of server CPU per connect, README "Benchmark"). Joins that pile up while
one is in flight go together (batching.Coalescer): one SUBSCRIBE per shard with all of their
channels, which is what group_add would have done for each, registered the same way.

This reaches into channels_redis 4.3's pub/sub layer (`_get_layer`, its shards' `_lock`,
`_subscribed_to`, `_pubsub`), pinned in requirements.txt; any other layer gets group_add.
"""

from __future__ import annotations

from collections import defaultdict

from .batching import Coalescer


class GroupJoins:
    def __init__(self, layer, channel: str) -> None:
        self.layer = layer
        self.channel = channel
        self._join = Coalescer(self._join_all)

    async def join(self, group: str) -> None:
        await self._join(group)

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
        for shard, group_channels in by_shard.items():
            async with shard._lock:
                new = [name for name in group_channels if name not in shard._subscribed_to]
                if new:
                    shard._ensure_redis()
                    shard._ensure_receiver()
                    await shard._pubsub.subscribe(*new)
                    shard._subscribed_to.update(new)
        return [None] * len(groups)
