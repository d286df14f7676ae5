"""Transaction monitoring end to end: real Socket.IO clients, a real server (the in-process
watcher on the embedded default) and the local Horizon scripted through its control API."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid

import aiohttp
import pytest
from stellar_sdk import Asset, Keypair, Network, TransactionBuilder
from stellar_sdk.account import Account

from tests.redisproc import RedisProcess
from tests.servers import fresh_postgres, fresh_sqlite, manage, start_daphne
from tests.tcpproxy import TcpProxy
from tests.transactions.conftest import ARTIFACTS, DEADLINE_SECONDS, SERVER_ENV, a_429_pauses_the_watcher, make_wallets, signed_in, token

ALICE, BOB = str(uuid.uuid4()), str(uuid.uuid4())
ALICE_KEY = Keypair.random()


@pytest.fixture(scope="module")
def wallets(env):
    return make_wallets(env, {"alice": ALICE, "alice2": ALICE, "bob": BOB}, {"alice": ALICE_KEY.public_key})


def new_hash() -> str:
    return hashlib.sha256(uuid.uuid4().bytes).hexdigest()


async def post(server, path: str, user: str | None, body) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token(user)}"} if user else {}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}{path}", json=body, headers=headers) as response:
            return response.status, await response.json()


def signed_payment(keypair: Keypair, destination: str, amount: str = "12.5", passphrase: str = Network.TESTNET_NETWORK_PASSPHRASE,
                   timeout: int = 300, max_time: int | None = None) -> str:
    builder = TransactionBuilder(Account(keypair.public_key, 1000), passphrase, base_fee=100)
    builder = builder.add_time_bounds(0, max_time) if max_time is not None else builder.set_timeout(timeout)
    tx = builder.append_payment_op(destination, Asset.native(), amount).build()
    tx.sign(keypair)
    return tx.to_xdr()


async def test_a_registered_hash_goes_pending_then_confirmed_once_to_a_socket_in_both_rooms(server, horizon, wallets):
    alice = await signed_in(server, ALICE)
    try:
        wallet = wallets["alice"]
        assert (await alice.call("transaction:subscribe", {"walletId": wallet["id"]}))["ok"] is True
        tx_hash, dest = new_hash(), Keypair.random().public_key
        status, body = await post(server, "/api/transactions/", ALICE,
                                  {"walletId": wallet["id"], "hash": tx_hash, "toAddress": dest, "amount": "12.5"})
        assert status == 201 and body["status"] == "pending", body
        pending = await alice.next("transaction:pending")
        assert pending == {"hash": tx_hash, "userId": ALICE, "walletId": wallet["id"], "fromAddress": wallet["key"],
                           "toAddress": dest, "amount": 12.5, "asset": "XLM", "network": "testnet"}
        record = await asyncio.to_thread(horizon.transaction, wallet["key"], dest, "12.5", hash=tx_hash)
        confirmed = await alice.next("transaction:confirmed")
        assert confirmed["hash"] == tx_hash and confirmed["blockNumber"] == record["ledger"]
        assert set(confirmed) == {"hash", "userId", "walletId", "confirmedAt", "blockNumber"}
        assert isinstance(confirmed["confirmedAt"], int) and confirmed["confirmedAt"] > 1_600_000_000_000
        await alice.none("transaction:confirmed", 1.5)  # once, though the socket is in wallet: and user:
        await alice.none("transaction:pending", 0.1)
        # Registering again is idempotent: no second pending.
        assert (await post(server, "/api/transactions/", ALICE, {"walletId": wallet["id"], "hash": tx_hash}))[0] == 201
        await alice.none("transaction:pending", 0.5)
        status_reply = await alice.call("transaction:get_status", {"hash": tx_hash})
        assert status_reply["ok"] is True and status_reply["status"] == "confirmed" and status_reply["blockNumber"] == record["ledger"]
        assert (await alice.next("transaction:status"))["hash"] == tx_hash
    finally:
        await alice.close()


async def test_a_failing_transaction_is_failed_with_horizons_result_code(server, horizon, wallets):
    alice = await signed_in(server, ALICE)  # in user:{ALICE} only
    try:
        wallet, tx_hash = wallets["alice2"], new_hash()
        assert (await post(server, "/api/transactions/", ALICE, {"walletId": wallet["id"], "hash": tx_hash}))[0] == 201
        await alice.next("transaction:pending")
        await asyncio.to_thread(horizon.transaction, wallet["key"], Keypair.random().public_key, "99", hash=tx_hash, successful=False,
                                result_codes={"transaction": "tx_failed", "operations": ["op_underfunded"]})
        failed = await alice.next("transaction:failed")
        assert failed["hash"] == tx_hash and failed["errorCode"] == "op_underfunded"
        assert "tx_failed" in failed["error"] and isinstance(failed["failedAt"], int)
        assert set(failed) == {"hash", "userId", "walletId", "error", "errorCode", "failedAt"}
    finally:
        await alice.close()


async def test_a_never_included_transaction_times_out(server, wallets):
    alice = await signed_in(server, ALICE)
    try:
        tx_hash = new_hash()
        assert (await post(server, "/api/transactions/", ALICE, {"walletId": wallets["alice2"]["id"], "hash": tx_hash}))[0] == 201
        failed = await alice.next("transaction:failed", timeout=DEADLINE_SECONDS + 8)
        assert failed["hash"] == tx_hash and failed["errorCode"] == "tx_timeout"
    finally:
        await alice.close()


@pytest.mark.parametrize("successful", [True, False], ids=["confirmed", "failed"])
async def test_a_timed_out_transaction_that_reaches_a_ledger_after_all_says_what_the_ledger_did(server, horizon, wallets, successful):
    """tx_timeout is our guess (no ledger by the deadline), not Horizon's verdict: when the
    wallet's transactions show it in a ledger later, the user hears what the ledger did and its
    status reads it: transaction:confirmed (before: it stayed failed, while the payee's side said
    confirmed), or transaction:failed again with the ledger's reason (before: the row took it,
    but failed was already announced and nothing was said)."""
    alice = await signed_in(server, ALICE)
    try:
        wallet, tx_hash = wallets["alice2"], new_hash()
        await horizon.watched(wallet["key"])
        assert (await post(server, "/api/transactions/", ALICE, {"walletId": wallet["id"], "hash": tx_hash}))[0] == 201
        assert (await alice.next("transaction:failed", timeout=DEADLINE_SECONDS + 8))["errorCode"] == "tx_timeout"
        record = await asyncio.to_thread(horizon.transaction, wallet["key"], Keypair.random().public_key, "1", hash=tx_hash,
                                         successful=successful)
        if successful:
            confirmed = await alice.next("transaction:confirmed", timeout=15)
            assert confirmed["hash"] == tx_hash and confirmed["blockNumber"] == record["ledger"]
            status = await alice.call("transaction:get_status", {"hash": tx_hash})
            assert status["status"] == "confirmed" and not status.get("errorCode"), status
        else:
            failed = await alice.next("transaction:failed", timeout=15)
            assert failed["hash"] == tx_hash and failed["errorCode"] == "op_underfunded", failed
            status = await alice.call("transaction:get_status", {"hash": tx_hash})
            assert status["status"] == "failed" and status["errorCode"] == "op_underfunded", status
    finally:
        await alice.close()


async def test_a_payment_made_elsewhere_to_a_subscribed_wallet_appears_once_and_in_history(server, horizon, wallets):
    bob = await signed_in(server, BOB)
    try:
        wallet = wallets["bob"]
        assert (await bob.call("transaction:subscribe", {"walletId": wallet["id"]}))["ok"] is True
        await horizon.watched(wallet["key"])
        payer = Keypair.random().public_key
        record = await asyncio.to_thread(horizon.transaction, payer, wallet["key"], "7")
        confirmed = await bob.next("transaction:confirmed")
        assert confirmed["hash"] == record["hash"] and confirmed["walletId"] == wallet["id"] and confirmed["userId"] == BOB
        await bob.none("transaction:confirmed", 1.5)
        history = await bob.call("transaction:get_history", {"walletId": wallet["id"]})
        assert history["ok"] is True and history["partial"] is False
        [entry] = [e for e in history["transactions"] if e["hash"] == record["hash"]]
        assert entry["fromAddress"] == payer and entry["toAddress"] == wallet["key"] and entry["amount"] == 7.0
        assert entry["status"] == "confirmed" and entry["blockNumber"] == record["ledger"]
        assert (await bob.next("transaction:history"))["walletId"] == wallet["id"]
    finally:
        await bob.close()


async def test_a_rate_limited_watcher_asks_horizon_nothing_until_its_retry_after(server, horizon, wallets):
    bob = await signed_in(server, BOB)
    try:
        await a_429_pauses_the_watcher(horizon, wallets["bob"], bob)
    finally:
        await bob.close()


async def test_many_wallets_stretch_the_watcher_to_its_share_of_horizons_budget(horizon, tmp_path):
    """Three wallets followed every 0.3 s ask Horizon for 36,000 requests an hour. With a budget
    of 36,000 the pollers plan 80 % (28,800) and the watcher gets at most half of that: a pass
    every 0.75 s, not 0.3 (the feed plans with the rest). /api/market/feed says so, and a
    payment still arrives."""
    env = {**SERVER_ENV, "STELLAR_HORIZON_URL": horizon.url, "DATABASE_URL": fresh_sqlite(tmp_path),
           "HORIZON_REQUESTS_PER_HOUR": "36000"}
    await asyncio.to_thread(manage, env, "migrate", "--noinput")
    users = {name: str(uuid.uuid4()) for name in ("a", "b", "c")}
    made = await asyncio.to_thread(make_wallets, env, users)
    budgeted = await asyncio.to_thread(start_daphne, "galaxy.asgi:application", env, ARTIFACTS / f"transactions-budget-{os.getpid()}.log")
    client = None
    try:
        client = await signed_in(budgeted, users["a"])  # the first request starts the watcher
        path = f"/accounts/{made['a']['key']}/transactions"
        await horizon.watched(made["a"]["key"])
        asked = lambda: horizon.thread.requests_served().get(path, 0)  # noqa: E731
        before = await asyncio.to_thread(asked)
        await asyncio.sleep(4.5)
        passes = await asyncio.to_thread(asked) - before
        assert 2 <= passes <= 8, passes  # 6 at 0.75 s a pass; 15 at 0.3 s
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{budgeted.url}/api/market/feed") as response:
                feed = await response.json()
        assert (feed["sharersWantedPerHour"], feed["sharersGrantedPerHour"]) == (36000.0, 14400.0)
        record = await asyncio.to_thread(horizon.transaction, Keypair.random().public_key, made["a"]["key"], "3")
        assert (await client.next("transaction:confirmed", timeout=15))["hash"] == record["hash"]
    finally:
        if client is not None:
            await client.close()
        budgeted.stop()


async def test_rest_answers_json_when_the_database_is_down_or_broken(horizon, tmp_path):
    """PostgreSQL unreachable (a proxy in front of it, cut): a JSON 503 with Retry-After, and the
    same request succeeds once it is back. A database the server cannot use (never migrated: an
    error no view expects) is a JSON 500 under /api/, not Django's HTML page (DEBUG off)."""
    database, drop = fresh_postgres()
    unmigrated, drop_unmigrated = fresh_postgres()
    host, name = database.rsplit("/", 1)
    proxy = await TcpProxy(int(host.rsplit(":", 1)[1])).start()
    env = {**SERVER_ENV, "STELLAR_HORIZON_URL": horizon.url, "DATABASE_URL": database}
    servers = []
    try:
        await asyncio.to_thread(manage, env, "migrate", "--noinput")
        user = str(uuid.uuid4())
        wallet = (await asyncio.to_thread(make_wallets, env, {"w": user}))["w"]
        behind_proxy = {**env, "DATABASE_URL": f"{host.rsplit(':', 1)[0]}:{proxy.port}/{name}"}
        # DEBUG off for the broken one, as in production: with it, Django shows its traceback page
        broken_env = {**env, "DATABASE_URL": unmigrated, "DJANGO_DEBUG": "false"}
        for server_env, log in ((behind_proxy, "down"), (broken_env, "broken")):
            servers.append(await asyncio.to_thread(start_daphne, "galaxy.asgi:application", server_env,
                                                   ARTIFACTS / f"transactions-database-{log}-{os.getpid()}.log"))
        down, broken = servers
        proxy.cut()
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{down.url}/api/transactions/", json={"walletId": wallet["id"], "hash": new_hash()},
                                    headers={"Authorization": f"Bearer {token(user)}"}) as response:
                assert response.status == 503 and response.headers["Retry-After"] == "5"
                assert (await response.json())["code"] == "service_unavailable"
            async with session.get(f"{broken.url}/api/automations/", headers={"Authorization": f"Bearer {token(user)}"}) as response:
                assert response.status == 500 and response.content_type == "application/json"
                assert await response.json() == {"code": "internal_error", "message": "Internal server error"}
        proxy.restore()
        assert (await post(down, "/api/transactions/", user, {"walletId": wallet["id"], "hash": new_hash()}))[0] == 201
    finally:
        for server in servers:
            server.stop()
        await proxy.stop()
        drop()
        drop_unmigrated()


