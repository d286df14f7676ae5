"""Rooms have processes as group members, not sockets, on the real in-memory layer."""

from __future__ import annotations

import asyncio
import json
import os

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
        REDIS_URL=None, REDIS_PREFIX="test", EVENT_QUEUE_MAX=10, RECOVERY_MAX_DISCONNECTION_MS=1000,
    )
    django.setup()

from channels.layers import channel_layers  # noqa: E402

from realtime.eager import start_eagerly  # noqa: E402
from realtime.emit import emit  # noqa: E402
from realtime.engine import EngineConfig, EngineServer, EngineSession  # noqa: E402
from realtime.fanout import Fanout  # noqa: E402
from realtime.rooms import room_to_group  # noqa: E402
from realtime.server import Socket, SocketIOServer  # noqa: E402
from realtime.session import State  # noqa: E402
from tests.servers import REDIS_URL  # noqa: E402


def polling_sockets(fanout: Fanout, count: int, namespace: str = "/") -> list[Socket]:
    """Real sockets on real polling sessions: what is written to them waits in their outbox."""
    sio = SocketIOServer({}, fanout, connect_timeout=1)
    engine = EngineServer(EngineConfig(ping_interval=60, ping_timeout=60, max_payload=1000), sio)
    return [Socket(sio, EngineSession(engine, f"s{i}", State.POLLING, {}), namespace) for i in range(count)]


def outbox(socket: Socket) -> list:
    return socket.session._outbox


@pytest.fixture
def layer():
    channel_layers.backends.pop("default", None)
    return channel_layers["default"]


async def wait_until(predicate, timeout=2.0):
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_a_thousand_sockets_make_one_group_member_and_one_shared_frame(layer):
    fanout = Fanout()
    sockets = polling_sockets(fanout, 1000)
    for socket in sockets:
        await socket.join("market:XLM_USDC")
    assert len(layer.groups[room_to_group("market:XLM_USDC")]) == 1

    await emit("market:XLM_USDC", "market:price_update", {"price": 1})
    await wait_until(lambda: all(outbox(s) for s in sockets))
    first = outbox(sockets[0])[0]
    assert first.startswith('42["market:price_update",{"price":1},"')  # then the recovery offset
    assert all(outbox(s) == [first] and outbox(s)[0] is first for s in sockets)  # encoded once


async def test_group_left_with_the_last_local_socket_and_namespaces_kept_apart(layer):
    fanout = Fanout()
    [main], [custom] = polling_sockets(fanout, 1), polling_sockets(fanout, 1, "/custom")
    await main.join("system:notifications")
    await custom.join("system:notifications")
    await emit("system:notifications", "note", {"n": 1})
    await wait_until(lambda: outbox(main))
    await asyncio.sleep(0.05)
    assert outbox(custom) == []  # the emit was for namespace "/"

    await fanout.leave(main, "system:notifications")
    assert room_to_group("system:notifications") in layer.groups
    await fanout.leave_all(custom)
    assert not layer.groups.get(room_to_group("system:notifications"))
    assert main.rooms == set() and custom.rooms == set()


class BrokenWriter:
    """A transport whose peer vanished: every write raises, as daphne does after a close."""

    def write(self, frames):
        return start_eagerly(self.send_frames(frames))

    async def send_frames(self, frames):
        raise ConnectionError("Attempt to send on a closed protocol")

    async def close(self):
        pass


async def test_a_socket_that_cannot_be_written_does_not_cost_the_others_the_message(layer):
    fanout = Fanout()
    *broken, healthy = polling_sockets(fanout, 20)  # many, so some come before the healthy one
    for socket in broken:
        socket.session.state = State.WEBSOCKET
        socket.session.attach_websocket(BrokenWriter())
    for socket in (*broken, healthy):
        await socket.join("market:XLM_USDC")
    await emit("market:XLM_USDC", "market:price_update", {"price": 2})
    await wait_until(lambda: outbox(healthy))
    assert outbox(healthy)[0].startswith('42["market:price_update",{"price":2}')


class RecordingWriter:
    """A WebSocket transport that takes every write at once and keeps each one's frames."""

    def __init__(self):
        self.writes: list[list] = []

    def write(self, frames):
        self.writes.append(list(frames))

    async def close(self):
        pass


