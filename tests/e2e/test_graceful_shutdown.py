"""SIGTERM one node under 200 clients: they all reconnect to the other node and recover."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time

import pytest

from tests.e2e.conftest import ARTIFACTS, E2E_ENV, emit_via_server
from tests.servers import REDIS_URL, ROOT, fresh_postgres, manage, start_daphne
from tests.tcpproxy import TcpProxy

CLIENTS = 200


@pytest.fixture
def nodes():
    env = {**E2E_ENV, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": f"{E2E_ENV['REDIS_PREFIX']}s"}
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


async def test_sigterm_hands_every_client_over_with_recovery(nodes):
    a, b = nodes
    proxy = await TcpProxy(a.port).start()
    clients = await asyncio.create_subprocess_exec(
        shutil.which("node"), "many.mjs", "--url", proxy.url, "--room", "market:XLM_USDC", "--count", str(CLIENTS),
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

        reconnected = await read(clients, "reconnected", 60)
        await emit_via_server(b, "market:XLM_USDC", "market:price_update", {"n": 3})
        await asyncio.sleep(1)
        clients.stdin.write(b"report\n")
        await clients.stdin.drain()
        report = await read(clients, "report", 30)
    finally:
        clients.stdin.close()
        await asyncio.wait_for(clients.wait(), 30)
        await proxy.stop()

    assert exit_seconds < 15 and exit_code is not None
    assert reconnected == {"type": "reconnected", "recovered": CLIENTS, "total": CLIENTS}
    assert all(events == [1, 2, 3] for events in report["events"]), [e for e in report["events"] if e != [1, 2, 3]][:3]