async def test_a_hash_registered_while_redis_is_away_is_answered_at_once_and_announced_once_it_is_back(horizon, tmp_path):
    """The view's `transaction:pending` cannot be sent: the request answers after a short try
    (its claim given back), and the watcher's next pass sends it once Redis is back. Before: each
    request was held 30 s retrying the emit (a database connection and a thread held each)."""
    redis = RedisProcess(tmp_path).start()
    env = {**SERVER_ENV, "STELLAR_HORIZON_URL": horizon.url, "DATABASE_URL": fresh_sqlite(tmp_path),
           "REDIS_URL": redis.url, "TRANSACTIONS_IN_PROCESS": "true", "TRANSACTION_DEADLINE_SECONDS": "600"}
    await asyncio.to_thread(manage, env, "migrate", "--noinput")
    user = str(uuid.uuid4())
    wallet = (await asyncio.to_thread(make_wallets, env, {"w": user}))["w"]
    server = await asyncio.to_thread(start_daphne, "galaxy.asgi:application", env, ARTIFACTS / f"transactions-redis-away-{os.getpid()}.log")
    client = None
    try:
        client = await signed_in(server, user)
        redis.stop()
        tx_hash = new_hash()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.post(f"{server.url}/api/transactions/", json={"walletId": wallet["id"], "hash": tx_hash},
                                    headers={"Authorization": f"Bearer {token(user)}"}) as response:
                assert response.status == 201, await response.text()
        redis.start()
        assert (await client.next("transaction:pending", timeout=30))["hash"] == tx_hash
        await client.none("transaction:pending", 1)  # once
    finally:
        if client is not None:
            await client.close()
        server.stop()
        redis.stop()


