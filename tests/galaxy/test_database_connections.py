"""Database connections under ASGI: a burst of REST requests leaves none of its connections open.

The production server (uvicorn, as bin/serve-production) on a fresh PostgreSQL database; the
server's connections are counted in pg_stat_activity by that database's name. Django runs each
sync view in a thread of the request's own, so a connection kept for reuse (CONN_MAX_AGE > 0)
stays open after its thread is gone, until a full garbage collection (rare here, galaxy/asgi.py):
a burst of 400 filled the machine's PostgreSQL before it was 0.
"""

from __future__ import annotations

import asyncio
import os
import time
from contextlib import asynccontextmanager

import aiohttp
import psycopg
import socketio

from tests.automation.api_stand import ALICE, ARTIFACTS, SERVER_ENV, bearer, create, make_wallet, token
from tests.servers import POSTGRES_URL, fresh_postgres, manage, start_uvicorn

# Modest on purpose: the PostgreSQL (max_connections 100) is shared with other test runs, and
# before the fix each request of the burst left one connection open.
BURST = 60
CONCURRENCY = 10
# Nothing else in this server holds a connection between requests (no in-process watcher, feed or
# sweep); one spare for a request's close still in flight.
IDLE_MAX = 1
IDLE_WAIT_SECONDS = 3.0


def server_connections(database: str) -> int:
    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)).fetchone()[0]


async def patch_burst(url: str) -> dict[int, int]:
    """BURST PATCHes of one automation, CONCURRENCY at a time: how many got each status."""
    gate = asyncio.Semaphore(CONCURRENCY)
    statuses: dict[int, int] = {}

    async def one(session: aiohttp.ClientSession, index: int) -> None:
        async with gate, session.patch(url, json={"name": f"burst {index}"}, headers=bearer(ALICE)) as response:
            await response.read()
            statuses[response.status] = statuses.get(response.status, 0) + 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:
        await asyncio.gather(*(one(session, index) for index in range(BURST)))
    return statuses


@asynccontextmanager
async def production_server(name: str):
    """(server, its database's name, a wallet of ALICE's): uvicorn on a fresh PostgreSQL database."""
    url, drop = fresh_postgres()
    env = {**SERVER_ENV, "DATABASE_URL": url, "AUTOMATION_IN_PROCESS": "false"}
    try:
        manage(env, "migrate", "--noinput")
        wallet = make_wallet(env, ALICE)
        server = start_uvicorn("galaxy.asgi:application", env, ARTIFACTS / f"{name}-{os.getpid()}.log")
        try:
            yield server, url.rsplit("/", 1)[1], wallet
        finally:
            server.stop()
    finally:
        drop()


async def test_a_rest_burst_leaves_no_database_connections_open():
    async with production_server("database-connections") as (server, database, wallet):
        automation = await create(server, ALICE, wallet)
        statuses = await patch_burst(f"{server.url}/api/automations/{automation['automationId']}")
        after_burst = server_connections(database)
        deadline = time.monotonic() + IDLE_WAIT_SECONDS
        idle = after_burst
        while idle > IDLE_MAX and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            idle = server_connections(database)
        print(f"{BURST} PATCHes at concurrency {CONCURRENCY}: statuses {statuses}, "
              f"{after_burst} connections right after, {idle} after up to {IDLE_WAIT_SECONDS} s idle")
        assert statuses == {200: BURST}
        assert after_burst <= CONCURRENCY
        assert idle <= IDLE_MAX


def cut_server_connections(database: str) -> int:
    """What a PostgreSQL restart (or a pooler's reaping) does to the server's open connections."""
    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
        return len(conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                                (database,)).fetchall())


async def test_socket_events_that_read_the_database_get_over_a_connection_cut_under_them():
    """The socket handlers read the database in a thread the whole process shares: a connection
    PostgreSQL dropped there (a restart) must cost the next event nothing, not every event of
    the process from then on."""
    async with production_server("database-cut") as (server, database, wallet):
        client = socketio.AsyncClient(reconnection=False)
        try:
            await client.connect(server.url, transports=["websocket"], auth={"token": token(ALICE)}, wait_timeout=10)
            events = [("transaction:get_history", {"walletId": wallet}),
                      ("transaction:get_status", {"hash": "ab" * 32})]  # read before Horizon is asked
            before = [await client.call(event, data, timeout=10) for event, data in events]
            assert before[0]["ok"] is True, before
            cut = cut_server_connections(database)
            after = [await client.call(event, data, timeout=10) for event, data in events for _ in range(2)]
            print(f"{cut} connections cut; before: {before}; after: {after}")
            assert after == [before[0], before[0], before[1], before[1]]
        finally:
            await client.disconnect()
