"""The watcher's Celery tasks through Celery itself: a worker with embedded beat on its own Redis
databases and queue, a daphne server on the Redis channel layer and PostgreSQL, a real client."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from stellar_sdk import Keypair

from tests.servers import REDIS_URL, ROOT, forget_run, fresh_postgres, manage, start_celery_worker, start_daphne, stop_process
from tests.transactions.conftest import SERVER_ENV, a_429_pauses_the_watcher, make_wallets, signed_in
from tests.transactions.test_e2e import new_hash, post

RUN_ID = f"transactions-test-{os.getpid()}"
# Redis DB 8 for cache and channel layer, DB 9 for the broker: the market tests use 3 and 4,
# the auth tests 7, the e2e servers 0; prefixes and the queue name keep parallel runs apart too.
CACHE_URL = REDIS_URL.rsplit("/", 1)[0] + "/8"
# How long an event claimed by a worker that died waits for another (90 s in production).
LEASE_SECONDS = 2
BROKER_URL = REDIS_URL.rsplit("/", 1)[0] + "/9"


@pytest.fixture(scope="module")
def stack(horizon):
    database, drop = fresh_postgres()
    env = {**SERVER_ENV, "DATABASE_URL": database, "STELLAR_HORIZON_URL": horizon.url,
           "REDIS_URL": CACHE_URL, "REDIS_PREFIX": RUN_ID.replace("-", ""), "CACHE_KEY_PREFIX": RUN_ID,
           "CELERY_BROKER_URL": BROKER_URL, "CELERY_RESULT_BACKEND": BROKER_URL, "CELERY_TASK_DEFAULT_QUEUE": RUN_ID,
           "MARKET_MIN_POLL_INTERVAL": "5", "TRANSACTION_ANNOUNCE_LEASE_SECONDS": str(LEASE_SECONDS)}
    manage(env, "migrate", "--noinput")
    schedule = ROOT / "artifacts" / f"transactions-beat-{os.getpid()}"
    worker = server = None
    try:
        worker = start_celery_worker(env, name=RUN_ID, log=ROOT / "artifacts" / "transactions-celery-worker.log",
                                     beat_schedule=schedule)
        server = start_daphne("galaxy.asgi:application", env, ROOT / "artifacts" / "transactions-server-redis.log")
        yield env, server
    finally:
        if server is not None:
            server.stop()
        if worker is not None:
            stop_process(worker)
        drop()
        forget_run((CACHE_URL, f"{RUN_ID}:*"), (BROKER_URL, f"*{RUN_ID}*"))
        for leftover in schedule.parent.glob(f"{schedule.name}*"):
            leftover.unlink()


async def registered(env: dict, server) -> tuple[dict, object, str]:
    """A new user's wallet, a client of theirs in its room, and a hash registered over REST
    whose `transaction:pending` the client has had."""
    user = str(uuid.uuid4())
    wallet = (await asyncio.to_thread(make_wallets, env, {"w": user}))["w"]
    client = await signed_in(server, user)
    assert (await client.call("transaction:subscribe", {"walletId": wallet["id"]}))["ok"] is True
    tx_hash = new_hash()
    assert (await post(server, "/api/transactions/", user, {"walletId": wallet["id"], "hash": tx_hash}))[0] == 201
    assert (await client.next("transaction:pending"))["hash"] == tx_hash
    return wallet, client, tx_hash


async def test_beat_settles_registered_and_outside_transactions_through_the_redis_layer(stack, horizon):
    env, server = stack
    wallet, client, tx_hash = await registered(env, server)
    try:
        await horizon.watched(wallet["key"])
        record = await asyncio.to_thread(horizon.transaction, wallet["key"], Keypair.random().public_key, "4", hash=tx_hash)
        confirmed = await client.next("transaction:confirmed", timeout=15)
        assert confirmed["hash"] == tx_hash and confirmed["blockNumber"] == record["ledger"]
        incoming = await asyncio.to_thread(horizon.transaction, Keypair.random().public_key, wallet["key"], "9")
        assert (await client.next("transaction:confirmed", timeout=15))["hash"] == incoming["hash"]
        await client.none("transaction:confirmed", 2)  # the poller and the follower saw tx_hash: one event
    finally:
        await client.close()


async def test_a_429_pauses_the_beat_watcher_until_its_retry_after(stack, horizon):
    """As the in-process watcher (test_e2e): no follow task asks Horizon in the pause."""
    env, server = stack
    user = str(uuid.uuid4())
    wallet = (await asyncio.to_thread(make_wallets, env, {"w": user}))["w"]
    client = await signed_in(server, user)
    try:
        await a_429_pauses_the_watcher(horizon, wallet, client)
    finally:
        await client.close()


async def test_an_event_claimed_by_a_worker_that_died_before_its_emit_goes_out_after_the_lease(stack, horizon):
    """A worker commits its claim of an owed event, then dies (SIGKILL during its emit's
    retries: here a process that claims and exits). The claim lapses: the next pass after the
    lease emits the event, once."""
    env, server = stack
    wallet, client, tx_hash = await registered(env, server)
    try:
        # Confirmed and claimed in one commit, so no pass of the live worker sees it owed first.
        await asyncio.to_thread(manage, env, "shell", "-c", "\n".join([
            "import os", "from django.db import transaction", "from django.utils import timezone",
            "from transactions import services", "from transactions.models import TrackedTransaction",
            "with transaction.atomic():",
            f"    TrackedTransaction.objects.filter(hash={tx_hash!r}).update(status='confirmed', ledger=7, confirmed_at=timezone.now())",
            f"    claimed = services.tracked_announce_now(TrackedTransaction.objects.get(hash={tx_hash!r}))",
            "    assert [event for _, (_, event, _) in claimed] == ['transaction:confirmed']",
            "os._exit(0)",
        ]))
        confirmed = await client.next("transaction:confirmed", timeout=LEASE_SECONDS + 15)
        assert confirmed["hash"] == tx_hash and confirmed["blockNumber"] == 7
        await client.none("transaction:confirmed", 2)
    finally:
        await client.close()


async def test_a_lapsed_claim_ends_only_itself_not_the_claim_taken_after_it(stack):
    """A worker whose lease lapsed (a stalled Redis) gives its claim back, or finishes it, late:
    that must not end the claim another worker took meanwhile, or a third would send the event
    while the second still is. In one uncommitted transaction: the live worker sees none of it."""
    env, _ = stack
    user = str(uuid.uuid4())
    wallet = (await asyncio.to_thread(make_wallets, env, {"w": user}))["w"]
    output = await asyncio.to_thread(manage, env, "shell", "-c", "\n".join([
        "import time", "from django.db import transaction",
        "from transactions import services", "from transactions.models import TrackedTransaction, Wallet",
        "class Done(Exception): pass",
        "try:",
        "    with transaction.atomic():",
        f"        row = TrackedTransaction.objects.create(hash={new_hash()!r}, wallet=Wallet.objects.get(id={wallet['id']!r}), network='testnet')",
        "        [(first, _)] = services.tracked_announce_now(row)",
        f"        time.sleep({LEASE_SECONDS} + 0.2)",
        "        [(second, _)] = services.tracked_announce_now(row)",
        "        services.announcement_release(first)",
        "        services.announcement_done(first)",
        "        print('third:', services.tracked_announce_now(row), 'announced:', repr(TrackedTransaction.objects.get(pk=row.pk).announced))",
        "        raise Done",
        "except Done:",
        "    pass",
    ]))
    assert "third: [] announced: ''" in output.stdout, output.stdout