async def test_a_pending_whose_emit_was_done_but_never_answered_reaches_a_socket_once(horizon, tmp_path):
    """Redis goes away (for a few seconds) just after it did the view's emit of
    `transaction:pending` (logged and published, in one script), before its answer came back: the
    view gives its claim back, the socket gets the event (live, or from the log once the server's
    subscriber is back), and the watcher's next pass emits it again. That emit is the same event
    (its id names the row and its status), so the socket gets it once and the log holds it once.
    Before: the pass logged it as a new event, under a new offset, and the socket got it twice.
    The pass is the Celery task's, run from another process when the test says (an in-process
    watcher polling beside the view could claim the row between its insert and the view's claim,
    and the view would then have nothing to give back)."""
    import msgpack
    import redis.asyncio

    redis_server = RedisProcess(tmp_path).start()
    proxy = await TcpProxy(redis_server.port).start()
    env = {**SERVER_ENV, "STELLAR_HORIZON_URL": horizon.url, "DATABASE_URL": fresh_sqlite(tmp_path),
           "REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0", "TRANSACTIONS_IN_PROCESS": "false", "TRANSACTION_DEADLINE_SECONDS": "600"}
    await asyncio.to_thread(manage, env, "migrate", "--noinput")
    user = str(uuid.uuid4())
    wallet = (await asyncio.to_thread(make_wallets, env, {"w": user}))["w"]
    log_path = ARTIFACTS / f"transactions-publish-lost-{os.getpid()}.log"
    server = await asyncio.to_thread(start_daphne, "galaxy.asgi:application", env, log_path)
    direct = redis.asyncio.Redis(port=redis_server.port)
    client = None
    try:
        client = await signed_in(server, user)

        async def register(tx_hash: str) -> None:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
                async with session.post(f"{server.url}/api/transactions/", json={"walletId": wallet["id"], "hash": tx_hash},
                                        headers={"Authorization": f"Bearer {token(user)}"}) as response:
                    assert response.status == 201, await response.text()

        first = new_hash()  # while Redis is up: its emit loads the emit's script into Redis
        await register(first)
        assert (await client.next("transaction:pending", timeout=10))["hash"] == first
        proxy.lose_reply_to(b"transaction:pending", everything=True)
        tx_hash = new_hash()
        await register(tx_hash)
        assert f"transaction:pending for {tx_hash} not emitted" in log_path.read_text()  # the view's claim, given back
        proxy.restore()
        assert (await client.next("transaction:pending", timeout=30))["hash"] == tx_hash
        owed = "from transactions.tasks import announce_owed_sync; print(announce_owed_sync())"
        assert "'transaction:pending'" in (await asyncio.to_thread(manage, env, "shell", "-c", owed)).stdout  # the watcher's next pass
        await asyncio.sleep(2)  # what that emit would deliver
        again = client.drain("transaction:pending")
        entries = [(entry_id.decode(), *msgpack.unpackb(fields[b"m"], raw=False)) for entry_id, fields in await direct.xrange("galaxy:events")]
        logged = [offset for offset, _, _, event, data in entries if event == "transaction:pending" and data["hash"] == tx_hash]
        assert (len(again), len(logged)) == (0, 1), f"received again: {again}; logged under {logged}"
    finally:
        if client is not None:
            await client.close()
        await direct.aclose()
        server.stop()
        await proxy.stop()
        redis_server.stop()


