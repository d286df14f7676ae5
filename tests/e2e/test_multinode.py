"""Several nodes, no sticky sessions: two behind a round-robin TCP proxy (long-polling still
works, between the processes of one host and between hosts), and two production processes on
one host (an upgrade reaching the wrong one still works)."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from contextlib import asynccontextmanager

import aiohttp
import pytest
import socketio

from tests.e2e.conftest import ARTIFACTS, E2E_ENV, emit_via_server
from tests.servers import REDIS_URL, fresh_postgres, manage, start_daphne, start_uvicorn
from tests.tcpproxy import TcpProxy


def two_servers(start, name: str, redis_url: str = REDIS_URL, hosts: int = 1):
    """Two servers started by `start`, sharing Redis (keys of their own) and a database; with
    `hosts` 2, each as if on a host of its own: a temporary directory of its own, where this
    host's processes meet (transports/handoff.py, relay.py)."""
    env = {**E2E_ENV, "REDIS_URL": redis_url, "REDIS_PREFIX": f"{E2E_ENV['REDIS_PREFIX']}{name}"}
    env["DATABASE_URL"], drop = fresh_postgres()
    manage(env, "migrate", "--noinput")
    places = [tempfile.mkdtemp(prefix=f"host{n}-") for n in range(hosts)] if hosts > 1 else []
    servers = [start("tests.e2e.testapp:application", {**env, "TMPDIR": places[n]} if places else env,
                     ARTIFACTS / f"e2e-{name}-{n + 1}.log") for n in range(2)]
    yield servers
    for server in servers:
        server.stop()
    drop()
    for place in places:
        shutil.rmtree(place, ignore_errors=True)


@pytest.fixture(scope="module", params=[1, 2], ids=["one-host", "two-hosts"])
def two_nodes(request):
    """Through the relay between processes of a host, or through Redis between hosts."""
    yield from two_servers(start_daphne, f"node{request.param}", hosts=request.param)


@pytest.fixture
async def proxy(two_nodes):
    proxy = await TcpProxy(*(node.port for node in two_nodes)).start()
    yield proxy
    await proxy.stop()


async def test_every_request_on_a_new_connection_alternates_nodes_and_the_conversation_works(two_nodes, proxy):
    base = f"{proxy.url}/socket.io/?EIO=4&transport=polling"
    # force_close: one TCP connection per request, so the proxy sends each to the other node.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        async with http.get(base) as resp:
            sid = json.loads((await resp.text())[1:])["sid"]
        url = f"{base}&sid={sid}"

        async def post(body: str) -> None:
            async with http.post(url, data=body) as resp:
                assert (resp.status, await resp.text()) == (200, "ok")

        async def poll() -> list[str]:
            async with http.get(url) as resp:
                assert resp.status == 200
                return (await resp.text()).split("\x1e")

        pending: list[str] = []

        async def poll_until(prefix: str) -> str:
            """The next packet starting with `prefix` (long-polling for more, answering pings)."""
            for _ in range(20):
                while pending:
                    packet = pending.pop(0)
                    if packet == "2":
                        await post("3")
                    elif packet.startswith(prefix):
                        return packet
                pending.extend(await poll())
            raise AssertionError(f"no packet starting with {prefix!r}")

        await post("40")
        assert (await poll_until("40")).startswith('40{"sid":')
        await poll_until('42["connected",')
        await post('421["subscribe",{"room":"market:XLM_USDC"}]')
        assert (await poll_until("431")).startswith('431[{"ok":true,"room":"market:XLM_USDC"')

        waiting = asyncio.ensure_future(poll_until('42["market:price_update"'))  # held across the hop
        await asyncio.sleep(0.3)
        await emit_via_server(two_nodes[1], "market:XLM_USDC", "market:price_update", {"n": 1})
        assert (await asyncio.wait_for(waiting, 10)).startswith('42["market:price_update",{"n":1}')

        async with http.post(url, data="1") as resp:  # close, from either node
            assert resp.status == 200


