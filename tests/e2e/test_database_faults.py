"""The server's database goes away (a restart, a failover) while who may be in a room changes."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.auth.clients import Client
from tests.e2e.conftest import database_behind_a_proxy, emit_via_server
from tests.servers import manage


async def old_owner_in_the_room_when_the_owner_changes_unseen(server, database_path, token, env, wallet: str, new: str) -> Client:
    """The old owner's client in wallet:{wallet}; then the node loses its database and the wallet
    changes owner (saved by a process that reaches it)."""
    client = Client()
    await client.connect(server, auth={"token": token})
    await client.next("authenticated")
    assert (await client.call("transaction:subscribe", {"walletId": wallet}))["ok"] is True
    database_path.cut()
    await asyncio.to_thread(manage, env, "shell", "-c", "from transactions.models import Wallet\n"
                            f"w = Wallet.objects.get(id={wallet!r})\nw.owner_id = {new!r}\nw.save()")
    return client


async def test_an_owner_change_checked_while_the_database_is_away_is_checked_again_once_it_is_back():
    """A wallet changes owner (saved by a process that reaches the database) while the node with
    the old owner's socket cannot reach it: the node's re-check cannot ask who owns the wallet
    now. It asks again until it can; the old owner's socket leaves the room then. Before: the
    re-check was logged as failed and the socket kept the room (and the new owner's events).
    Meanwhile the room's events are held back from it: it never gets the new owner's (before: it
    got every one until its check was done)."""
    old, new = "93a4b5c6-d7e8-4f90-a1b2-c3d4e5f60718", "a4b5c6d7-e8f9-4a1b-b2c3-d4e5f6071829"
    wallet = "b5c6d7e8-f90a-4b2c-93d4-e5f607182930"
    async with database_behind_a_proxy("e2e-database-away-recheck.log", old, wallet) as (server, database_path, token, env):
        client = await old_owner_in_the_room_when_the_owner_changes_unseen(server, database_path, token, env, wallet, new)
        try:
            await client.none("unsubscribed", 1)  # the node could not check: the socket is still in
            await emit_via_server(server, f"wallet:{wallet}", "transaction:submitted", {"hash": "the new owner's"})
            await client.none("transaction:submitted", 1)
            database_path.restore()
            assert (await client.next("unsubscribed", timeout=15))["room"] == f"wallet:{wallet}"
            await client.none("transaction:submitted", 1)
        finally:
            await client.close()


@pytest.mark.parametrize("away", ["refusing", "hanging"])
async def test_an_owner_change_that_cannot_be_checked_for_long_takes_the_old_owners_socket_out(away):
    """The database stays away past the re-check's patience (a minute; 3 s here), refusing
    connections or taking them and never answering: the socket whose check could not be done
    leaves the room (`unsubscribed`) rather than keep it, and the room's events held back
    meanwhile never reach it. Before: "they stay in it", for good (refusing), and a check that
    never returned held the socket for good (hanging)."""
    old, new = "e8f90a1b-2c3d-4e5f-8607-18293a4b5c6d", "f90a1b2c-3d4e-4f60-9718-293a4b5c6d7e"
    wallet = "0a1b2c3d-4e5f-4071-8829-3a4b5c6d7e8f"
    async with database_behind_a_proxy(f"e2e-database-{away}-recheck-gives-up.log", old, wallet, E2E_RECHECK_GIVE_UP_SECONDS="3") as (
            server, database_path, token, env):
        client = await old_owner_in_the_room_when_the_owner_changes_unseen(server, database_path, token, env, wallet, new)
        if away == "hanging":
            database_path.restore()
            database_path.delay = 3600  # connections are taken, and nothing comes back
        try:
            await emit_via_server(server, f"wallet:{wallet}", "transaction:submitted", {"hash": "the new owner's"})
            assert (await client.next("unsubscribed", timeout=15))["room"] == f"wallet:{wallet}"  # the database still away
            await client.none("transaction:submitted", 1)
        finally:
            await client.close()
            database_path.delay = 0
            database_path.cut()  # a hanging connection ends now, not in an hour
            database_path.restore()


async def test_a_database_that_takes_connections_and_never_answers_fails_calls_in_seconds():
    """A database that stops answering without closing (a cut network, a failover): a call must
    fail (503, as for a refused connection), not hang, since a process's sync calls share one
    thread. Before: the page's request waited as long as the client did."""
    owner, wallet = "1b2c3d4e-5f60-4718-9293-a4b5c6d7e8fa", "2c3d4e5f-6071-4829-a3a4-b5c6d7e8f90b"
    async with database_behind_a_proxy("e2e-database-hanging-live-page.log", owner, wallet) as (server, database_path, token, env):
        database_path.delay = 3600  # connections are taken, and nothing comes back
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
                async with session.get(f"{server.url}/") as resp:
                    assert resp.status == 503
        finally:
            database_path.delay = 0
            database_path.cut()  # a hanging connection ends now, not in an hour


async def test_the_live_page_answers_503_while_the_database_is_away_and_again_after():
    """The page lists the pairs from the database: without it, a 503 that says to come back (as
    the API's), not Django's HTML 500 page; once it is back, the page."""
    owner, wallet = "c6d7e8f9-0a1b-4c3d-a4e5-f60718293a4b", "d7e8f90a-1b2c-4d4e-b5f6-0718293a4b5c"
    async with database_behind_a_proxy("e2e-database-away-live-page.log", owner, wallet) as (server, database_path, token, env):
        async with aiohttp.ClientSession() as session:
            database_path.cut()
            async with session.get(f"{server.url}/") as resp:
                assert (resp.status, resp.headers.get("Retry-After")) == (503, "5")
                assert "database is unavailable" in await resp.text()
            database_path.restore()
            async with session.get(f"{server.url}/") as resp:
                assert resp.status == 200 and 'data-pair="XLM_USDC"' in await resp.text()
