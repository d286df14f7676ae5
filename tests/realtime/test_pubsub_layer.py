"""Room groups joined and left in a burst (pubsub_layer.GroupMembership) on channels_redis'
real pub/sub layer and a real Redis: a few SUBSCRIBEs and UNSUBSCRIBEs for many groups, and
each group hears, and stops hearing, as after its own group_add and group_discard. And a send
that says whether anyone heard it (send_heard), to a channel subscribed before use (listen) and
given up before the process exits (unlisten). And a room event that a script logs and publishes
(publish_channels, message_template) arriving as group_send's would."""

from __future__ import annotations

import asyncio
import os

import pytest
import redis.asyncio as redis
from channels.layers import InMemoryChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from redis.asyncio.client import PubSub

from realtime.emit import OFFSET_SLOT, room_message
from realtime.pubsub_layer import GroupMembership, listen, message_template, publish_channels, send_heard, unlisten
from realtime.recovery import RedisEventLog
from tests.redisproc import RedisProcess
from tests.servers import REDIS_URL

BURST = 200


@pytest.fixture
def commands(monkeypatch):
    """Channels (or patterns) per (P)SUBSCRIBE and (P)UNSUBSCRIBE redis-py sent (the real
    methods, counted)."""
    sent = {"subscribe": [], "unsubscribe": [], "psubscribe": [], "punsubscribe": []}
    for name in sent:
        real = getattr(PubSub, name)

        async def counted(self, *args, _real=real, _name=name, **kwargs):
            sent[_name].append(len(args))
            return await _real(self, *args, **kwargs)

        monkeypatch.setattr(PubSub, name, counted)
    return sent


async def test_a_burst_of_joins_and_leaves_is_a_few_commands_and_every_group_hears(commands):
    layer = RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix=f"test-groups-{os.getpid()}")
    client = redis.from_url(REDIS_URL)
    try:
        channel = await layer.new_channel("fanout.")
        commands["subscribe"].clear()  # the channel's own
        groups = GroupMembership(layer, channel)
        names = [f"user.{n}" for n in range(BURST)]
        await asyncio.gather(*(groups.join(name) for name in names), groups.join(names[0]))

        assert sum(commands["subscribe"]) == BURST and len(commands["subscribe"]) < BURST / 10
        redis_names = [layer._get_layer()._get_group_channel_name(name) for name in names]
        assert dict(await client.pubsub_numsub(*redis_names)) == {name.encode(): 1 for name in redis_names}
        for n, name in enumerate(names):
            await layer.group_send(name, {"type": "room.emit", "n": n})
        heard = [await asyncio.wait_for(layer.receive(channel), 5) for _ in names]
        assert [message["n"] for message in heard] == list(range(BURST))

        await asyncio.gather(*(groups.leave(name) for name in names[:-1]), groups.leave(names[0]))
        assert sum(commands["unsubscribe"]) == BURST - 1 and len(commands["unsubscribe"]) < BURST / 10
        assert dict(await client.pubsub_numsub(*redis_names)) == {
            **{name.encode(): 0 for name in redis_names[:-1]}, redis_names[-1].encode(): 1,
        }
        for name in names:
            await layer.group_send(name, {"type": "room.emit", "n": name})
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == names[-1]  # only the one still joined
        await groups.join(names[0])  # and a group left can be joined again
        await layer.group_send(names[0], {"type": "room.emit", "n": "again"})
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == "again"
    finally:
        await layer.flush()
        await client.aclose()


async def test_groups_of_a_pattern_prefix_are_heard_through_one_psubscribe_and_joined_and_left_with_no_command(commands):
    """Private rooms' groups (pattern_prefixes): the first join makes the one PSUBSCRIBE, the rest
    and every leave touch no Redis; each joined group hears another process's group_send, a left
    one stops hearing; other groups still SUBSCRIBE one channel each."""
    prefix = f"test-pattern-{os.getpid()}"
    layer = RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    sender = RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix=prefix)  # another process
    try:
        channel = await layer.new_channel("fanout.")
        for sent in commands.values():
            sent.clear()
        groups = GroupMembership(layer, channel, pattern_prefixes=("room.user.", "room.wallet."))
        names = [f"room.{'user' if n % 2 else 'wallet'}.{n}" for n in range(BURST)]
        await asyncio.gather(*(groups.join(name) for name in names))
        assert commands["psubscribe"] == [2] and commands["subscribe"] == []
        for n, name in enumerate(names):
            await sender.group_send(name, {"type": "room.emit", "n": n})
        heard = [await asyncio.wait_for(layer.receive(channel), 5) for _ in names]
        assert [message["n"] for message in heard] == list(range(BURST))

        await asyncio.gather(*(groups.leave(name) for name in names[:-1]))
        await sender.group_send("room.user.nobody", {"type": "room.emit", "n": "nobody's"})  # heard, dropped
        for name in names:
            await sender.group_send(name, {"type": "room.emit", "n": name})
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == names[-1]  # only the one still joined
        await groups.join(names[0])  # joined again
        await sender.group_send(names[0], {"type": "room.emit", "n": "again"})
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == "again"
        assert commands["psubscribe"] == [2] and commands["unsubscribe"] == commands["punsubscribe"] == []

        await groups.join("room.market.XLM_USDC")  # not private: a subscription of its own
        assert commands["subscribe"] == [1]
    finally:
        await layer.flush()
        await sender.flush()