async def test_python_socketio_polling_client_through_the_round_robin(two_nodes, proxy):
    client = socketio.AsyncClient(reconnection=False)
    got: asyncio.Queue = asyncio.Queue()
    client.on("market:price_update", lambda data, *offset: got.put_nowait(data))
    await client.connect(proxy.url, transports=["polling"])
    for n in range(5):
        assert (await client.call("ping", {}, timeout=5))["ok"] is True
    assert (await client.call("subscribe", {"room": "market:ETH_USDC"}, timeout=5))["ok"] is True
    for node in two_nodes:  # an emit from either node reaches it
        await emit_via_server(node, "market:ETH_USDC", "market:price_update", {"from": node.port})
        assert (await asyncio.wait_for(got.get(), 10))["from"] == node.port
    await client.disconnect()


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_sid_no_live_node_owns_is_refused_at_once_not_after_the_forwarding_deadline(two_nodes, method):
    """A sid of a node that crashed or restarted (or a forged one: the same to the server)
    names a channel nobody listens on; the node asked says so now, so the client reconnects
    and recovers now. Before, it waited for an answer that could not come: a ping interval
    plus forwarding.REPLY_MARGIN_SECONDS (11 s here, 35 s with the defaults)."""
    sid = "gone1234" + "x" * 20  # a node id's length (8), then the rest of a sid
    async with aiohttp.ClientSession() as http:
        for node in two_nodes:
            url = f"http://127.0.0.1:{node.port}/socket.io/?EIO=4&transport=polling&sid={sid}"
            async with asyncio.timeout(5):  # well inside the 11 s the forwarding would wait
                async with http.request(method, url, data="40") as resp:
                    assert resp.status == 400
                    assert json.loads(await resp.text()) == {"code": 1, "message": "Session ID unknown"}


@asynccontextmanager
async def a_session_then_redis_away(name: str, hosts: int):
    """Two nodes (on `hosts` hosts), a polling session opened on the first, then Redis away (its
    way cut): (owner, other, sid, http). Afterwards no traceback in the other's log."""
    redis_path = await TcpProxy(int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])).start()
    servers = two_servers(start_daphne, name, f"redis://127.0.0.1:{redis_path.port}/0", hosts=hosts)
    owner, other = next(servers)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{owner.url}/socket.io/?EIO=4&transport=polling") as resp:
                sid = json.loads((await resp.text())[1:])["sid"]
            redis_path.cut()
            yield owner, other, sid, http
        assert "Exception in ASGI application" not in (ARTIFACTS / f"e2e-{name}-2.log").read_text()
    finally:
        redis_path.restore()
        await asyncio.to_thread(next, servers, None)  # their drain reaches Redis through the proxy, run by this loop
        await redis_path.stop()


async def test_a_request_for_another_hosts_session_while_redis_is_away_is_refused_at_once():
    """The node a polling request reaches cannot ask the session's owner, on another host (Redis,
    the way between them, is away): it says the session is unknown here, at once, so the client
    starts a new one, and it goes on serving. Before: the ASGI app raised (HTTP 500, a traceback
    per request)."""
    async with a_session_then_redis_away("redis-away", hosts=2) as (owner, other, sid, http):
        for method in ("POST", "GET"):
            async with asyncio.timeout(5):
                async with http.request(method, f"{other.url}/socket.io/?EIO=4&transport=polling&sid={sid}", data="3") as resp:
                    assert resp.status == 400, method
                    assert (await resp.json(content_type=None))["code"] == 1
        async with http.get(f"{other.url}/socket.io/?EIO=4&transport=polling") as resp:
            assert resp.status == 200 and (await resp.text()).startswith('0{"sid"')  # still serving


async def test_a_session_of_another_process_of_the_host_works_through_either_while_redis_is_away():
    """A host's processes (uvicorn's workers) ask each other over a Unix socket, not Redis: with
    Redis away, a polling session opened on one goes on through the other, its long-poll held
    across the hop. Before: every request that reached the other process was refused, and the
    client started over, again and again, for as long as Redis was away."""
    async with a_session_then_redis_away("redis-away-host", hosts=1) as (owner, other, sid, http):
        url = f"{other.url}/socket.io/?EIO=4&transport=polling&sid={sid}"
        poll = asyncio.ensure_future(http.get(url))  # waits on the owner for what comes next
        await asyncio.sleep(0.3)
        async with http.post(url, data="40") as resp:  # the Socket.IO CONNECT, through the other
            assert (resp.status, await resp.text()) == (200, "ok")
        async with asyncio.timeout(10):
            packets = []
            while not any(p.startswith('40{"sid":') for p in packets):
                resp = await poll
                assert resp.status == 200
                packets += (await resp.text()).split("\x1e")
                if "2" in packets:  # a ping: answered through the other too, or the owner ends it
                    packets.remove("2")
                    async with http.post(url, data="3") as pong:
                        assert pong.status == 200
                poll = asyncio.ensure_future(http.get(url))
        poll.cancel()