async def test_a_moved_wallets_pending_transaction_settles_to_its_new_owner_only(horizon, tmp_path):
    """A wallet with a pending transaction is moved to another user by a model save (what the
    admin's change form does). Its transactions are the wallet's owner's now, as its room is:
    the settlement goes to the new owner (userId too), the old owner hears nothing of it and
    cannot read its status. Before: `transaction:confirmed` went to `user:{old}` with the old
    userId, the new owner got nothing, and the old owner's get_status answered in full.
    On Redis, so the shell's save reaches the server's sockets (the old owner leaves the room)."""
    redis = RedisProcess(tmp_path).start()
    env = {**SERVER_ENV, "STELLAR_HORIZON_URL": horizon.url, "DATABASE_URL": fresh_sqlite(tmp_path),
           "REDIS_URL": redis.url, "TRANSACTIONS_IN_PROCESS": "true", "TRANSACTION_DEADLINE_SECONDS": "600"}
    await asyncio.to_thread(manage, env, "migrate", "--noinput")
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    wallet = (await asyncio.to_thread(make_wallets, env, {"w": old}))["w"]
    server = await asyncio.to_thread(start_daphne, "galaxy.asgi:application", env, ARTIFACTS / f"transactions-moved-{os.getpid()}.log")
    a = b = None
    try:
        a, b = await signed_in(server, old), await signed_in(server, new)
        room = f"wallet:{wallet['id']}"
        assert (await a.call("transaction:subscribe", {"walletId": wallet["id"]}))["ok"] is True
        await a.next("subscribed")
        tx_hash = new_hash()
        assert (await post(server, "/api/transactions/", old, {"walletId": wallet["id"], "hash": tx_hash}))[0] == 201
        assert (await a.next("transaction:pending"))["userId"] == old  # the owner then
        await asyncio.to_thread(manage, env, "shell", "-c", "\n".join([
            "from transactions.models import Wallet",
            f"w = Wallet.objects.get(id={wallet['id']!r})", f"w.owner_id = {new!r}", "w.save()",
        ]))
        assert (await a.next("unsubscribed", timeout=15))["room"] == room
        record = await asyncio.to_thread(horizon.transaction, wallet["key"], Keypair.random().public_key, "4", hash=tx_hash)
        confirmed = await b.next("transaction:confirmed", timeout=15)
        assert confirmed["hash"] == tx_hash and confirmed["userId"] == new and confirmed["blockNumber"] == record["ledger"]
        await a.none("transaction:confirmed", 1.5)
        reply = await a.call("transaction:get_status", {"hash": tx_hash})
        assert reply["ok"] is False and reply["error"]["code"] == "not_found", reply  # as any other user's
        reply = await b.call("transaction:get_status", {"hash": tx_hash})
        assert reply["ok"] is True and reply["userId"] == new and reply["status"] == "confirmed", reply
    finally:
        for client in (a, b):
            if client is not None:
                await client.close()
        server.stop()
        redis.stop()