async def test_events_queued_on_the_channel_reach_each_socket_in_one_write_in_order(layer):
    fanout = Fanout()
    sockets = polling_sockets(fanout, 3)
    writers = [RecordingWriter() for _ in sockets]
    for socket, writer in zip(sockets, writers):
        socket.session.state = State.WEBSOCKET
        socket.session.attach_websocket(writer)
        await socket.join("market:XLM_USDC")
    await emit("market:XLM_USDC", "market:price_update", {"price": 0})
    await wait_until(lambda: all(w.writes for w in writers))
    # Five emits at once: all five are on the channel before the reader's turn comes.
    await asyncio.gather(*(emit("market:XLM_USDC", "market:price_update", {"price": n}) for n in range(1, 6)))
    await wait_until(lambda: sum(len(w) for w in writers[0].writes) == 6)
    for writer in writers:
        assert len(writer.writes) == 2  # the first event alone, then the five that queued
        prices = [json.loads(frame[2:])[1]["price"] for write in writer.writes for frame in write]
        assert prices == [0, 1, 2, 3, 4, 5]


async def test_concurrent_joins_and_leaves_keep_one_membership_and_leave_no_lock_behind(layer):
    fanout = Fanout()
    sockets = polling_sockets(fanout, 50)
    await asyncio.gather(*(s.join(f"user:{i % 5}") for i, s in enumerate(sockets)))
    assert all(len(layer.groups[room_to_group(f"user:{n}")]) == 1 for n in range(5))
    assert fanout._locks == {}  # an idle room holds no lock (a user's room per signed-in socket)
    await asyncio.gather(*(fanout.leave_all(s) for s in sockets))
    assert not any(layer.groups.get(room_to_group(f"user:{n}")) for n in range(5))
    assert fanout._locks == {}


# -- after the layer re-subscribed: the gap read back from the Redis event log ----------------

@pytest.fixture
async def redis_log():
    import os

    from realtime.recovery import RedisEventLog
    from tests.servers import REDIS_URL

    log = RedisEventLog(REDIS_URL, f"test-fill-{os.getpid()}", max_age_ms=60_000)
    yield log
    await log.client.delete(log.key)
    await log.client.aclose()


def delivered(socket: Socket) -> list:
    return [json.loads(frame[2:])[1]["n"] for frame in outbox(socket)]  # 4 (message) 2 (event) [...]


async def test_what_was_published_while_unsubscribed_comes_in_log_order_once(layer, redis_log, monkeypatch):
    """The redis-py callback (pubsub_layer.watch_resubscribes) is called here by hand: the e2e test in
    tests/e2e/test_redis_faults.py has Redis drive it."""
    import realtime.fanout
    from realtime.emit import room_message
    from realtime.gap_fill import LogGapFill

    monkeypatch.setattr(realtime.fanout, "FILL_DELAY_S", 0.4)  # room to act while it waits
    fanout = Fanout(fill_gap=LogGapFill(redis_log))
    [socket] = polling_sockets(fanout, 1)
    await socket.join("market:A_B")
    room = ("market:A_B",)

    async def log(n: int) -> str:
        return await redis_log.append("/", room, "e", {"n": n})

    async def publish(n: int) -> None:
        await layer.group_send(room_to_group("market:A_B"), room_message("/", room, "e", {"n": n}, await log(n)))

    await publish(1)
    await wait_until(lambda: delivered(socket) == [1])
    await log(2)  # logged, never published to us: the gap
    await log(3)
    fanout.resubscribed()
    await publish(4)  # live during the fill: held until the gap is out
    await asyncio.sleep(0.1)
    assert delivered(socket) == [1]
    fanout.resubscribed()  # dropped again while the first read is pending: read once more
    await asyncio.sleep(0.4)  # the first read is done
    await log(5)  # missed after the first read: only the second finds it
    await wait_until(lambda: 5 in delivered(socket), timeout=3)
    await publish(6)
    await wait_until(lambda: 6 in delivered(socket))
    assert delivered(socket) == [1, 2, 3, 4, 5, 6]
    assert fanout.refilled == 3