async def test_a_pattern_matches_its_layer_prefix_literally():
    """A prefix with glob characters in it (REDIS_PREFIX is the operator's) hears its own private
    groups and not those of another prefix the unescaped pattern would match."""
    layer = RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix=f"test*?[x]{os.getpid()}")
    own = RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix=f"test*?[x]{os.getpid()}")
    other = RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix=f"test-ax{os.getpid()}")
    try:
        channel = await layer.new_channel("fanout.")
        await GroupMembership(layer, channel, pattern_prefixes=("room.user.",)).join("room.user.1")
        await other.group_send("room.user.1", {"type": "room.emit", "n": "other's"})
        await own.group_send("room.user.1", {"type": "room.emit", "n": "own"})
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == "own"
    finally:
        for each in (layer, own, other):
            await each.flush()


async def test_a_pattern_is_subscribed_again_when_redis_comes_back(tmp_path):
    server = RedisProcess(tmp_path).start()
    layer = RedisPubSubChannelLayer(hosts=[server.url], prefix="test-pattern-back")
    sender = RedisPubSubChannelLayer(hosts=[server.url], prefix="test-pattern-back")
    try:
        channel = await layer.new_channel("fanout.")
        groups = GroupMembership(layer, channel, pattern_prefixes=("room.user.",))
        await groups.join("room.user.1")
        server.stop()
        await groups.join("room.user.2")  # while Redis is away: joined all the same
        server.start()
        for _ in range(100):  # until the layer's subscriber is back and has subscribed again
            await sender.group_send("room.user.2", {"type": "room.emit", "n": "probe"})
            try:
                message = await asyncio.wait_for(layer.receive(channel), 0.1)
                break
            except asyncio.TimeoutError:
                continue
        else:
            raise AssertionError("the pattern was not subscribed again")
        assert message["n"] == "probe"
        await sender.group_send("room.user.1", {"type": "room.emit", "n": 1})  # the group joined before
        while (message := await asyncio.wait_for(layer.receive(channel), 5))["n"] == "probe":
            continue  # probes sent before the first was read
        assert message["n"] == 1
    finally:
        await layer.flush()
        await sender.flush()
        server.stop()


async def heard_once_redis_took_it(layer, channel: str, message: dict, expected: int) -> bool:
    """Whether sends of `message` come to be heard by `expected` subscribers within a second.
    listen and unlisten return once their (UN)SUBSCRIBE is written; Redis takes it when it reads
    it, and on a busy two-core host a PUBLISH written just after on another connection can reach
    it first (seen in CI: heard by 1 right after unlisten). The forwarding's stop settles for it
    (forwarding.STOP_SETTLE_SECONDS)."""
    deadline = asyncio.get_running_loop().time() + 1.0
    while (heard := await send_heard(layer, channel, message)) != expected:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_a_send_says_nobody_heard_it_until_the_channel_is_listened_to_and_then_it_arrives():
    layer = RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix=f"test-heard-{os.getpid()}")
    listener = RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix=f"test-heard-{os.getpid()}")  # another node
    channel = f"engine.heard{os.getpid()}"
    try:
        assert await send_heard(layer, channel, {"type": "engine.request", "n": 0}) == 0
        await listen(listener, channel)
        await listen(listener, channel)  # a second call subscribes nothing more
        assert await heard_once_redis_took_it(layer, channel, {"type": "engine.request", "n": 1}, 1)
        assert (await asyncio.wait_for(listener.receive(channel), 5))["n"] == 1  # sent before the receive

        await send_heard(layer, channel, {"type": "engine.request", "n": 2})
        await unlisten(listener, channel)  # the node drains: nothing heard from now on ...
        assert await heard_once_redis_took_it(layer, channel, {"type": "engine.request", "n": 3}, 0)
        assert (await asyncio.wait_for(listener.receive(channel), 5))["n"] == 2  # ... but what came before
    finally:
        await layer.flush()
        await listener.flush()


async def test_on_the_in_memory_layer_a_send_cannot_say_and_still_arrives():
    layer = InMemoryChannelLayer()
    await listen(layer, "engine.memory")
    assert await send_heard(layer, "engine.memory", {"type": "engine.request", "n": 1}) is None
    assert (await asyncio.wait_for(layer.receive("engine.memory"), 5))["n"] == 1