async def test_history_merges_horizon_newest_first_and_limits(server, horizon, wallets):
    """Horizon's times are whole seconds, and all of a ledger's transactions have its close time:
    the history orders them as Horizon does, whether the watcher has tracked them yet or not.
    Here the first two are tracked (their `transaction:confirmed` heard), the newest is not yet.
    Before: ties put the tracked rows first, and the limit dropped the newest (a CI run's
    failure: [2.0, 1.0])."""
    bob = await signed_in(server, BOB)
    try:
        wallet = wallets["bob"]
        await bob.call("transaction:subscribe", {"walletId": wallet["id"]})
        closed = time.time() + 3600  # one close time, after any other test's transactions
        tracked = {(await asyncio.to_thread(horizon.transaction, Keypair.random().public_key, wallet["key"], amount, at=closed))["hash"]
                   for amount in ("1", "2")}
        while tracked:
            tracked.discard((await bob.next("transaction:confirmed", timeout=10))["hash"])
        await asyncio.to_thread(horizon.transaction, Keypair.random().public_key, wallet["key"], "3", at=closed)
        reply = await bob.call("transaction:get_history", {"walletId": wallet["id"], "limit": 2})
        assert reply["ok"] is True and [e["amount"] for e in reply["transactions"]] == [3.0, 2.0]
    finally:
        await bob.close()