async def test_a_recheck_missed_while_unsubscribed_is_read_back_in_order_for_its_room_only(layer, redis_log):
    """Who may be in wallet:A changed while this process was not subscribed. The re-check is in
    the log (emit.recheck_room_sync logs it as it does room events): the gap fill asks about
    wallet:A's sockets only, after delivering the event from before the change and before the
    one after it. Before: every private room's sockets were asked about (a database read each
    after an outage), before any missed event, the old owner's own included."""
    from realtime.fanout import RECHECK_NAMESPACE
    from realtime.gap_fill import LogGapFill

    asked: list[tuple[str, list]] = []

    async def recheck(room: str, sockets: list[Socket], checked) -> None:
        await asyncio.sleep(0.1)  # a database read: what follows the re-check waits for it
        asked.append((room, delivered(a)))

    fanout = Fanout(fill_gap=LogGapFill(redis_log), recheck=recheck)
    a, b = polling_sockets(fanout, 2)
    await a.join("wallet:A")
    await b.join("wallet:B")
    await redis_log.append("/", ("wallet:A",), "e", {"n": 1})
    await redis_log.append(RECHECK_NAMESPACE, ("wallet:A",), "recheck", None)
    await redis_log.append("/", ("wallet:A",), "e", {"n": 2})
    fanout.resubscribed()
    await wait_until(lambda: delivered(a) == [1, 2])
    assert asked == [("wallet:A", [1])]  # done after event 1 went out, before event 2 did
    assert delivered(b) == []


async def test_a_live_recheck_holds_its_rooms_sockets_until_each_is_checked(layer):
    """Who may be in wallet:A changed; asking the policy takes a while (a database read, or a
    database away for up to a minute). What comes for the room meanwhile may be its new owner's:
    the refused socket never gets it, the allowed one gets it once checked, in order, and a
    socket in another room is not held. Before: both got it at once, the refused one included."""
    from realtime.emit import room_message
    from realtime.fanout import RECHECK_NAMESPACE

    checked = asyncio.Event()

    async def recheck(room: str, sockets: list[Socket], done) -> None:
        await checked.wait()
        await refused.leave(room)  # what the namespace's check does with a refused socket
        for socket in sockets:
            done(socket)

    fanout = Fanout(recheck=recheck)
    refused, allowed, elsewhere = polling_sockets(fanout, 3)
    for socket in (refused, allowed):
        await socket.join("wallet:A")
    await elsewhere.join("market:A_B")
    await allowed.join("market:A_B")

    async def publish(room: str, n: int, namespace: str = "/") -> None:
        await layer.group_send(room_to_group(room), room_message(namespace, (room,), "e", {"n": n}, f"{n}-0"))

    await publish("wallet:A", 1)
    await publish("wallet:A", 0, RECHECK_NAMESPACE)
    await publish("wallet:A", 2)  # the new owner's, maybe
    await publish("market:A_B", 3)
    await wait_until(lambda: delivered(elsewhere) == [3])
    assert delivered(refused) == delivered(allowed) == [1]
    checked.set()
    await wait_until(lambda: delivered(allowed) == [1, 2, 3])
    await publish("wallet:A", 4)
    await wait_until(lambda: delivered(allowed) == [1, 2, 3, 4])
    assert delivered(refused) == [1]
    assert refused.withheld is None and allowed.withheld is None


async def test_two_rechecks_of_one_room_hold_its_socket_until_both_are_done(layer):
    """wallet:A moves twice (A -> B -> C): two re-checks of the room overlap. B's socket, checked
    by the first (B owns it then) is still held by the second, which asks about C's ownership:
    C's event must wait for it (and is dropped when it takes B out). Before: the first re-check's
    release let the socket go, C's events included."""
    from realtime.emit import room_message
    from realtime.fanout import RECHECK_NAMESPACE

    answers = [asyncio.Event(), asyncio.Event()]
    rechecks = iter(answers)

    async def recheck(room: str, sockets: list[Socket], checked) -> None:
        answer = next(rechecks)
        await answer.wait()
        if answer is answers[1]:
            await socket.leave(room)  # the second finds the room C's now
        for held in sockets:
            checked(held)

    fanout = Fanout(recheck=recheck)
    [socket] = polling_sockets(fanout, 1)
    await socket.join("wallet:A")

    async def publish(n: int, namespace: str = "/") -> None:
        await layer.group_send(room_to_group("wallet:A"), room_message(namespace, ("wallet:A",), "e", {"n": n}, f"{n}-0"))

    await publish(1, RECHECK_NAMESPACE)
    await publish(2, RECHECK_NAMESPACE)
    await publish(3)  # C's
    await wait_until(lambda: socket.withheld)  # held
    answers[0].set()
    await asyncio.sleep(0.1)
    assert delivered(socket) == []  # the second still holds it
    answers[1].set()
    await wait_until(lambda: socket.withheld is None)
    assert delivered(socket) == [] and "wallet:A" not in socket.rooms


