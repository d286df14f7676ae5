"""SIGTERM one node under 200 clients: they all reconnect to the other node and recover."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import sys
import time

import pytest

import redis.asyncio as redis
import socketio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import ARTIFACTS, E2E_ENV, emit_via_server
from tests.servers import REDIS_URL, ROOT, _start, free_port, fresh_postgres, fresh_sqlite, manage, start_daphne
from tests.tcpproxy import TcpProxy

CLIENTS = 200


@pytest.fixture
def nodes():
    # Production's heartbeat, not E2E_ENV's 1 s + 2 s: 200 polling clients pinged every second kept
    # a slow CI machine's daphne so busy that some timed out before all had subscribed; and a
    # client that moves only when its heartbeat fails must show (35 s and more, not seconds).
    env = {**E2E_ENV, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": f"{E2E_ENV['REDIS_PREFIX']}s",
           "HEARTBEAT_INTERVAL": "25000", "CONNECTION_TIMEOUT": "30000"}
    env["DATABASE_URL"], drop = fresh_postgres()
    manage(env, "migrate", "--noinput")
    started = [start_daphne("tests.e2e.testapp:application", env, ARTIFACTS / f"e2e-sigterm-{n}.log") for n in "ab"]
    yield started
    for node in started:
        node.stop()
    drop()


async def read(process, kind: str, timeout: float) -> dict:
    while True:
        line = await asyncio.wait_for(process.stdout.readline(), timeout)
        assert line, "the client process exited"
        record = json.loads(line)
        if record["type"] == kind:
            return record


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_sigterm_hands_every_client_over_with_recovery(nodes, transport):
    a, b = nodes
    proxy = await TcpProxy(a.port).start()
    clients = await asyncio.create_subprocess_exec(
        shutil.which("node"), "many.mjs", "--url", proxy.url, "--room", "market:XLM_USDC", "--count", str(CLIENTS),
        "--transport", transport,
        cwd=ROOT / "tests" / "e2e" / "node", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        limit=2**24,
    )
    try:
        await read(clients, "ready", 60)
        await emit_via_server(a, "market:XLM_USDC", "market:price_update", {"n": 1})

        proxy.route_to(b.port)  # the balancer now sends new connections to b
        stopped_at = time.monotonic()
        a.process.send_signal(signal.SIGTERM)
        await emit_via_server(b, "market:XLM_USDC", "market:price_update", {"n": 2})  # while they move
        exit_code = await asyncio.to_thread(a.process.wait, 30)
        exit_seconds = time.monotonic() - stopped_at

        # 3-4 s here. Polling clients used to wait 35 s (a ping interval and a margin): their
        # next request, sent to b, was forwarded to a, which heard it and exited unanswering.
        reconnected = await read(clients, "reconnected", 20)
        await emit_via_server(b, "market:XLM_USDC", "market:price_update", {"n": 3})
        deadline = time.monotonic() + 15  # 200 polling clients on a busy CI machine take a while
        while True:
            clients.stdin.write(b"report\n")
            await clients.stdin.drain()
            report = await read(clients, "report", 30)
            if all(events == [1, 2, 3] for events in report["events"]) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    finally:
        clients.stdin.close()
        await asyncio.wait_for(clients.wait(), 30)
        await proxy.stop()

    assert exit_seconds < 15 and exit_code is not None
    assert reconnected == {"type": "reconnected", "recovered": CLIENTS, "total": CLIENTS}
    assert all(events == [1, 2, 3] for events in report["events"]), [e for e in report["events"] if e != [1, 2, 3]][:3]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_python_socketio_reconnects_to_the_other_node_by_itself(nodes, transport):
    """python-socketio takes an Engine.IO CLOSE packet as a deliberate server disconnect and
    never reconnects; a drain must end the transport instead, as Node's server does. It does
    not implement connection state recovery (its CONNECT carries no pid and offset): it comes
    back as a new socket, subscribes again from its connect handler, and hears what follows."""
    a, b = nodes
    proxy = await TcpProxy(a.port).start()
    client = socketio.AsyncClient(reconnection_delay=0.2, reconnection_delay_max=1)
    subscribed, prices, reasons = asyncio.Queue(), asyncio.Queue(), []

    @client.on("connect")
    async def subscribe():
        await client.emit("subscribe", {"room": "market:XLM_USDC"})

    client.on("subscribed", lambda data, *offset: subscribed.put_nowait(data["room"]))
    client.on("market:price_update", lambda data, *offset: prices.put_nowait(data["n"]))
    client.on("disconnect", reasons.append)
    try:
        await client.connect(proxy.url, transports=[transport])
        first_sid = client.get_sid()
        assert await asyncio.wait_for(subscribed.get(), 10) == "market:XLM_USDC"
        await emit_via_server(a, "market:XLM_USDC", "market:price_update", {"n": 1})
        assert await asyncio.wait_for(prices.get(), 10) == 1

        proxy.route_to(b.port)
        a.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(a.process.wait, 30) is not None
        back = asyncio.ensure_future(subscribed.get())
        await asyncio.wait([back], timeout=15)
        assert back.done(), f"never subscribed again (on b); disconnected for {reasons}"
        await emit_via_server(b, "market:XLM_USDC", "market:price_update", {"n": 3})
        assert await asyncio.wait_for(prices.get(), 10) == 3
        assert client.connected and client.get_sid() != first_sid
        assert reasons == ["transport error"]  # not "server disconnect", which ends the client
    finally:
        await client.shutdown()
        await proxy.stop()


@pytest.mark.parametrize("answers_pings", [True, False], ids=["alive", "ping-timeout-meanwhile"])
async def test_a_client_told_of_the_shutdown_finds_its_state_already_saved(tmp_path, answers_pings):
    """The WebSocket is closed only once the socket is saved: a client reconnects at once, and
    the node it lands on must find the state. Redis is slowed down (a proxy holds each chunk
    0.5 s) so that a save still in flight when the client hears would show. A client that stops
    answering pings times out during the save (2 s here): that second close must wait too."""
    redis_server = redis.from_url(REDIS_URL)
    slow_redis = await TcpProxy(redis_server.connection_pool.connection_kwargs["port"]).start()
    prefix = f"{E2E_ENV['REDIS_PREFIX']}slow"
    env = {**E2E_ENV, "REDIS_URL": f"redis://127.0.0.1:{slow_redis.port}/0", "REDIS_PREFIX": prefix,
           "DATABASE_URL": fresh_sqlite(tmp_path)}
    manage(env, "migrate", "--noinput")
    server = start_daphne("tests.e2e.testapp:application", env, ARTIFACTS / "e2e-sigterm-slow-redis.log")
    try:
        async with connect(f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket") as ws:
            assert (await ws.recv()).startswith("0")
            await ws.send("40")
            connected = await asyncio.wait_for(ws.recv(), 10)
            assert connected.startswith("40")
            pid = json.loads(connected[2:])["pid"]
            assert (await asyncio.wait_for(ws.recv(), 10)).startswith('42["connected"')

            slow_redis.delay = 0.5
            server.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(ConnectionClosed):  # told by the WebSocket's close
                while True:
                    frame = await asyncio.wait_for(ws.recv(), 15)
                    assert frame == "2" or frame.startswith('42["ping"'), frame  # only pings
                    if answers_pings and frame == "2":
                        await ws.send("3")
            assert ws.close_code == 1000  # a close frame, not the process going away
            saved = await redis_server.exists(f"{prefix}:recovery:{pid}")
        assert saved == 1
        assert await asyncio.to_thread(server.process.wait, 30) is not None
    finally:
        server.stop()
        await slow_redis.stop()
        await redis_server.aclose()


async def test_sigterm_stops_a_node_that_inherited_an_ignored_sigint(tmp_path):
    """A background job of a script starts with SIGINT ignored, so daphne installs no SIGINT
    handler, and the drain's hand-over (a SIGINT to itself) would leave the process up, answering
    503 forever. It must still close its sessions and exit."""
    env = {**E2E_ENV, "DATABASE_URL": fresh_sqlite(tmp_path)}
    manage(env, "migrate", "--noinput")
    port = free_port()
    command = ["bash", "-c", 'trap "" INT; exec "$@"', "bash",  # SIG_IGN survives the exec
               sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "tests.e2e.testapp:application"]
    server = _start(command, port, env, ARTIFACTS / "e2e-sigterm-sigint-ignored.log")
    try:
        async with connect(f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket") as ws:
            assert (await ws.recv()).startswith("0")
            await ws.send("40")
            assert (await asyncio.wait_for(ws.recv(), 10)).startswith("40")
            server.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(ConnectionClosed):
                while True:
                    assert (frame := await asyncio.wait_for(ws.recv(), 15)) == "2" or frame.startswith("42["), frame
            assert ws.close_code == 1000
        assert await asyncio.to_thread(server.process.wait, 20) is not None
    finally:
        server.stop()
