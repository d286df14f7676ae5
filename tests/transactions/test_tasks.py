"""The watcher's Celery tasks through Celery itself: a worker with embedded beat on its own Redis
databases and queue, a daphne server on the Redis channel layer and PostgreSQL, a real client."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest
import redis
from celery import Celery
from stellar_sdk import Keypair

from tests.servers import REDIS_URL, ROOT, fresh_postgres, manage, start_daphne
from tests.transactions.conftest import SERVER_ENV, make_wallets, signed_in
from tests.transactions.test_e2e import new_hash, post

RUN_ID = f"transactions-test-{os.getpid()}"
# Redis DB 8 for cache and channel layer, DB 9 for the broker: the market tests use 3 and 4,
# the auth tests 7, the e2e servers 0; prefixes and the queue name keep parallel runs apart too.
CACHE_URL = REDIS_URL.rsplit("/", 1)[0] + "/8"
BROKER_URL = REDIS_URL.rsplit("/", 1)[0] + "/9"
# A cold worker imports Django and connects to Redis in a few seconds; the rest is CI headroom.
WORKER_READY_SECONDS = 60


@pytest.fixture(scope="module")
def stack(horizon):
    database, drop = fresh_postgres()
    env = {**SERVER_ENV, "DATABASE_URL": database, "STELLAR_HORIZON_URL": horizon.url,
           "REDIS_URL": CACHE_URL, "REDIS_PREFIX": RUN_ID.replace("-", ""), "CACHE_KEY_PREFIX": RUN_ID,
           "CELERY_BROKER_URL": BROKER_URL, "CELERY_RESULT_BACKEND": BROKER_URL, "CELERY_TASK_DEFAULT_QUEUE": RUN_ID,
           "MARKET_MIN_POLL_INTERVAL": "5"}
    manage(env, "migrate", "--noinput")
    log = ROOT / "artifacts" / "transactions-celery-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    schedule = ROOT / "artifacts" / f"transactions-beat-{os.getpid()}"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "galaxy", "worker", "-B", "-s", str(schedule), "--pool=solo",
             "-Q", RUN_ID, "-n", f"{RUN_ID}@%h", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
            cwd=ROOT, env={**os.environ, "DJANGO_SETTINGS_MODULE": "galaxy.settings", "GALAXY_ENV_FILE": "/nonexistent", **env},
            stdout=out, stderr=subprocess.STDOUT,
        )
    probe = Celery(broker=BROKER_URL)
    server = None
    try:
        deadline = time.monotonic() + WORKER_READY_SECONDS
        while not probe.control.ping(destination=[f"{RUN_ID}@{socket.gethostname()}"], timeout=0.5, limit=1):
            if worker.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"celery worker not ready (exit code {worker.poll()}):\n{log.read_text()[-3000:]}")
        server = start_daphne("galaxy.asgi:application", env, ROOT / "artifacts" / "transactions-server-redis.log")
        yield env, server
    finally:
        if server is not None:
            server.stop()
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        probe.close()
        drop()
        for url, pattern in ((CACHE_URL, f"{RUN_ID}:*"), (BROKER_URL, f"*{RUN_ID}*")):
            client = redis.Redis.from_url(url)
            for key in client.scan_iter(match=pattern, count=1000):
                client.delete(key)
            client.close()
        for leftover in schedule.parent.glob(f"{schedule.name}*"):
            leftover.unlink()


async def test_beat_settles_registered_and_outside_transactions_through_the_redis_layer(stack, horizon):
    env, server = stack
    user = str(uuid.uuid4())
    wallet = (await asyncio.to_thread(make_wallets, env, {"w": user}))["w"]
    client = await signed_in(server, user)
    try:
        assert (await client.call("transaction:subscribe", {"walletId": wallet["id"]}))["ok"] is True
        tx_hash = new_hash()
        assert (await post(server, "/api/transactions/", user, {"walletId": wallet["id"], "hash": tx_hash}))[0] == 201
        assert (await client.next("transaction:pending"))["hash"] == tx_hash
        await asyncio.sleep(1.5)  # beat's first follow has set the wallet's cursor
        record = await asyncio.to_thread(horizon.transaction, wallet["key"], Keypair.random().public_key, "4", hash=tx_hash)
        confirmed = await client.next("transaction:confirmed", timeout=15)
        assert confirmed["hash"] == tx_hash and confirmed["blockNumber"] == record["ledger"]
        incoming = await asyncio.to_thread(horizon.transaction, Keypair.random().public_key, wallet["key"], "9")
        assert (await client.next("transaction:confirmed", timeout=15))["hash"] == incoming["hash"]
        await client.none("transaction:confirmed", 2)  # the poller and the follower saw tx_hash: one event
    finally:
        await client.close()
