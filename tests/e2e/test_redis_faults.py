"""Redis stops for 30 s under a stream of emits: sockets stay, events wait, nothing is lost."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import aiohttp
import msgpack
import pytest
import redis
import socketio
from websockets.asyncio.client import connect as websockets_connect

from realtime.forwarding import node_channel
from tests.e2e.conftest import ARTIFACTS, E2E_ENV, SyncProducer, emit_via_server
from tests.redisproc import RedisProcess
from tests.servers import BASE_ENV, ROOT, fresh_sqlite, manage, start_daphne
from tests.tcpproxy import TcpProxy

OUTAGE_SECONDS = 30
NODE_ID_LENGTH = 8  # engine.EngineServer's node id, token_urlsafe(6), starts every sid


@pytest.fixture
def own_redis(tmp_path):
    server = RedisProcess(tmp_path).start()
    yield server
    server.stop()


async def connect_subscribed(url: str, transports_each, clients: list, received: list, disconnects: list) -> None:
    """A client per transport list, each in market:XLM_USDC: the `n` of every update it gets goes
    in its list in `received`, its index in `disconnects` if it drops (lists filled as they go,
    so the caller's cleanup sees every client made)."""
    for n, transports in enumerate(transports_each):
        client = socketio.AsyncClient(reconnection=False)
        got: list = []
        client.on("market:price_update", lambda data, *offset, got=got: got.append(data["n"]))
        client.on("disconnect", lambda *reason, n=n: disconnects.append(n))
        clients.append(client)
        received.append(got)
        await client.connect(url, transports=transports)
        assert (await client.call("subscribe", {"room": "market:XLM_USDC"}, timeout=5))["ok"]


async def test_redis_outage_loses_no_event_and_no_socket(own_redis, tmp_path):
    env = {**E2E_ENV, "REDIS_URL": own_redis.url, "DATABASE_URL": fresh_sqlite(tmp_path)}
    manage(env, "migrate", "--noinput")
    server = start_daphne("tests.e2e.testapp:application", env, ARTIFACTS / "e2e-redis-faults.log")
    clients, received, disconnects = [], [], []
    try:
        await connect_subscribed(server.url, (["websocket"], ["polling"], ["websocket"]), clients, received, disconnects)

        async with aiohttp.ClientSession() as http:
            async def emit(n: int) -> None:
                body = {"room": "market:XLM_USDC", "event": "market:price_update", "data": {"n": n}}
                async with http.post(f"{server.url}/__test__/emit", json=body) as resp:
                    assert resp.status == 200

            sent = 0
            for _ in range(5):
                await emit(sent)
                sent += 1
            await asyncio.sleep(0.5)
            own_redis.stop()
            for _ in range(OUTAGE_SECONDS):  # a steady stream while Redis is down
                await emit(sent)
                sent += 1
                await asyncio.sleep(1)
            async with http.get(f"{server.url}/metrics") as resp:
                queued = (await resp.json())["events"]["queueSize"]
            own_redis.start()
            for _ in range(5):
                await emit(sent)
                sent += 1

            for got in received:
                for _ in range(200):
                    if len(got) >= sent:
                        break
                    await asyncio.sleep(0.1)
        assert queued > 0  # they waited in the queue, not in some buffer we did not mean
        assert disconnects == []  # every socket stayed open through the outage
        assert all(client.connected for client in clients)
        for got in received:
            assert got == list(range(sent))  # all of them, in order, once
        for client in clients:  # and the server still answers
            assert (await client.call("ping", {}, timeout=5))["ok"]
        # The subscriber's lost connection is said in one line every 10 s, not a traceback a second.
        log = (ARTIFACTS / "e2e-redis-faults.log").read_text()
        assert "Unexpected exception in receive task" not in log
        assert 1 <= log.count("channels_redis.pubsub Redis is away, reconnecting") <= OUTAGE_SECONDS // 10 + 2
    finally:
        for client in clients:
            await client.disconnect()
        server.stop()


async def test_a_sync_emit_waits_out_a_redis_outage(own_redis, tmp_path):
    """emit_sync(retry_for=...), as Celery tasks use it, retries until Redis is back, and the
    live socket gets the event whether it was published before or after the server's pub/sub
    connection subscribed again (before: the server reads it back from the log)."""
    env = {**E2E_ENV, "REDIS_URL": own_redis.url, "DATABASE_URL": fresh_sqlite(tmp_path)}
    manage(env, "migrate", "--noinput")
    server = start_daphne("tests.e2e.testapp:application", env, ARTIFACTS / "e2e-redis-sync-emit.log")
    client = socketio.AsyncClient(reconnection=False)
    got: asyncio.Queue = asyncio.Queue()
    client.on("market:price_update", lambda data, *offset: got.put_nowait(data))
    try:
        await client.connect(server.url, transports=["websocket"])
        assert (await client.call("subscribe", {"room": "market:XLM_USDC"}, timeout=5))["ok"]
        own_redis.stop()
        code = ("import django; django.setup(); from realtime.emit import emit_sync; "
                "emit_sync('market:XLM_USDC', 'market:price_update', {'n': 'late'}, retry_for=60)")
        producer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, cwd=ROOT, env={**os.environ, **BASE_ENV, **env},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        seen = b""
        while b"retrying" not in seen:  # it has met the outage (Python and Django can take seconds)
            line = await asyncio.wait_for(producer.stderr.readline(), 30)
            assert line, f"the producer ended without retrying: {seen.decode()[-2000:]}"
            seen += line
        assert producer.returncode is None  # still retrying, not failed
        own_redis.start()
        _, stderr = await asyncio.wait_for(producer.communicate(), 40)
        assert producer.returncode == 0, (seen + stderr).decode()[-2000:]
        assert await asyncio.wait_for(got.get(), 15) == {"n": "late"}
        assert client.connected  # live, not recovered by a reconnect
    finally:
        await client.disconnect()
        server.stop()


async def test_events_published_while_the_server_is_not_subscribed_reach_its_live_sockets(own_redis, tmp_path):
    """The server loses its connections to Redis (Redis itself stays up) while a producer in
    another process publishes: nobody is subscribed to the room then. Once the server is back,
    its live sockets, both transports, get every event, in order, once, without reconnecting."""
    server_path = await TcpProxy(own_redis.port).start()
    env = {**E2E_ENV, "REDIS_URL": own_redis.url, "DATABASE_URL": fresh_sqlite(tmp_path)}
    manage(env, "migrate", "--noinput")
    server = start_daphne("tests.e2e.testapp:application", {**env, "REDIS_URL": f"redis://127.0.0.1:{server_path.port}/0"},
                          ARTIFACTS / "e2e-redis-resubscribe.log")
    producer = await SyncProducer.start(env)

    async def emit(*ns: int) -> None:
        await producer.emit([("market:XLM_USDC", "market:price_update", {"n": n}) for n in ns], timeout=30)

    watcher = redis.Redis(port=own_redis.port)
    group_channel = f"{E2E_ENV['REDIS_PREFIX']}__group__room.market.XLM_USDC"

    async def subscribers() -> int:
        return (await asyncio.to_thread(watcher.pubsub_numsub, group_channel))[0][1]

    clients, received, disconnects = [], [], []
    try:
        await connect_subscribed(server.url, (["websocket"], ["polling"]), clients, received, disconnects)

        async def everyone_has(count: int) -> None:
            for _ in range(150):
                if all(len(got) >= count for got in received):
                    return
                await asyncio.sleep(0.1)

        await emit(0, 1)
        await everyone_has(2)
        server_path.cut()  # the server's connections to Redis drop; it cannot make new ones
        for _ in range(50):
            if not await subscribers():
                break
            await asyncio.sleep(0.1)
        assert not await subscribers()
        await emit(2, 3, 4)  # logged and published, to no subscriber
        server_path.restore()
        for _ in range(300):  # the server's pub/sub connection subscribes again by itself
            if await subscribers():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the server never subscribed again to the room's group")
        await emit(5, 6)
        await everyone_has(7)
        await asyncio.sleep(0.5)  # time for a second copy to show
        for got in received:
            assert got == list(range(7))
        assert disconnects == [] and all(client.connected for client in clients)
        async with aiohttp.ClientSession() as http, http.get(f"{server.url}/metrics") as resp:
            assert (await resp.json())["events"]["refilled"] == 3  # 2, 3 and 4; not 0 and 1 again
    finally:
        for client in clients:
            await client.disconnect()
        await producer.stop()
        watcher.close()
        await server_path.stop()
        server.stop()


async def test_sockets_connect_sign_in_recover_and_leave_while_redis_is_away(own_redis, tmp_path):
    """While Redis is down, sockets still come and go: a signed-in one that leaves gives its
    connection slot back (MAX_CONNECTIONS_PER_USER 2 here), a new one is answered in full
    (`connected`, `authenticated`), a recovery that cannot read its saved state starts afresh
    instead of waiting for an answer, and the user's events of the outage and after reach the
    sockets signed in during it. Before: the leave failed half-way (the slot kept: the second
    sign-in was refused), new sockets got neither event, the recovery no answer at all."""
    env = {**E2E_ENV, "REDIS_URL": own_redis.url, "DATABASE_URL": fresh_sqlite(tmp_path), "MAX_CONNECTIONS_PER_USER": "2"}
    manage(env, "migrate", "--noinput")
    server = start_daphne("tests.e2e.testapp:application", env, ARTIFACTS / "e2e-redis-connects.log")
    user = "5f607182-93a4-4b5c-8d7e-8f90a1b2c3d4"
    token = manage(env, "mint_token", "--user", user, "--ttl", "600").stdout.strip()
    clients = []

    async def signed_in() -> tuple[socketio.AsyncClient, asyncio.Queue]:
        client = socketio.AsyncClient(reconnection=False)
        got: asyncio.Queue = asyncio.Queue()
        for event in ("connected", "authenticated", "auth_error", "notice"):
            client.on(event, lambda data, *offset, event=event: got.put_nowait((event, data)))
        clients.append(client)
        await client.connect(server.url, auth={"token": token}, transports=["websocket"])
        return client, got

    async def next_event(got: asyncio.Queue) -> tuple:
        return await asyncio.wait_for(got.get(), 10)

    try:
        leaving = [await signed_in() for _ in range(2)]
        for _, got in leaving:
            assert [(await next_event(got))[0] for _ in range(2)] == ["connected", "authenticated"]
        ws = await websockets_connect(f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket")
        assert (await ws.recv()).startswith("0")
        await ws.send("40{}")
        pid = json.loads((await ws.recv())[2:])["pid"]
        offset = json.loads((await ws.recv())[2:])[2]  # `connected`'s
        await ws.close()

        own_redis.stop()
        for client, _ in leaving:
            await client.disconnect()
        arrived = [await signed_in() for _ in range(2)]  # the two slots the leavers gave back
        for _, got in arrived:
            events = [await next_event(got) for _ in range(2)]
            assert [event for event, _ in events] == ["connected", "authenticated"], events
            assert events[1][1]["userId"] == user
        ws = await websockets_connect(f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket")
        assert (await ws.recv()).startswith("0")
        await ws.send("40" + json.dumps({"pid": pid, "offset": offset}))
        reply = json.loads((await asyncio.wait_for(ws.recv(), 10))[2:])
        assert reply["pid"] != pid  # answered: not recovered, a socket of its own
        await ws.close()

        async with aiohttp.ClientSession() as http:
            async def emit(n: int) -> None:
                body = {"room": f"user:{user}", "event": "notice", "data": {"n": n}}
                async with http.post(f"{server.url}/__test__/emit", json=body) as resp:
                    assert resp.status == 200

            await emit(0)  # waits in the server's queue for Redis
            own_redis.start()
            await emit(1)
        for _, got in arrived:
            assert [await next_event(got) for _ in range(2)] == [("notice", {"n": 0}), ("notice", {"n": 1})]
    finally:
        for client in clients:
            await client.disconnect()
        server.stop()


async def test_a_node_started_while_redis_was_down_hears_forwarded_requests_once_it_is_back(own_redis, tmp_path):
    """A node's channel for requests forwarded by other nodes (forwarding.py) could not be
    subscribed while Redis was down, and channels_redis never tries again. Handshakes still
    work meanwhile; the first one after Redis is back subscribes it, before the sid goes out."""
    env = {**E2E_ENV, "REDIS_URL": own_redis.url, "DATABASE_URL": fresh_sqlite(tmp_path)}
    manage(env, "migrate", "--noinput")
    own_redis.stop()
    server = start_daphne("tests.e2e.testapp:application", env, ARTIFACTS / "e2e-redis-forwarding.log")
    handshake = f"{server.url}/socket.io/?EIO=4&transport=polling"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(handshake) as resp:  # Redis down: served all the same
                assert resp.status == 200
                node = json.loads((await resp.text())[1:])["sid"][:NODE_ID_LENGTH]
            own_redis.start()
            channel = node_channel(node)
            client = redis.Redis(port=own_redis.port)
            assert client.pubsub_numsub(channel) == [(channel.encode(), 0)]  # nobody: the subscribe failed
            async with http.get(handshake) as resp:
                assert resp.status == 200
            assert client.pubsub_numsub(channel) == [(channel.encode(), 1)]
            client.close()
    finally:
        server.stop()


async def test_a_sign_in_a_node_started_before_redis_cannot_finish_is_tried_again_by_the_client(own_redis, tmp_path):
    """A node up before Redis (a stack starting all at once): a signed-in socket cannot join
    its user's room yet. The connection closes, so the client's own reconnection tries again,
    and it is signed in once Redis is there. Before: the client stayed connected, never told
    `authenticated` (nor anything else), and out of its user's room for good."""
    env = {**E2E_ENV, "REDIS_URL": own_redis.url, "DATABASE_URL": fresh_sqlite(tmp_path)}
    manage(env, "migrate", "--noinput")
    user = "60718293-a4b5-4c6d-9e8f-90a1b2c3d4e5"
    token = manage(env, "mint_token", "--user", user, "--ttl", "600").stdout.strip()
    own_redis.stop()
    server = start_daphne("tests.e2e.testapp:application", env, ARTIFACTS / "e2e-redis-late-sign-in.log")
    client = socketio.AsyncClient(reconnection_delay=0.2, reconnection_delay_max=0.5)
    authenticated = asyncio.Event()
    client.on("authenticated", lambda data, *offset: authenticated.set())
    try:
        await client.connect(server.url, auth={"token": token}, transports=["websocket"])
        await asyncio.sleep(1)
        assert not authenticated.is_set()
        own_redis.start()
        await asyncio.wait_for(authenticated.wait(), 15)
    finally:
        await client.disconnect()
        server.stop()


async def test_a_sync_emit_retried_after_its_answer_was_lost_arrives_once(own_redis, tmp_path):
    """A two-room emit (as every transaction and automation event) that Redis did (logged, and
    published to both rooms) but whose answer its producer never heard. Its retry (redis-py's
    own, on a new connection) finds it logged and gets its offset (not logged again, under a new
    one): a socket in both rooms gets it once."""
    proxy = await TcpProxy(own_redis.port).start()
    env = {**E2E_ENV, "REDIS_URL": own_redis.url, "DATABASE_URL": fresh_sqlite(tmp_path)}
    manage(env, "migrate", "--noinput")
    server = start_daphne("tests.e2e.testapp:application", env, ARTIFACTS / "e2e-redis-sync-emit-half.log")
    rooms = ["market:XLM_USDC", "system:notifications"]
    client = socketio.AsyncClient(reconnection=False)
    got: list = []
    client.on("note", lambda data, *offset: got.append(data))
    try:
        await client.connect(server.url, transports=["websocket"])
        for room in rooms:
            assert (await client.call("subscribe", {"room": room}, timeout=5))["ok"]
        await emit_via_server(server, rooms[0], "warm-up", {})  # the emit's script, loaded into Redis
        proxy.lose_reply_to(b"EVALSHA")
        code = ("import django; django.setup(); from realtime.emit import emit_sync; "
                f"emit_sync({rooms!r}, 'note', {{'n': 1}}, retry_for=30)")
        producer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, cwd=ROOT, env={**os.environ, **BASE_ENV, **env, "REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"},
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(producer.communicate(), 60)
        assert producer.returncode == 0, stderr.decode()[-2000:]
        assert proxy.replies_lost == 1
        await asyncio.sleep(1.0)
        assert got == [{"n": 1}]
        entries = redis.Redis(port=own_redis.port).xrange(f"{env['REDIS_PREFIX']}:events")
        assert [msgpack.unpackb(fields[b"m"])[2] for _, fields in entries].count("note") == 1  # logged once
    finally:
        await client.disconnect()
        server.stop()
        await proxy.stop()


async def test_rooms_joined_and_left_on_a_dropped_subscriber_connection_are_heard_and_dropped(own_redis, tmp_path):
    """Redis drops the server's subscriber connection and is back at once (a blip, a killed
    client) while the channels_redis receive task that would notice sleeps: two joins in a row
    write to the dropped connection. The second fails, and redis-py, inside that call, connects
    again and subscribes what it knew before raising: the room must be in that set already. The
    same for two leaves. Before: the second room was never subscribed again (its event lost, its
    join answered `ok`), and both left rooms were subscribed again."""
    proxy = await TcpProxy(own_redis.port).start()
    env = {**E2E_ENV, "REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0", "DATABASE_URL": fresh_sqlite(tmp_path)}
    manage(env, "migrate", "--noinput")
    server = start_daphne("tests.e2e.testapp:application", env, ARTIFACTS / "e2e-redis-stale-subscriber.log")
    direct = redis.Redis(port=own_redis.port)
    rooms = ["market:XLM_USDC:orderbook", "market:XLM_USDC"]
    client = socketio.AsyncClient(reconnection=False)
    got: list = []
    client.on("market:price_update", lambda data, *offset: got.append(data["n"]))

    async def dropped_unnoticed() -> None:
        """Two drops: the receive task connects again at once after the first, inside the read
        that failed, and then sleeps 1 s (as after any error), so the second goes unnoticed."""
        subscribers = {c["id"] for c in direct.client_list(_type="pubsub")}
        proxy.cut()
        proxy.restore()
        for _ in range(500):
            if {c["id"] for c in direct.client_list(_type="pubsub") if int(c["sub"])} - subscribers:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the subscriber did not connect again")
        proxy.cut()
        proxy.restore()

    try:
        await client.connect(server.url, transports=["websocket"])
        assert (await client.call("subscribe", {"room": "system:notifications"}, timeout=5))["ok"]
        heard = set(direct.pubsub_channels())
        await dropped_unnoticed()
        for room in rooms:
            assert (await client.call("subscribe", {"room": room}, timeout=5))["ok"]
        # After the gap fill of that reconnect (it would deliver the emits below from the log).
        await asyncio.sleep(1.5)
        async with aiohttp.ClientSession() as http:
            for n, room in enumerate(rooms):
                body = {"room": room, "event": "market:price_update", "data": {"n": n}}
                async with http.post(f"{server.url}/__test__/emit", json=body) as resp:
                    assert resp.status == 200
        for _ in range(100):
            if len(got) == len(rooms):
                break
            await asyncio.sleep(0.05)
        assert sorted(got) == [0, 1]

        await dropped_unnoticed()
        for room in rooms:
            assert (await client.call("unsubscribe", {"room": room}, timeout=5))["ok"]
        await asyncio.sleep(1.5)  # the receive task awake again, finding the connection up
        assert set(direct.pubsub_channels()) == heard
    finally:
        await client.disconnect()
        direct.close()
        server.stop()
        await proxy.stop()
