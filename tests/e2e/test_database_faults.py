"""The server's database goes away (a restart, a failover) while who may be in a room changes."""

from __future__ import annotations

import asyncio

from tests.auth.clients import Client
from tests.e2e.conftest import database_behind_a_proxy
from tests.servers import manage


async def test_an_owner_change_checked_while_the_database_is_away_is_checked_again_once_it_is_back():
    """A wallet changes owner (saved by a process that reaches the database) while the node with
    the old owner's socket cannot reach it: the node's re-check cannot ask who owns the wallet
    now. It asks again until it can; the old owner's socket leaves the room then. Before: the
    re-check was logged as failed and the socket kept the room (and the new owner's events)."""
    old, new = "93a4b5c6-d7e8-4f90-a1b2-c3d4e5f60718", "a4b5c6d7-e8f9-4a1b-b2c3-d4e5f6071829"
    wallet = "b5c6d7e8-f90a-4b2c-93d4-e5f607182930"
    async with database_behind_a_proxy("e2e-database-away-recheck.log", old, wallet) as (server, database_path, token, env):
        client = Client()
        try:
            await client.connect(server, auth={"token": token})
            await client.next("authenticated")
            assert (await client.call("transaction:subscribe", {"walletId": wallet}))["ok"] is True
            database_path.cut()
            await asyncio.to_thread(manage, env, "shell", "-c", "from transactions.models import Wallet\n"
                                    f"w = Wallet.objects.get(id={wallet!r})\nw.owner_id = {new!r}\nw.save()")
            await client.none("unsubscribed", 1)  # the node could not check: the socket is still in
            database_path.restore()
            assert (await client.next("unsubscribed", timeout=15))["room"] == f"wallet:{wallet}"
        finally:
            await client.close()
