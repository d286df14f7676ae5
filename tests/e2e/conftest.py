"""End-to-end fixtures: the product server (plus test hooks) on each channel layer."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aiohttp
import pytest
import redis
import socketio

from tests.horizon.server import HorizonThread
from tests.servers import BASE_ENV, REDIS_URL, ROOT, fresh_postgres, fresh_sqlite, manage, start_daphne, start_uvicorn
from tests.tcpproxy import TcpProxy

ARTIFACTS = ROOT / "artifacts"
# Short heartbeats so the seed's `ping` and the CONNECT deadline are observable in a test; a
# small buffer so oversized input is cheap to send.
E2E_ENV = {
    "HEARTBEAT_INTERVAL": "1000",
    "CONNECTION_TIMEOUT": "2000",
    "MAX_HTTP_BUFFER_SIZE": "100000",
    "ALLOWED_ORIGINS": "http://allowed.example,http://localhost:3000",
    "CORS_CREDENTIALS": "true",
    # These tests send many events per socket; the rate-limit tests run their own server.
    "RATE_LIMIT_REQUESTS": "100000",
    "RATE_LIMIT_HANDSHAKES": "100000",
    # This run's own keys and channels on the shared Redis (others may be testing on it).
    "REDIS_PREFIX": f"e2e{os.getpid()}",
}
MAX_BUFFER = 100_000
E2E_CACHE_PREFIX = f"e2e-{os.getpid()}"


@pytest.fixture(scope="session")
def horizon():
    """A local Horizon for the market feed: no test reaches the internet."""
    horizon = HorizonThread().start()
    yield horizon
    horizon.stop()
    client = redis.Redis.from_url(REDIS_URL)  # the Redis server's market cache keys of this run
    for key in client.scan_iter(match=f"{E2E_CACHE_PREFIX}:*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session", params=["memory", "redis", "uvicorn"])
def server(request, tmp_path_factory, horizon):
    """The embedded default (daphne, in-memory layer, SQLite), production's parts under daphne
    (Redis, PostgreSQL), or the production server itself (uvicorn, Redis, PostgreSQL)."""
    env = {**E2E_ENV, "STELLAR_HORIZON_URL": horizon.url}
    drop = None
    if request.param in ("redis", "uvicorn"):
        env["DATABASE_URL"], drop = fresh_postgres()
        env["REDIS_URL"] = REDIS_URL
        env["CACHE_KEY_PREFIX"] = E2E_CACHE_PREFIX  # snapshots of this run only
    else:
        env["DATABASE_URL"] = fresh_sqlite(tmp_path_factory.mktemp("db"))
    manage(env, "migrate", "--noinput")
    start = start_uvicorn if request.param == "uvicorn" else start_daphne
    srv = start("tests.e2e.testapp:application", env, ARTIFACTS / f"e2e-server-{request.param}.log")
    srv.layer = "memory" if request.param == "memory" else "redis"
    yield srv
    srv.stop()
    if drop is not None:
        drop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@asynccontextmanager
async def database_behind_a_proxy(log: str, owner: str, wallet: str, **env_extra: str):
    """The product's server (daphne, Redis, PostgreSQL) whose database is reached through a proxy
    the test can cut, `wallet` owned by `owner` in it: (server, proxy, owner's token, env; env's
    DATABASE_URL is the database itself, for processes that must reach it meanwhile)."""
    database, drop = fresh_postgres()
    database_path = await TcpProxy(urlsplit(database).port).start()
    env = {**E2E_ENV, "REDIS_URL": REDIS_URL, "DATABASE_URL": database,
           "CACHE_KEY_PREFIX": f"db-proxy-{secrets.token_hex(4)}", **env_extra}  # owners cached of this run only
    manage(env, "migrate", "--noinput")
    manage(env, "shell", "-c", "from stellar_sdk import Keypair; from transactions.models import Wallet; "
           f"Wallet.objects.create(id={wallet!r}, owner_id={owner!r}, public_key=Keypair.random().public_key, label='w')")
    token = manage(env, "mint_token", "--user", owner, "--ttl", "600").stdout.strip()
    through_proxy = database.replace(f":{urlsplit(database).port}/", f":{database_path.port}/")
    server = start_daphne("tests.e2e.testapp:application", {**env, "DATABASE_URL": through_proxy}, ARTIFACTS / log)
    try:
        yield server, database_path, token, env
    finally:
        server.stop()
        await database_path.stop()
        drop()


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
        # Room events carry their recovery offset as a last argument: keep the data.
        self.client.on("market:price_update", lambda data, *offset: self.received.put_nowait(data))

    async def start(self) -> None:
        await self.client.connect(self.server.url, transports=["websocket"])
        reply = await self.client.call("subscribe", {"room": "market:XLM_USDC"}, timeout=5)
        assert reply["ok"] is True

    async def assert_served(self) -> None:
        marker = {"pair": "XLM_USDC", "price": 1.0, "volume": 1.0, "change24h": 0.0, "marker": id(self)}
        await emit_via_server(self.server, "market:XLM_USDC", "market:price_update", marker)
        while (await asyncio.wait_for(self.received.get(), 5)).get("marker") != marker["marker"]:
            pass  # a price from the market feed, not ours
        assert self.client.connected
        assert (await self.client.call("ping", {}, timeout=5))["ok"] is True


@pytest.fixture
async def bystander(server):
    by = Bystander(server)
    await by.start()
    yield by
    await by.assert_served()
    await by.client.disconnect()


class SyncProducer:
    """A process other than the server that emits with emit_sync, as Celery workers, REST views
    and admin actions do: each `emit` sends it a batch of (room, event, data) and waits until all
    of them are out."""

    CODE = ("import json, sys, django; django.setup(); from realtime.emit import emit_sync\n"
            "print('ready', flush=True)\n"
            "for line in sys.stdin:\n"
            "    for room, event, data in json.loads(line): emit_sync(room, event, data)\n"
            "    print('emitted', flush=True)\n")

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, env: dict[str, str], code: str | None = None) -> SyncProducer:
        """Started, with its `code` (CODE unless given: the process for another protocol)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code or cls.CODE, cwd=ROOT, env={**os.environ, **BASE_ENV, **env},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        assert await asyncio.wait_for(process.stdout.readline(), 30) == b"ready\n"
        return cls(process)

    async def emit(self, events: list[tuple[str, str, object]], timeout: float = 60) -> None:
        self.process.stdin.write((json.dumps(events) + "\n").encode())
        assert await asyncio.wait_for(self.process.stdout.readline(), timeout) == b"emitted\n"

    async def stop(self) -> None:
        self.process.stdin.close()
        await asyncio.wait_for(self.process.wait(), 10)