async def test_listen_subscribes_a_channel_whose_first_subscribe_failed_while_redis_was_down(tmp_path):
    """channels_redis' receive keeps a channel whose SUBSCRIBE failed and never subscribes it
    again: nobody would hear it. listen does, once Redis is back."""
    server = RedisProcess(tmp_path).start()
    layer = RedisPubSubChannelLayer(hosts=[server.url], prefix="test-listen")
    sender = RedisPubSubChannelLayer(hosts=[server.url], prefix="test-listen")
    try:
        server.stop()
        with pytest.raises(Exception):
            await listen(layer, "engine.down")
        server.start()
        assert await send_heard(sender, "engine.down", {"type": "engine.request", "n": 0}) == 0  # still nobody
        await listen(layer, "engine.down")
        assert await send_heard(sender, "engine.down", {"type": "engine.request", "n": 1}) == 1
        assert (await asyncio.wait_for(layer.receive("engine.down"), 5))["n"] == 1
    finally:
        await layer.flush()
        await sender.flush()
        server.stop()


@pytest.mark.parametrize("namespace, data", [
    ("/", 1),  # a frame of under 32 bytes: msgpack's one-byte string header
    ("/", {"note": "é" * 40}),  # 32-255 bytes, counted in UTF-8 bytes, not characters
    ("/admin", {"note": "x" * 1000}),  # 256-65,535
    ("/", {"note": "x" * 70_000, "raw": b"\x00\xff"}),  # 65,536 and more, and a binary attachment
    ("/", {"note": OFFSET_SLOT}),  # the slot's text in the data: only the last one is the offset's
])
async def test_an_event_logged_and_published_by_one_script_arrives_as_group_sends_would(namespace, data):
    prefix = f"test-script-{os.getpid()}"
    layer = RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    log = RedisEventLog(REDIS_URL, prefix, max_age_ms=60_000)
    rooms = ("market:A_B", "user:u1")
    try:
        channel = await layer.new_channel("fanout.")
        for room in rooms:  # one process in both groups: it hears the event once per group
            await layer.group_add(room.replace(":", "."), channel)
        message = {**room_message(namespace, rooms, "e", data, OFFSET_SLOT), "t": 1.5}
        channels = publish_channels(layer, [room.replace(":", ".") for room in rooms])
        offset = await log.append_and_publish(namespace, rooms, "e", data, "", message_template(message, OFFSET_SLOT), channels)

        expected = {**room_message(namespace, rooms, "e", data, offset), "t": 1.5}
        assert [await asyncio.wait_for(layer.receive(channel), 5) for _ in rooms] == [expected, expected]
        assert [(e.offset, e.data) for e in await log.since("0-0", namespace, set(rooms))] == [(offset, data)]
    finally:
        await layer.flush()
        await log.client.delete(log.key)


async def test_only_a_plain_msgpack_redis_layer_on_one_host_can_be_published_to_by_a_script():
    assert publish_channels(RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix="p"), ["g"]) == ["p__group__g"]
    assert publish_channels(InMemoryChannelLayer(), ["g"]) is None
    assert publish_channels(RedisPubSubChannelLayer(hosts=[REDIS_URL, REDIS_URL + "1"]), ["g"]) is None
    encrypted = RedisPubSubChannelLayer(hosts=[REDIS_URL], symmetric_encryption_keys=["k"])
    assert publish_channels(encrypted, ["g"]) is None


async def test_an_event_emitted_again_under_its_id_is_not_published_again():
    """A retry whose first try's answer was lost, or a domain's emit again of an event it gave
    up on: the first script logged and published it, so every process in its rooms has it (or
    reads it from the log on re-subscribing). Published again it would reach sockets after later
    events, and a socket whose fan-out had forgotten its offset (fanout.SEEN_EVENTS later) would
    get it twice, out of order."""
    prefix = f"test-again-{os.getpid()}"
    layer = RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    log = RedisEventLog(REDIS_URL, prefix, max_age_ms=60_000)
    try:
        channel = await layer.new_channel("fanout.")
        await layer.group_add("market.A_B", channel)
        channels = publish_channels(layer, ["market.A_B"])

        async def emit(n: int, event_id: str) -> str:
            message = room_message("/", ("market:A_B",), "e", {"n": n}, OFFSET_SLOT)
            return await log.append_and_publish("/", ("market:A_B",), "e", {"n": n}, event_id,
                                                message_template(message, OFFSET_SLOT), channels)

        first = await emit(1, "the-event")
        later = await emit(2, "")
        assert await emit(1, "the-event") == first  # the same offset, and nothing published
        heard = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(2)]
        assert [m["offset"] for m in heard] == [first, later]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(channel), 0.5)
    finally:
        await layer.flush()
        await log.client.delete(log.key)
