"""Room groups joined in a burst (group_joins.GroupJoins) on channels_redis' real pub/sub layer
and a real Redis: a few SUBSCRIBEs for many groups, and each group hears and leaves as after
its own group_add."""

from __future__ import annotations

import asyncio
import os

import redis.asyncio as redis
from channels_redis.pubsub import RedisPubSubChannelLayer
from redis.asyncio.client import PubSub

from realtime.group_joins import GroupJoins
from tests.servers import REDIS_URL

BURST = 200


async def test_a_burst_of_joins_is_a_few_subscribes_and_every_group_hears(monkeypatch):
    subscribes = []  # channels per SUBSCRIBE redis-py sent (the real method, counted)
    subscribe = PubSub.subscribe

    async def counted(self, *args, **kwargs):
        subscribes.append(len(args))
        return await subscribe(self, *args, **kwargs)

    monkeypatch.setattr(PubSub, "subscribe", counted)
    layer = RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix=f"test-joins-{os.getpid()}")
    client = redis.from_url(REDIS_URL)
    try:
        channel = await layer.new_channel("fanout.")
        subscribes.clear()  # the channel's own
        joins = GroupJoins(layer, channel)
        groups = [f"user.{n}" for n in range(BURST)]
        await asyncio.gather(*(joins.join(group) for group in groups), joins.join(groups[0]))

        assert sum(subscribes) == BURST and len(subscribes) < BURST / 10
        names = [layer._get_layer()._get_group_channel_name(group) for group in groups]
        assert dict(await client.pubsub_numsub(*names)) == {name.encode(): 1 for name in names}
        for n, group in enumerate(groups):
            await layer.group_send(group, {"type": "room.emit", "n": n})
        heard = [await asyncio.wait_for(layer.receive(channel), 5) for _ in groups]
        assert [message["n"] for message in heard] == list(range(BURST))

        # Left as any group is: the last member out unsubscribes the process.
        await layer.group_discard(groups[0], channel)
        assert dict(await client.pubsub_numsub(names[0])) == {names[0].encode(): 0}
    finally:
        await layer.flush()
        await client.aclose()

