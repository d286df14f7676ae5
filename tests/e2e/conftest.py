"""End-to-end fixtures: the product server (plus test hooks) on each channel layer."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import aiohttp
import pytest
import redis
import socketio

from tests.horizon.server import HorizonThread
from tests.servers import REDIS_URL, ROOT, start_daphne

ARTIFACTS = ROOT / "artifacts"
# Short heartbeats so the seed's `ping` and the CONNECT deadline are observable in a test; a
# small buffer so oversized input is cheap to send.
E2E_ENV = {
    "HEARTBEAT_INTERVAL": "1000",
    "CONNECTION_TIMEOUT": "2000",
    "MAX_HTTP_BUFFER_SIZE": "100000",
    "ALLOWED_ORIGINS": "http://allowed.example,http://localhost:3000",
    "CORS_CREDENTIALS": "true",
}
MAX_BUFFER = 100_000
E2E_CACHE_PREFIX = f"e2e-{os.getpid()}"


@pytest.fixture(scope="session")
def e2e_backends(tmp_path_factory):
    """A migrated SQLite database (the market pairs) and a local Horizon: no test reaches the internet."""
    database = tmp_path_factory.mktemp("e2e") / "db.sqlite3"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "galaxy.settings", "GALAXY_ENV_FILE": "/nonexistent", "DATABASE_URL": f"sqlite:///{database}"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    horizon = HorizonThread().start()
    yield {"DATABASE_URL": f"sqlite:///{database}", "STELLAR_HORIZON_URL": horizon.url}
    horizon.stop()
    client = redis.Redis.from_url(REDIS_URL)  # the Redis server's market cache keys of this run
    for key in client.scan_iter(match=f"{E2E_CACHE_PREFIX}:*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session", params=["memory", "redis"])
def server(request, e2e_backends):
    env = {**E2E_ENV, **e2e_backends}
    if request.param == "redis":
        env["REDIS_URL"] = REDIS_URL
        env["CACHE_KEY_PREFIX"] = E2E_CACHE_PREFIX  # snapshots of this run only
    srv = start_daphne("tests.e2e.testapp:application", env, ARTIFACTS / f"e2e-server-{request.param}.log")
    srv.layer = request.param
    yield srv
    srv.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def emit_via_server(server, room: str, event: str, data) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/__test__/emit", json={"room": room, "event": event, "data": data}) as resp:
            assert resp.status == 200


class Bystander:
    """A well-behaved client in market:XLM_USDC, to show bad input elsewhere leaves it alone."""

    def __init__(self, server) -> None:
        self.server = server
        self.client = socketio.AsyncClient(reconnection=False)
        self.received: asyncio.Queue = asyncio.Queue()
        self.client.on("market:price_update", self.received.put_nowait)

    async def start(self) -> None:
        await self.client.connect(self.server.url, transports=["websocket"])
        reply = await self.client.call("subscribe", {"room": "market:XLM_USDC"}, timeout=5)
        assert reply["ok"] is True

    async def assert_served(self) -> None:
        marker = {"pair": "XLM_USDC", "price": 1.0, "volume": 1.0, "change24h": 0.0, "marker": id(self)}
        await emit_via_server(self.server, "market:XLM_USDC", "market:price_update", marker)
        got = await asyncio.wait_for(self.received.get(), 5)
        assert got["marker"] == marker["marker"]
        assert self.client.connected
        assert (await self.client.call("ping", {}, timeout=5))["ok"] is True


@pytest.fixture
async def bystander(server):
    by = Bystander(server)
    await by.start()
    yield by
    await by.assert_served()
    await by.client.disconnect()
