"""Connection state recovery with the real socket.io-client v4, through a network we cut.

The client's network drops (a TCP proxy aborts its connection and refuses new ones); room
events keep coming; when the network returns the client reconnects by itself and must see
`socket.recovered === true` and every missed event, in order, exactly once.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import jwt
import pytest
import redis
from websockets.asyncio.client import connect as websockets_connect

from tests.auth.clients import Client
from tests.e2e.conftest import ARTIFACTS, E2E_ENV, SyncProducer, database_behind_a_proxy, emit_via_server
from tests.servers import REDIS_URL, ROOT, fresh_sqlite, manage, start_daphne
from tests.tcpproxy import TcpProxy

NODE_DIR = ROOT / "tests" / "e2e" / "node"


class RecoveringClient:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, url: str, room: str, token: str | None = None) -> RecoveringClient:
        args = ["recovery.mjs", "--url", url, "--room", room] + (["--token", token] if token else [])
        process = await asyncio.create_subprocess_exec(
            shutil.which("node"), *args, cwd=NODE_DIR,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def next(self, kind: str, timeout: float = 10) -> dict:
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
            assert line, "the client exited"
            record = json.loads(line)
            if record["type"] == kind:
                return record

    async def events(self, count: int) -> list[dict]:
        return [(await self.next("event"))["data"] for _ in range(count)]

    async def no_more_events(self, within: float = 0.5) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await self.next("event", timeout=within)

    async def stop(self) -> None:
        self.process.stdin.close()
        await asyncio.wait_for(self.process.wait(), 10)


def price(n: int) -> dict:
    return {"pair": "XLM_USDC", "price": n, "volume": 1, "change24h": 0}


async def start_session(server, room="market:XLM_USDC"):
    proxy = await TcpProxy(server.port).start()
    client = await RecoveringClient.start(proxy.url, room)
    first = await client.next("connect")
    assert first["recovered"] is False
    assert (await client.next("subscribed"))["reply"]["ok"] is True
    return proxy, client, first


async def test_missed_events_are_replayed_in_order_once_after_the_network_returns(server):
    proxy, client, first = await start_session(server)
    await emit_via_server(server, "market:XLM_USDC", "market:price_update", price(1))
    assert await client.events(1) == [price(1)]

    proxy.cut()
    await client.next("disconnect")
    for n in (2, 3, 4):
        await emit_via_server(server, "market:XLM_USDC", "market:price_update", price(n))
    await emit_via_server(server, "market:BTC_USDC", "market:price_update", {"pair": "BTC_USDC"})  # not its room
    await asyncio.sleep(10)  # the network stays down for 10 s
    proxy.restore()

    again = await client.next("connect", timeout=15)
    assert again["recovered"] is True and again["id"] == first["id"]
    assert await client.events(3) == [price(2), price(3), price(4)]
    await emit_via_server(server, "market:XLM_USDC", "market:price_update", price(5))
    assert await client.events(1) == [price(5)]
    await client.no_more_events()
    await client.stop()
    await proxy.stop()


async def test_a_socket_that_got_no_event_yet_still_recovers(server):
    proxy, client, first = await start_session(server, room="system:notifications")
    proxy.cut()
    await client.next("disconnect")
    await emit_via_server(server, "system:notifications", "notification", {"n": 1})
    proxy.restore()
    again = await client.next("connect", timeout=15)
    assert again["recovered"] is True
    assert await client.events(1) == [{"n": 1}]
    await client.stop()
    await proxy.stop()


@pytest.fixture(scope="module")
def short_recovery_server(tmp_path_factory):
    env = {**E2E_ENV, "RECOVERY_MAX_DISCONNECTION_MS": "1000"}
    env["DATABASE_URL"] = fresh_sqlite(tmp_path_factory.mktemp("db"))
    manage(env, "migrate", "--noinput")
    srv = start_daphne("tests.e2e.testapp:application", env, ARTIFACTS / "e2e-short-recovery.log")
    yield srv
    srv.stop()


async def test_a_client_gone_too_long_is_told_it_was_not_recovered(short_recovery_server):
    server = short_recovery_server
    proxy, client, first = await start_session(server)
    proxy.cut()
    await client.next("disconnect")
    await emit_via_server(server, "market:XLM_USDC", "market:price_update", price(1))
    await asyncio.sleep(2)  # past RECOVERY_MAX_DISCONNECTION_MS
    proxy.restore()
    again = await client.next("connect", timeout=15)
    assert again["recovered"] is False and again["id"] != first["id"]
    await client.no_more_events()  # no silent partial replay: it knows to refetch
    await client.stop()
    await proxy.stop()


# The recovery window of the Redis-backed server below: long enough for a reconnect, short
# enough that a test can wait past it.
SHORT_WINDOW_MS = 3000


@pytest.fixture(scope="module")
def short_recovery_redis_server(tmp_path_factory):
    """Production's log (a Redis stream) with a short window, under keys of its own, and the
    default heartbeat: each ping carries the log's head, so a socket's offset ages only when
    the test outlasts the interval between them."""
    env = {**E2E_ENV, "RECOVERY_MAX_DISCONNECTION_MS": str(SHORT_WINDOW_MS), "REDIS_URL": REDIS_URL,
           "REDIS_PREFIX": f"{E2E_ENV['REDIS_PREFIX']}-window", "HEARTBEAT_INTERVAL": "30000"}
    env["DATABASE_URL"] = fresh_sqlite(tmp_path_factory.mktemp("db"))
    manage(env, "migrate", "--noinput")
    srv = start_daphne("tests.e2e.testapp:application", env, ARTIFACTS / "e2e-short-recovery-redis.log")
    yield srv
    srv.stop()
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{env['REDIS_PREFIX']}:*", count=1000):
        client.delete(key)
    client.close()


async def test_the_log_stays_within_the_window_when_another_process_emits(short_recovery_redis_server):
    """Almost every event comes through emit_sync in another process (Celery, views), each call
    with a log object of its own. The stream still loses what is older than the window (an audit
    found 1,000 such emits all still there past it), and recovery still knows what it lost: a
    client whose offset went with it is not recovered, a recent one gets what it missed."""
    server = short_recovery_redis_server
    events_key = f"{server.env['REDIS_PREFIX']}:events"
    watcher = redis.Redis.from_url(REDIS_URL)
    producer = await SyncProducer.start(server.env)
    sessions = []  # (proxy, client), stopped whatever happens
    try:
        proxy_old, old, _ = await start_session(server, room="system:notifications")
        sessions.append((proxy_old, old))
        await producer.emit([("system:notifications", "notification", {"n": 0})])
        assert await old.events(1) == [{"n": 0}]  # its offset: about to age out (no ping in between)
        await producer.emit([("market:BTC_USDC", "market:price_update", {"n": n}) for n in range(1000)])
        await asyncio.sleep(SHORT_WINDOW_MS / 1000 + 0.5)  # all of them older than the window
        proxy_recent, recent, first = await start_session(server)
        sessions.append((proxy_recent, recent))
        await producer.emit([("market:XLM_USDC", "market:price_update", price(1))])
        assert await recent.events(1) == [price(1)]
        length = watcher.xlen(events_key)
        print(f"XLEN {events_key} past the window: {length}")
        assert length <= 101  # the new entry, and at most one node's worth older (trimmed with ~)

        for proxy, client in sessions:
            proxy.cut()
            await client.next("disconnect")
        await producer.emit([("market:XLM_USDC", "market:price_update", price(2)),
                             ("system:notifications", "notification", {"n": 1}),
                             ("market:XLM_USDC", "market:price_update", price(3))])
        for proxy, _ in sessions:
            proxy.restore()
        again = await recent.next("connect", timeout=15)
        assert again["recovered"] is True and again["id"] == first["id"]
        assert await recent.events(2) == [price(2), price(3)]
        gone = await old.next("connect", timeout=15)
        assert gone["recovered"] is False  # what followed its offset was trimmed: it must refetch
        await old.no_more_events()
    finally:
        for proxy, client in sessions:
            await client.stop()
            await proxy.stop()
        await producer.stop()
        watcher.close()


class SplitProducer:
    """Another process whose emit comes in two halves, as one does when its publish waits on
    retries (emit_sync's, a background send's): `log` puts the event in the recovery log,
    `publish` sends it to the nodes later."""

    CODE = ("import asyncio, json, sys, django\ndjango.setup()\nfrom realtime.emit import RoomEvent, emitter\n"
            "async def main():\n"
            "    loop, item = asyncio.get_running_loop(), None\n"
            "    print('ready', flush=True)\n"
            "    while line := await loop.run_in_executor(None, sys.stdin.readline):\n"
            "        room, event, data = json.loads(line)\n"
            "        if room:\n"
            "            item = RoomEvent((room,), event, data)\n"
            "            item.offset = await emitter().log.append(item.namespace, item.rooms, event, data, item.event_id)\n"
            "        else:\n"
            "            await emitter().deliver(item)\n"
            "        print(item.offset, flush=True)\n"
            "asyncio.run(main())\n")

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, env: dict[str, str]) -> SplitProducer:
        return cls((await SyncProducer.start(env, code=cls.CODE)).process)

    async def _say(self, *command) -> str:
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        return (await asyncio.wait_for(self.process.stdout.readline(), 30)).decode().strip()

    async def log(self, room: str, event: str, data) -> str:
        return await self._say(room, event, data)

    async def publish(self) -> str:
        return await self._say(None, None, None)


async def test_an_event_logged_before_a_replay_and_published_after_it_comes_once(short_recovery_redis_server):
    """An emit logs its event, then publishes it. Between the two a client recovers: its replay,
    read from the log, has the event; then the publish reaches the node. The client must not get
    it twice (before: it did, with the same offset, after the replay: the loss audit's F5)."""
    producer = await SplitProducer.start(short_recovery_redis_server.env)
    proxy, client, _ = await start_session(short_recovery_redis_server)
    try:
        proxy.cut()
        await client.next("disconnect")
        await producer.log("market:XLM_USDC", "market:price_update", price(1))
        proxy.restore()
        assert (await client.next("connect", timeout=15))["recovered"] is True
        assert await client.events(1) == [price(1)]  # replayed
        await producer.publish()
        await producer.log("market:XLM_USDC", "market:price_update", price(2))
        await producer.publish()
        assert await client.events(1) == [price(2)]  # not price(1) again
        await client.no_more_events()
    finally:
        await client.stop()
        await proxy.stop()
        producer.process.stdin.close()
        await asyncio.wait_for(producer.process.wait(), 10)


@pytest.mark.parametrize("server", ["redis", "uvicorn"], indirect=True)
async def test_events_that_processes_emit_at_once_reach_a_socket_in_log_order(server):
    """Celery workers and views emit to one room at the same moments, each from its process.
    A socket gets the room's events in log order: socket.io-client keeps the offset of the last
    event it got, and its recovery is sent what the log holds after it; one that came before an
    older one would have that older one sent again, or lost if the network dropped in between.
    Before: an emit logged its event, then published it, a round trip later; another process's
    whole emit fitted in between, and that one's event overtook it."""
    proxy, client, _ = await start_session(server)
    producers = [await SyncProducer.start(server.env) for _ in range(3)]
    try:
        await asyncio.gather(*(producer.emit([("market:XLM_USDC", "market:price_update", {"from": i, "n": n}) for n in range(300)])
                               for i, producer in enumerate(producers)))
        got = [await client.next("event") for _ in range(900)]
        offsets = [tuple(int(part) for part in event["offset"].split("-")) for event in got]
        assert len(set(offsets)) == 900
        overtaken = [(before, after) for before, after in zip(offsets, offsets[1:]) if after < before]
        assert overtaken == [], f"{len(overtaken)} of 900 events came after one logged later"
        await client.no_more_events()
    finally:
        await client.stop()
        await proxy.stop()
        for producer in producers:
            await producer.stop()


async def test_recovery_restores_the_user_and_its_private_rooms(server):
    user = "6d0b4a3c-1f2e-4d5c-8b7a-9e8f7a6b5c4d"
    token, _ = _mint(server, user, 600)
    proxy = await TcpProxy(server.port).start()
    client = await RecoveringClient.start(proxy.url, f"user:{user}", token=token)
    first = await client.next("connect")
    assert (await client.next("authenticated"))["data"]["userId"] == user
    assert (await client.next("subscribed"))["reply"]["ok"] is True
    proxy.cut()
    await client.next("disconnect")
    await emit_via_server(server, f"user:{user}", "notification", {"private": True})
    proxy.restore()
    again = await client.next("connect", timeout=15)
    assert again["recovered"] is True and again["id"] == first["id"]
    assert await client.events(1) == [{"private": True}]
    await client.stop()
    await proxy.stop()


async def test_recoveries_give_back_their_connection_slots(server):
    """Each recovery takes the user's connection slot (MAX_CONNECTIONS_PER_USER, 5 here) for
    the socket's restored id, and its disconnect gives that slot back: six network cuts in a row
    leave the user signed in each time, and afterwards a new connection of theirs gets in."""
    user = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
    token, _ = _mint(server, user, 600)
    proxy = await TcpProxy(server.port).start()
    client = await RecoveringClient.start(proxy.url, f"user:{user}", token=token)
    try:
        first = await client.next("connect")
        await client.next("authenticated")
        assert (await client.next("subscribed"))["reply"]["ok"] is True
        for cut in range(6):
            proxy.cut()
            await client.next("disconnect")
            await emit_via_server(server, f"user:{user}", "notification", {"cut": cut})
            proxy.restore()
            again = await client.next("connect", timeout=15)
            assert again["recovered"] is True and again["id"] == first["id"], cut
            assert await client.events(1) == [{"cut": cut}], cut  # still the user: its room came back
    finally:
        await client.stop()
        await proxy.stop()
    fresh = Client()
    await fresh.connect(server, auth={"token": token})
    try:
        assert (await fresh.next("authenticated"))["userId"] == user
    finally:
        await fresh.close()


async def test_recoveries_whose_client_leaves_at_once_hold_nothing_and_can_be_tried_again(server):
    """Reconnections that drop before their CONNECT is answered (a flaky mobile network): the
    sockets their recoveries restored are not left behind in the user's rooms holding its
    connection slots (MAX_CONNECTIONS_PER_USER, 5 here: the user would be locked out), and each
    state is kept for the next try, which recovers."""
    user = "4e5f6071-8293-4a41-b5c6-d7e8f90a1b2c"
    token, _ = _mint(server, user, 600)
    dropped = []
    for _ in range(5):
        ws, sid, pid, offset = await _socket(server, {"token": token})
        await _next_event(ws, "authenticated")
        ws.transport.abort()  # the network drops: each socket's state is saved for recovery
        dropped.append((sid, pid, offset))
    url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
    for _, pid, offset in dropped:
        ws = await websockets_connect(url)
        assert (await ws.recv()).startswith("0")
        await ws.send("40" + json.dumps({"pid": pid, "offset": offset}))
        ws.transport.abort()  # gone while the server restores it
    await asyncio.sleep(1)
    fresh = Client()
    await fresh.connect(server, auth={"token": token})
    try:
        assert (await fresh.next("authenticated"))["userId"] == user  # no slot left held
    finally:
        await fresh.close()
    sid, pid, offset = dropped[0]
    ws, again, _, _ = await _socket(server, {"pid": pid, "offset": offset})
    try:
        assert again == sid  # recovered: the state outlived the try that dropped
    finally:
        await ws.close()


async def test_a_client_that_disconnects_is_not_recovered_even_if_its_close_overtakes_its_disconnect(server):
    """socket.io-client's disconnect(): DISCONNECT ("41"), then the connection closes at once.
    The socket ended because its client left, not because the network dropped: its state is not
    kept, and a reconnection with its pid starts afresh (as in Node)."""
    ws, sid, pid, offset = await _socket(server, {})
    await ws.send("41")
    await ws.send("1")  # Engine.IO CLOSE, handled as soon as it is read
    await ws.close()
    await asyncio.sleep(0.5)
    ws, again, _, _ = await _socket(server, {"pid": pid, "offset": offset})
    try:
        assert again != sid
    finally:
        await ws.close()


def _mint(server, user: str, ttl: int) -> tuple[str, float]:
    """A token for `user` of `ttl` s, and its `exp`. A test waits for that, not for `ttl` from
    now: on a loaded machine the mint's process alone ends seconds after it signed the token."""
    token = manage(server.env, "mint_token", "--user", user, "--ttl", str(ttl)).stdout.strip()
    return token, jwt.decode(token, options={"verify_signature": False})["exp"]


async def _until_expired(exp: float) -> None:
    await asyncio.sleep(max(0.0, exp - time.time()) + 1)


def _still_valid(exp: float) -> None:
    """The premise of a test whose token must outlive its sign-in and drop: else the live socket
    was signed out first, and what follows tests nothing."""
    assert time.time() < exp, "the token expired before the socket dropped: give it a longer ttl"


async def _signed_in_by_event_then_dropped(server, user: str, ttl: int) -> tuple:
    """A raw socket signed in with the `authenticate` event (a token of `ttl` s), whose network
    then drops, its token still valid: (sid, pid, offset, the token's exp) for its recovery."""
    token, exp = _mint(server, user, ttl)
    ws, sid, pid, offset = await _socket(server, {})
    await ws.send(json.dumps(["authenticate", {"token": token}]).join(["42", ""]))
    await _next_event(ws, "authenticated")
    ws.transport.abort()
    _still_valid(exp)
    return sid, pid, offset, exp


async def _socket(server, connect: dict) -> tuple:
    """A raw WebSocket client's CONNECT with `connect` as its auth: (ws, sid, pid, offset)."""
    ws = await websockets_connect(f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket")
    assert (await ws.recv()).startswith("0")
    await ws.send("40" + json.dumps(connect))
    reply = await asyncio.wait_for(ws.recv(), 10)
    assert reply.startswith("40{"), reply
    ids = json.loads(reply[2:])
    connected = await _next_event(ws, "connected")
    return ws, ids["sid"], ids.get("pid"), connected[2]


async def _next_event(ws, name: str, within: float = 10) -> list:
    deadline = asyncio.get_running_loop().time() + within
    while (event := await _next_frame_event(ws, deadline - asyncio.get_running_loop().time()))[0] != name:
        pass
    return event


async def _next_frame_event(ws, within: float) -> list:
    """The next event's [name, *args] to come within `within` s."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        frame = await asyncio.wait_for(ws.recv(), deadline - asyncio.get_running_loop().time())
        if frame == "2":  # Engine.IO's ping: answered, or the server closes a quiet client
            await ws.send("3")
        elif frame.startswith("42"):
            return json.loads(frame[2:])


async def test_a_token_sent_with_a_recovery_signs_in_the_socket_whose_token_expired_meanwhile(server):
    """socket.io-client sends its `auth` on every reconnection: a fresh token there is checked
    (as a Node middleware would) and signs the recovered socket in, private rooms kept."""
    user = "1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9"
    fresh, _ = _mint(server, user, 600)
    short, exp = _mint(server, user, 6)
    ws, sid, pid, offset = await _socket(server, {"token": short})
    await _next_event(ws, "authenticated")
    ws.transport.abort()  # the network drops
    _still_valid(exp)
    await _until_expired(exp)  # the short token expires meanwhile
    ws, again, _, _ = await _socket(server, {"token": fresh, "pid": pid, "offset": offset})
    try:
        assert again == sid  # recovered
        assert (await _next_event(ws, "authenticated"))[1]["userId"] == user
        await emit_via_server(server, f"user:{user}", "notification", {"still": "mine"})
        assert (await _next_event(ws, "notification"))[1] == {"still": "mine"}
    finally:
        await ws.close()


async def test_a_recovered_socket_whose_token_expired_meanwhile_is_told(server):
    """Signed in with the `authenticate` event, so no token comes with the reconnection: it is
    recovered anonymous and told `auth_error {error: "token expired"}`, as a live socket is."""
    user = "2c3d4e5f-6071-4829-93a4-b5c6d7e8f901"
    sid, pid, offset, exp = await _signed_in_by_event_then_dropped(server, user, ttl=6)
    await _until_expired(exp)
    await _recovered_and_told(server, sid, pid, offset, "token expired")


async def _recovered_and_told(server, sid: str, pid: str, offset: str, error: str) -> None:
    """A reconnection with no token recovers `sid`, anonymous, and is told `auth_error {error}`."""
    ws, again, _, _ = await _socket(server, {"pid": pid, "offset": offset})
    try:
        assert again == sid
        assert (await _next_event(ws, "auth_error"))[1] == {"error": error}
    finally:
        await ws.close()


async def _events_until(ws, name: str, within: float = 10) -> list[str]:
    """The names of the events that come before `name`, which must come within `within` s."""
    seen = []
    while (event := (await _next_frame_event(ws, within)))[0] != name:
        seen.append(event[0])
    return seen


async def test_a_recovery_resending_its_expired_token_replays_nothing_of_the_user_after_it(server):
    """socket.io-client resends its `auth` on each reconnection, the token it had: expired while
    the network was down, yet inside the verifier's leeway (30 s, for clocks apart). The user's
    events from after it must not be replayed to the socket it opens no room for any more.
    Before: the private room came back, the replay sent them, then `auth_error` came."""
    user = "4f607182-93a4-4b5c-8d7e-f90a1b2c3d4e"
    short, exp = _mint(server, user, 6)
    ws, sid, pid, offset = await _socket(server, {"token": short})
    await _next_event(ws, "authenticated")
    ws.transport.abort()  # the network drops
    _still_valid(exp)
    await _until_expired(exp)  # the token expires meanwhile
    await emit_via_server(server, f"user:{user}", "notification", {"after": "its token's end"})
    ws = await websockets_connect(f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket")
    try:
        assert (await ws.recv()).startswith("0")
        await ws.send("40" + json.dumps({"token": short, "pid": pid, "offset": offset}))
        assert json.loads((await asyncio.wait_for(ws.recv(), 10))[2:])["sid"] == sid  # recovered
        assert "notification" not in await _events_until(ws, "auth_error")
        with pytest.raises(asyncio.TimeoutError):
            await _next_event(ws, "notification", within=1)
    finally:
        await ws.close()


async def test_a_recovery_that_finds_its_users_slots_taken_is_told(server):
    """Its user's other tabs took every connection slot (MAX_CONNECTIONS_PER_USER, 5 here) while
    it was away: it comes back anonymous and is told `auth_error {error: "too many
    connections"}`, as a sign-in is. Before: anonymous, and nothing said."""
    user = "5f607182-93a4-4b5c-9d7e-f90a1b2c3d4f"
    sid, pid, offset, _ = await _signed_in_by_event_then_dropped(server, user, ttl=600)
    token, _ = _mint(server, user, 600)
    tabs = [Client() for _ in range(5)]
    try:
        for tab in tabs:
            await tab.connect(server, auth={"token": token})
            await tab.next("authenticated")
        await _recovered_and_told(server, sid, pid, offset, "too many connections")
    finally:
        for tab in tabs:
            await tab.close()


async def test_a_recovered_user_still_expires_when_its_token_does(server):
    """The user a recovery restores keeps its token's expiry: at it, `auth_error {error: "token
    expired"}` and its private rooms are left, as for a socket that never dropped."""
    user = "3d4e5f60-7182-4930-a4b5-c6d7e8f90a1b"
    sid, pid, offset, exp = await _signed_in_by_event_then_dropped(server, user, ttl=8)
    ws, again, _, _ = await _socket(server, {"pid": pid, "offset": offset})
    try:
        assert again == sid
        await emit_via_server(server, f"user:{user}", "note", {"n": 1})
        assert (await _next_event(ws, "note"))[1] == {"n": 1}  # signed in again, in its room
        _still_valid(exp)
        assert (await _next_event(ws, "auth_error", within=exp - time.time() + 5))[1] == {"error": "token expired"}
        await emit_via_server(server, f"user:{user}", "note", {"n": 2})
        with pytest.raises(asyncio.TimeoutError):
            await _next_event(ws, "note", within=1)
    finally:
        await ws.close()


async def test_a_recovery_whose_database_is_away_starts_afresh_and_holds_nothing():
    """The database goes away between a socket's drop and its recovery, so asking who owns its
    wallet room fails half-way through restoring it (its user's connection slot taken, its
    heartbeat on). The client still gets an answer, a fresh socket, and nothing stays held:
    with MAX_CONNECTIONS_PER_USER 1 the user signs in again. Before: the connection closed
    with no answer, and the slot stayed taken ("too many connections") for the process's life."""
    user, wallet = "718293a4-b5c6-4d7e-8f90-a1b2c3d4e5f6", "8293a4b5-c6d7-4e8f-90a1-b2c3d4e5f607"
    async with database_behind_a_proxy("e2e-recovery-database-away.log", user, wallet, MAX_CONNECTIONS_PER_USER="1") as (
            server, database_path, token, env):
        cache = redis.Redis.from_url(REDIS_URL)
        try:
            ws, sid, pid, _ = await _socket(server, {"token": token})
            await _next_event(ws, "authenticated")
            await ws.send('42["subscribe",{"room":"wallet:' + wallet + '"}]')
            await _next_event(ws, "subscribed")
            ws.transport.abort()  # dropped: its state (signed in, in wallet:...) is saved
            for key in cache.scan_iter(match=f"{env['CACHE_KEY_PREFIX']}:*room-owner*"):
                cache.delete(key)  # the owner is not cached: the recovery must ask the database
            database_path.cut()

            ws = await websockets_connect(f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket")
            assert (await ws.recv()).startswith("0")
            await ws.send("40" + json.dumps({"pid": pid, "offset": "0-0"}))
            reply = await asyncio.wait_for(ws.recv(), 30)
            assert reply.startswith("40{"), reply
            assert json.loads(reply[2:])["sid"] != sid  # not recovered: a socket of its own
            await ws.close()

            database_path.restore()
            fresh = Client()
            await fresh.connect(server, auth={"token": token})
            try:
                assert (await fresh.next("authenticated"))["userId"] == user  # the slot was given back
            finally:
                await fresh.close()
        finally:
            cache.close()