async def test_a_restarted_watcher_repeats_nothing_and_skips_nothing(env, server, horizon, wallets):
    bob = await signed_in(server, BOB)
    wallet = wallets["bob"]
    seen = await asyncio.to_thread(horizon.transaction, Keypair.random().public_key, wallet["key"], "1")
    await bob.call("transaction:subscribe", {"walletId": wallet["id"]})
    while (await bob.next("transaction:confirmed"))["hash"] != seen["hash"]:
        pass
    await bob.close()
    server.stop()
    server.process.wait(10)
    missed = await asyncio.to_thread(horizon.transaction, Keypair.random().public_key, wallet["key"], "2")
    again = start_daphne("galaxy.asgi:application", env, ARTIFACTS / f"transactions-server-restarted-{os.getpid()}.log")
    server.url, server.port, server.process = again.url, again.port, again.process  # later tests use the new one
    bob = await signed_in(server, BOB)
    try:
        await bob.call("transaction:subscribe", {"walletId": wallet["id"]})
        # The restart is not known to the client, so a missed event is only its own: the one
        # made while the server was down arrives (from the stored cursor), nothing before it.
        confirmed = await bob.next("transaction:confirmed", timeout=10)
        assert confirmed["hash"] == missed["hash"]
        await bob.none("transaction:confirmed", 2)
    finally:
        await bob.close()