async def test_a_poll_held_for_a_process_of_the_host_that_is_killed_is_answered_at_once():
    """The owner of a session dies (SIGKILL) while another process of the host holds a long-poll
    for it: the poll is answered at once (unknown sid: the client reconnects and recovers).
    Before, through Redis: it waited a ping interval and forwarding.REPLY_MARGIN_SECONDS."""
    servers = two_servers(start_daphne, "killed-owner")
    owner, other = next(servers)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{owner.url}/socket.io/?EIO=4&transport=polling") as resp:
                sid = json.loads((await resp.text())[1:])["sid"]
            poll = asyncio.ensure_future(http.get(f"{other.url}/socket.io/?EIO=4&transport=polling&sid={sid}"))
            await asyncio.sleep(0.3)
            owner.process.kill()
            async with asyncio.timeout(3):  # the forwarding's wait is 11 s here
                resp = await poll
                assert resp.status == 400 and (await resp.json(content_type=None))["code"] == 1
    finally:
        next(servers, None)


@pytest.fixture(scope="module")
def two_processes():
    """Two production servers on one host, as uvicorn's workers are."""
    yield from two_servers(start_uvicorn, "process")


async def test_an_upgrade_that_reaches_another_process_on_the_host_is_handed_to_the_owner(two_processes):
    """uvicorn's workers share one listening socket, so an upgrade request (on a connection of
    its own, as browsers and socket.io-client open it) may reach a process that does not own the
    session; it hands the connection to the one that does, and the session goes on over it.
    Before, the probe failed and the client stayed on polling for good (about half of the
    clients that start on polling, with two workers)."""
    owner, other = two_processes
    acks = []
    async with aiohttp.ClientSession() as http:
        for _ in range(6):
            base = f"{owner.url}/socket.io/?EIO=4&transport=polling"
            async with http.get(base) as resp:
                sid = json.loads((await resp.text())[1:])["sid"]
            async with http.post(f"{base}&sid={sid}", data="40") as resp:
                assert resp.status == 200
            async with http.get(f"{base}&sid={sid}") as resp:
                assert (await resp.text()).startswith("40")
            async with http.ws_connect(f"{other.url}/socket.io/?EIO=4&transport=websocket&sid={sid}".replace("http", "ws", 1)) as ws:
                await ws.send_str("2probe")
                assert await asyncio.wait_for(ws.receive(), 5) == (aiohttp.WSMsgType.TEXT, "3probe", "")
                await ws.send_str("5")
                await ws.send_str('421["subscribe",{"room":"market:XLM_USDC"}]')
                acks.append(await ack_of(ws, 1))
    assert [ack is not None and ack["ok"] for ack in acks] == [True] * 6


async def ack_of(ws, ack_id: int) -> dict | None:
    """The ack `ack_id` on `ws`, past what the session sends meanwhile (`connected`, its events)."""
    while True:
        message = await asyncio.wait_for(ws.receive(), 5)
        if message.type is not aiohttp.WSMsgType.TEXT:
            return None  # closed
        if message.data.startswith(f"43{ack_id}["):
            return json.loads(message.data[2 + len(str(ack_id)):])[0]


async def test_a_flood_of_upgrades_naming_the_other_process_stalls_neither(two_processes):
    """Anyone can name another process in an upgrade (a node id is the first characters of each
    sid). Hundreds at once, crosswise, fill both processes' hand-over queues: a process hands
    over without waiting, so neither blocks its event loop on the other's full queue (both did,
    for good) and both go on serving."""
    one, two = two_processes
    node_ids = []
    async with aiohttp.ClientSession() as http:
        for server in two_processes:
            async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling") as resp:
                node_ids.append(json.loads((await resp.text())[1:])["sid"][:8])

    async def upgrade(server, sid: str) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(f"GET /socket.io/?EIO=4&transport=websocket&sid={sid} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
            return (await asyncio.wait_for(reader.readline(), 10)).strip()
        finally:
            writer.close()

    answers = await asyncio.gather(*(upgrade(two, node_ids[0] + "A" * 20) for _ in range(300)),
                                   *(upgrade(one, node_ids[1] + "A" * 20) for _ in range(300)), return_exceptions=True)
    assert all(answer == b"HTTP/1.1 101 Switching Protocols" for answer in answers), {repr(a) for a in answers}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        for server in two_processes:
            async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling") as resp:
                assert resp.status == 200
