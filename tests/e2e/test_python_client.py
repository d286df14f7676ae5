"""python-socketio's AsyncClient against the running server, on both transports and layers."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import socketio

from tests.e2e.conftest import emit_via_server
from tests.servers import manage

TRANSPORTS = {"websocket": ["websocket"], "upgrade": ["polling", "websocket"]}


class Recorder:
    """Collects named events into queues, so a test can await the next one of each."""

    def __init__(self, client: socketio.AsyncClient, *events: str, namespace: str = "/") -> None:
        self.queues = {event: asyncio.Queue() for event in events}
        self.offsets: list[str] = []
        for event in events:
            client.on(event, self._put(event), namespace=namespace)

    def _put(self, event):
        async def handler(*args):
            # Room events (and `connected`) end with a recovery offset: record the data, and
            # the offset for the tests that look at it.
            self.queues[event].put_nowait(args[0] if args else None)
            if len(args) > 1:
                self.offsets.append(args[-1])

        return handler

    async def next(self, event: str, timeout: float = 5):
        return await asyncio.wait_for(self.queues[event].get(), timeout)


@pytest.fixture(params=list(TRANSPORTS))
def transports(request):
    return TRANSPORTS[request.param]


async def connect(server, transports, namespaces=None, **kwargs):
    client = socketio.AsyncClient(reconnection=False)
    recorder = Recorder(client, "connected", "pong", "subscribed", "unsubscribed", "market:price_update", "error", "ping")
    await client.connect(server.url, transports=transports, namespaces=namespaces, **kwargs)
    return client, recorder


async def test_connect_receives_connected_with_socket_id(server, transports):
    client, rec = await connect(server, transports)
    connected = await rec.next("connected")
    assert connected["socketId"] == client.get_sid()
    assert isinstance(connected["timestamp"], int)
    if transports == TRANSPORTS["upgrade"]:
        for _ in range(50):
            if client.eio.current_transport == "websocket":
                break
            await asyncio.sleep(0.05)
        assert client.eio.current_transport == "websocket"
    await client.disconnect()


async def test_ping_is_answered_by_pong_and_ack(server, transports):
    client, rec = await connect(server, transports)
    ack = await client.call("ping", {}, timeout=5)
    pong = await rec.next("pong")
    assert ack["ok"] is True and ack["timestamp"] == pong["timestamp"]
    await client.disconnect()


async def test_subscribe_then_receive_room_emit_from_outside(server, transports):
    client, rec = await connect(server, transports)
    ack = await client.call("subscribe", {"room": "market:XLM_USDC"}, timeout=5)
    assert ack["ok"] is True and ack["room"] == "market:XLM_USDC"
    assert (await rec.next("subscribed"))["room"] == "market:XLM_USDC"
    data = {"pair": "XLM_USDC", "price": 0.1234, "volume": 10.5, "change24h": -0.02}
    await emit_via_server(server, "market:XLM_USDC", "market:price_update", data)
    assert await rec.next("market:price_update") == data

    await client.call("unsubscribe", {"room": "market:XLM_USDC"}, timeout=5)
    assert (await rec.next("unsubscribed"))["room"] == "market:XLM_USDC"
    await emit_via_server(server, "market:XLM_USDC", "market:price_update", data)
    with pytest.raises(asyncio.TimeoutError):
        await rec.next("market:price_update", timeout=0.5)
    await client.disconnect()


async def test_market_subscribe_accepts_both_pair_spellings(server):
    client, rec = await connect(server, ["websocket"])
    ack = await client.call("market:subscribe", {"pairs": ["XLM/USDC", "XLM_USDC", "BTC_USDC"]}, timeout=5)
    # BTC_USDC ships unconfigured (its anchor's issuer is an operator's choice): rejected, said why.
    assert ack["ok"] is True and ack["pairs"] == ["XLM_USDC"]
    assert [(r["pair"], r["code"]) for r in ack["rejected"]] == [("BTC_USDC", "pair_unavailable")]
    assert (await rec.next("subscribed"))["room"] == "market:XLM_USDC"
    await client.disconnect()


async def test_one_emit_reaches_every_subscriber_once(server):
    clients = [await connect(server, t) for t in (["websocket"], ["polling"], ["websocket"])]
    for client, _ in clients:
        await client.call("subscribe", {"room": "market:ETH_USDC"}, timeout=5)
    for n in range(3):
        await emit_via_server(server, "market:ETH_USDC", "market:price_update", {"n": n})
    for client, rec in clients:
        assert [(await rec.next("market:price_update"))["n"] for _ in range(3)] == [0, 1, 2]
        with pytest.raises(asyncio.TimeoutError):
            await rec.next("market:price_update", timeout=0.2)
        await client.disconnect()


async def test_seed_ping_event_every_heartbeat_interval(server):
    client, rec = await connect(server, ["websocket"])
    first = await rec.next("ping", timeout=3)
    second = await rec.next("ping", timeout=3)
    assert 500 <= second["timestamp"] - first["timestamp"] <= 2000  # HEARTBEAT_INTERVAL=1000
    # `connected` and each `ping` carry the log's head, keeping a quiet socket recoverable.
    assert len(rec.offsets) >= 3
    await client.disconnect()


async def test_binary_round_trip_and_custom_namespace(server, transports):
    client, rec = await connect(server, transports, namespaces=["/", "/echo"])
    echoed = Recorder(client, "echo", namespace="/echo")
    payload = {"blob": b"\x00\x01\xff", "nested": [b"abc", {"n": 1}]}
    ack = await client.call("echo", payload, namespace="/echo", timeout=5)
    assert ack == payload
    assert await echoed.next("echo") == payload
    await client.disconnect()


async def test_unknown_namespace_is_refused(server, transports):
    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, transports=transports, namespaces=["/nope"], wait_timeout=3)
    await client.disconnect()


async def test_disconnect_leaves_rooms(server, transports):
    client, rec = await connect(server, transports)
    await client.call("subscribe", {"room": "system:notifications"}, timeout=5)
    await client.disconnect()
    assert not client.connected
    # The server forgot the socket: an emit to its room goes nowhere and breaks nothing.
    await emit_via_server(server, "system:notifications", "system:notification", {"message": "hi"})


@pytest.mark.parametrize("server", ["redis"], indirect=True)
async def test_emit_from_another_process_through_redis(server):
    """A producer in its own process (as a Celery worker is) reaches sockets via Redis.

    Redis only: the in-memory layer is per process by design (the embedded default).
    """
    client, rec = await connect(server, ["websocket"])
    await client.call("subscribe", {"room": "market:XLM_USDC"}, timeout=5)
    data = {"pair": "XLM_USDC", "price": 2.5, "volume": 1, "change24h": 0}
    payload = '{"pair":"XLM_USDC","price":2.5,"volume":1,"change24h":0}'
    await asyncio.to_thread(manage, server.env, "emit", "market:XLM_USDC", "market:price_update", payload)
    assert await rec.next("market:price_update") == data
    await client.disconnect()


async def test_an_emit_to_several_rooms_reaches_each_socket_once(server):
    both, _ = await connect(server, ["websocket"]), None
    both_client, both_rec = both
    one_client, one_rec = await connect(server, ["polling"])
    for room in ("market:XLM_USDC", "system:notifications"):
        await both_client.call("subscribe", {"room": room}, timeout=5)
    await one_client.call("subscribe", {"room": "system:notifications"}, timeout=5)
    async with aiohttp.ClientSession() as http:
        body = {"rooms": ["market:XLM_USDC", "system:notifications"], "event": "market:price_update", "data": {"n": 1}}
        async with http.post(f"{server.url}/__test__/emit", json=body) as resp:
            assert resp.status == 200
    assert await both_rec.next("market:price_update") == {"n": 1}
    assert await one_rec.next("market:price_update") == {"n": 1}
    with pytest.raises(asyncio.TimeoutError):
        await both_rec.next("market:price_update", timeout=0.5)  # not a second copy
    await both_client.disconnect()
    await one_client.disconnect()


@pytest.mark.parametrize("server", ["redis"], indirect=True)
async def test_room_occupancy_across_the_cluster_is_known_to_other_processes(server):
    """What realtime tells the market feed (through Redis, from another process): which rooms
    have members. (In memory only the server process knows; the market tests cover that.)"""
    client, _ = await connect(server, ["websocket"])
    await client.call("subscribe", {"room": "market:ETH_USDC"}, timeout=5)
    code = "from realtime.api import occupied_rooms; print(sorted(occupied_rooms() or []))"
    for _ in range(30):  # nodes publish every 5 s
        out = (await asyncio.to_thread(manage, server.env, "shell", "-c", code)).stdout
        if "market:ETH_USDC" in out:
            break
        await asyncio.sleep(1)
    assert "market:ETH_USDC" in out
    await client.disconnect()