async def test_a_second_user_cannot_reach_the_first_users_wallet_by_any_path(server, horizon, wallets):
    wallet, tx_hash = wallets["alice"], new_hash()
    assert (await post(server, "/api/transactions/", ALICE, {"walletId": wallet["id"], "hash": tx_hash}))[0] == 201
    outside = await asyncio.to_thread(horizon.transaction, wallet["key"], Keypair.random().public_key, "3")
    bob = await signed_in(server, BOB)
    try:
        for event, data in (("transaction:subscribe", {"walletId": wallet["id"]}),
                            ("transaction:get_history", {"walletId": wallet["id"]}),
                            ("subscribe", {"room": f"wallet:{wallet['id']}"})):
            reply = await bob.call(event, data)
            assert reply["ok"] is False and reply["error"]["code"] == "forbidden", (event, reply)
        for hash_ in (tx_hash, outside["hash"]):  # tracked, and only on Horizon
            reply = await bob.call("transaction:get_status", {"hash": hash_})
            assert reply["ok"] is False and reply["error"]["code"] == "not_found", reply
        status, body = await post(server, "/api/transactions/", BOB, {"walletId": wallet["id"], "hash": new_hash()})
        assert status == 404 and body["code"] == "not_found"
        status, body = await post(server, "/api/transactions/submit", BOB,
                                  {"walletId": wallet["id"], "envelope": signed_payment(ALICE_KEY, Keypair.random().public_key)})
        assert status == 404
        await bob.none("transaction:confirmed", 1.0)
        await bob.none("transaction:pending", 0.1)
    finally:
        await bob.close()


async def test_anonymous_sockets_get_the_auth_error_for_all_four(server, wallets):
    from tests.auth.clients import Client

    client = await Client().connect(server)
    try:
        for event, data in (("transaction:subscribe", {"walletId": wallets["alice"]["id"]}),
                            ("transaction:unsubscribe", {"walletId": wallets["alice"]["id"]}),
                            ("transaction:get_status", {"hash": new_hash()}),
                            ("transaction:get_history", {"walletId": wallets["alice"]["id"]})):
            reply = await client.call(event, data)
            assert reply["ok"] is False and reply["error"]["code"] == "auth_required", (event, reply)
    finally:
        await client.close()


@pytest.mark.parametrize("limit", [-1, 0, 201, 10**30, "abc", "50", 5.5, True, None, [50]])
async def test_limit_abuse_gets_the_error_reply(server, wallets, limit):
    bob = await signed_in(server, BOB)
    try:
        reply = await bob.call("transaction:get_history", {"walletId": wallets["bob"]["id"], "limit": limit})
        assert reply["ok"] is False and reply["error"]["code"] == "invalid_payload" and "limit" in reply["error"]["details"]
    finally:
        await bob.close()


@pytest.mark.parametrize("body,field", [({"hash": "XYZ"}, "hash"), ({"hash": "A" * 64}, "hash"), ({"hash": 5}, "hash"),
                                        ({"toAddress": "GBAD"}, "toAddress"), ({"amount": "-1"}, "amount"), ({"walletId": ""}, "walletId")])
async def test_rest_registration_refuses_bad_fields_as_drf_field_errors(server, wallets, body, field):
    status, reply = await post(server, "/api/transactions/", ALICE, {"walletId": wallets["alice"]["id"], "hash": new_hash(), **body})
    assert status == 400 and field in reply, reply