async def test_a_socket_lately_recovered_gets_what_its_replay_did_not_send(layer):
    """For a while after its replay (Socket.replayed: the last offset it replayed) a socket drops
    live events at or before that offset; the rest reach it, as they reach the others."""
    import time as clock

    from realtime.recovery import offset_key

    fanout = Fanout()
    recovered, other = polling_sockets(fanout, 2)
    for socket in (recovered, other):
        await socket.join("market:A_B")
    recovered.replayed = (offset_key("5-0"), clock.monotonic() + 60)
    fanout.deliver("/", ["market:A_B"], [(f"{n}-0", [f'42["e",{{"n":{n}}},"{n}-0"]']) for n in (4, 5, 6)])
    fanout.deliver("/", ["market:A_B"], [("7-0", ['42["e",{"n":7},"7-0"]'])])
    assert delivered(recovered) == [6, 7] and delivered(other) == [4, 5, 6, 7]


async def test_a_log_read_that_hangs_does_not_hold_live_events_for_long(layer, monkeypatch):
    import realtime.fanout
    from realtime.emit import room_message
    from realtime.gap_fill import LogGapFill
    from realtime.recovery import RedisEventLog
    from tests.tcpproxy import TcpProxy
    from tests.servers import REDIS_URL

    port = int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    slow = await TcpProxy(port).start()
    slow.delay = 3.0  # every chunk to and from Redis waits: the read cannot finish in time
    log = RedisEventLog(f"redis://127.0.0.1:{slow.port}/0", "test-fill-slow", max_age_ms=60_000)
    monkeypatch.setattr(realtime.fanout, "FILL_TIMEOUT_S", 0.3)
    fanout = Fanout(fill_gap=LogGapFill(log))
    [socket] = polling_sockets(fanout, 1)
    try:
        await socket.join("market:A_B")
        fanout.resubscribed()
        message = room_message("/", ("market:A_B",), "e", {"n": 7}, "1-0")
        await layer.group_send(room_to_group("market:A_B"), message)
        await asyncio.sleep(0.2)
        assert delivered(socket) == []  # held while the read runs
        await wait_until(lambda: delivered(socket) == [7], timeout=1.5)  # given up on: out anyway
    finally:
        await slow.stop()
        await log.client.aclose()


async def test_a_socket_gone_while_its_join_awaited_redis_is_not_left_in_the_room():
    """The process's first member of a room subscribes its group, which awaits Redis; a
    disconnect meanwhile left every room the socket was in then. The join must not leave a
    gone socket a member (written to, its group never released)."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    layer = channel_layers.backends["race"] = RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix=f"test-race-{os.getpid()}")
    try:
        fanout = Fanout("race")
        [socket] = polling_sockets(fanout, 1)
        joining = asyncio.ensure_future(socket.join("market:RACE_USDC"))
        await asyncio.sleep(0)
        assert not joining.done()  # waiting on Redis
        socket.connected = False  # as the server's remove_socket, then its leave_all
        await fanout.leave_all(socket)
        await joining
        assert "market:RACE_USDC" not in socket.rooms and not fanout.local_members("/", "market:RACE_USDC")
        redis_layer = layer._get_layer()
        group_channel = redis_layer._get_group_channel_name(room_to_group("market:RACE_USDC"))
        shard = redis_layer._get_shard(group_channel)
        assert group_channel not in shard._subscribed_to  # the process stopped hearing the group
    finally:
        del channel_layers.backends["race"]
        await layer.flush()