async def test_rest_needs_a_token(server, wallets):
    status, _ = await post(server, "/api/transactions/", None, {"walletId": wallets["alice"]["id"], "hash": new_hash()})
    assert status in (401, 403)


async def test_submit_decodes_checks_submits_and_tracks_a_signed_envelope(server, horizon, wallets):
    alice = await signed_in(server, ALICE)
    try:
        wallet, dest = wallets["alice"], Keypair.random().public_key
        envelope = signed_payment(ALICE_KEY, dest, "12.5")
        status, body = await post(server, "/api/transactions/submit", ALICE, {"walletId": wallet["id"], "envelope": envelope})
        assert status == 201, body
        tx_hash = body["hash"]
        submitted = await asyncio.to_thread(lambda: __import__("requests").get(f"{horizon.url}/_control/submitted", timeout=5).json())
        assert tx_hash in submitted
        pending = await alice.next("transaction:pending")
        assert pending == {"hash": tx_hash, "userId": ALICE, "walletId": wallet["id"], "fromAddress": ALICE_KEY.public_key,
                           "toAddress": dest, "amount": 12.5, "asset": "XLM", "network": "testnet"}
        included = await asyncio.to_thread(horizon.control, "include", {"hash": tx_hash})
        confirmed = await alice.next("transaction:confirmed")
        assert confirmed["hash"] == tx_hash and confirmed["blockNumber"] == included["ledger"]
    finally:
        await alice.close()


@pytest.mark.parametrize("max_time", [253402300800, 2**63 - 1, 2**64 - 1])  # year 10000; past any date
async def test_an_envelope_bounded_past_any_date_is_submitted_and_tracked(server, horizon, wallets, max_time):
    """Horizon accepts such time bounds (2**64 - 1 is the SDK's "no bound"): the submitted payment
    must be tracked like any other, not answered 500 after it went to Horizon."""
    alice = await signed_in(server, ALICE)
    try:
        envelope = signed_payment(ALICE_KEY, Keypair.random().public_key, max_time=max_time)
        status, body = await post(server, "/api/transactions/submit", ALICE, {"walletId": wallets["alice"]["id"], "envelope": envelope})
        assert status == 201, body
        assert (await alice.next("transaction:pending"))["hash"] == body["hash"]
    finally:
        await alice.close()


async def test_submit_refuses_what_is_not_the_wallets_or_not_for_its_network(server, horizon, wallets):
    wallet, dest = wallets["alice"], Keypair.random().public_key
    stranger = Keypair.random()
    cases = {
        "someone else's source": signed_payment(stranger, dest),
        "signed by another key": (lambda: _resigned(stranger))(),
        "another network": signed_payment(ALICE_KEY, dest, passphrase=Network.PUBLIC_NETWORK_PASSPHRASE),
        "not XDR": "definitely-not-xdr",
    }
    for name, envelope in cases.items():
        status, body = await post(server, "/api/transactions/submit", ALICE, {"walletId": wallet["id"], "envelope": envelope})
        assert status == 400 and body["code"] == "invalid_envelope", (name, body)
    await asyncio.to_thread(horizon.control, "submission", {"status": "ERROR", "result_codes": {"transaction": "tx_failed", "operations": ["op_underfunded"]}})
    status, body = await post(server, "/api/transactions/submit", ALICE, {"walletId": wallet["id"], "envelope": signed_payment(ALICE_KEY, dest)})
    assert status == 400 and body["code"] == "submission_rejected" and body["details"]["errorCode"] == "op_underfunded", body


def _resigned(stranger: Keypair) -> str:
    """ALICE's transaction signed by someone else."""
    builder = TransactionBuilder(Account(ALICE_KEY.public_key, 1000), Network.TESTNET_NETWORK_PASSPHRASE, base_fee=100)
    tx = builder.append_payment_op(Keypair.random().public_key, Asset.native(), "1").set_timeout(300).build()
    tx.sign(stranger)
    return tx.to_xdr()
