"""The engine through Celery itself: two workers (one with beat) and a daphne server on Redis and
PostgreSQL, the local Horizon, a signed-in python-socketio client. Prices come from trades made
in the local Horizon; the pair has no market subscriber (the feed polls it for the automations)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from decimal import Decimal

import psycopg
import pytest
import requests
from celery import Celery
from cryptography.fernet import Fernet
from stellar_sdk import Keypair, TransactionEnvelope
from stellar_sdk.operation import Payment

from tests.horizon.world import TESTNET_PASSPHRASE, USDC_TESTNET
from tests.servers import BASE_ENV, REDIS_URL, ROOT, forget_run, fresh_postgres, manage, start_celery_worker, start_daphne, stop_process
from tests.transactions.conftest import SERVER_ENV, signed_in, token

RUN_ID = f"automation-engine-{os.getpid()}"
# Redis DBs 10 (cache, channel layer) and 11 (broker): market uses 3/4, auth 7, transactions 8/9.
CACHE_URL = REDIS_URL.rsplit("/", 1)[0] + "/10"
BROKER_URL = REDIS_URL.rsplit("/", 1)[0] + "/11"
WORKERS = ("one", "two")
# Polls every 0.2 s, the watcher every 0.3 s; retries take 15 s: headroom for a loaded box.
WAIT = 30.0
USDC = f"USDC:{USDC_TESTNET}"
ARTIFACTS = ROOT / "artifacts"


def worker_log(name: str):
    return ARTIFACTS / f"automation-worker-{name}-{os.getpid()}.log"


@pytest.fixture(scope="module")
def stack(horizon):
    database, drop = fresh_postgres()
    env = {**SERVER_ENV, "DATABASE_URL": database, "STELLAR_HORIZON_URL": horizon.url,
           "REDIS_URL": CACHE_URL, "REDIS_PREFIX": RUN_ID.replace("-", ""), "CACHE_KEY_PREFIX": RUN_ID,
           "CELERY_BROKER_URL": BROKER_URL, "CELERY_RESULT_BACKEND": BROKER_URL, "CELERY_TASK_DEFAULT_QUEUE": RUN_ID,
           "MARKET_MIN_POLL_INTERVAL": "0.2", "TRANSACTION_POLL_INTERVAL": "0.3", "TRANSACTION_DEADLINE_SECONDS": "60",
           "WALLET_ENCRYPTION_KEY": Fernet.generate_key().decode(), "LOG_LEVEL": "debug"}
    manage(env, "migrate", "--noinput")
    schedule = ARTIFACTS / f"automation-beat-{os.getpid()}"
    workers, server = [], None
    probe = Celery(broker=BROKER_URL, backend=BROKER_URL, set_as_current=False)  # sends tasks as another process would (not this one's current app: other packages' tests use that)
    try:
        for name in WORKERS:  # the first runs beat too
            workers.append(start_celery_worker(env, name=f"{RUN_ID}-{name}", log=worker_log(name),
                                               beat_schedule=None if workers else schedule))
        server = start_daphne("galaxy.asgi:application", env, ARTIFACTS / f"automation-server-{os.getpid()}.log")
        yield Stack(env, server, horizon, probe, database)
    finally:
        if server is not None:
            server.stop()
        for worker in workers:
            stop_process(worker)
        probe.close()
        drop()
        forget_run((CACHE_URL, f"{RUN_ID}:*"), (BROKER_URL, f"*{RUN_ID}*"))
        for leftover in schedule.parent.glob(f"{schedule.name}*"):
            leftover.unlink()


class Stack:
    """The running servers, and the few things tests do to them."""

    def __init__(self, env, server, horizon, celery, database) -> None:
        self.env, self.server, self.horizon, self.celery, self.database = env, server, horizon, celery, database

    def control(self, path: str, body: dict | None = None, method: str = "post"):
        response = requests.request(method, f"{self.horizon.url}/_control/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def query(self, sql: str, *args) -> list[tuple]:
        with psycopg.connect(self.database, autocommit=True) as conn:
            return conn.execute(sql, args).fetchall()

    def shell(self, code: str) -> str:
        return manage(self.env, "shell", "-c", code).stdout

    def pair(self) -> tuple[str, str]:
        """A fresh enabled pair on the local Horizon, no trade yet (no price: no update): (name, base)."""
        code = f"AUT{uuid.uuid4().hex[:6].upper()}"
        base = f"{code}:{Keypair.random().public_key}"
        self.shell(f"from market.models import MarketPair; MarketPair.objects.create(name='{code}_USDC', network='testnet', "
                   f"base_code='{code}', base_issuer='{base.split(':')[1]}', counter_code='USDC', counter_issuer='{USDC_TESTNET}', "
                   f"enabled=True, horizon_url='{self.horizon.url}')")
        return f"{code}_USDC", base

    def trade(self, base: str, price: str) -> None:
        self.control("trade", {"base": base, "counter": USDC, "price": price, "amount": "1", "base_is_seller": True})

    def wallet(self, user: str, keypair: Keypair | None = None) -> str:
        keypair = keypair or Keypair.random()
        wallet_id = str(uuid.uuid4())
        self.shell(f"from transactions.models import Wallet; Wallet.objects.create(id='{wallet_id}', owner_id='{user}', "
                   f"public_key='{keypair.public_key}')")
        return wallet_id

    def automation(self, *, user: str, wallet_id: str, pair: str, trigger: str, params: dict, action: str = "notify",
                   action_params: dict | None = None, cooldown: int = 0, max_executions: int | None = None) -> str:
        automation_id = str(uuid.uuid4())
        self.shell(
            "from automation.models import Automation; "
            f"Automation.objects.create(id='{automation_id}', owner_id='{user}', wallet_id='{wallet_id}', name='t', "
            f"status='active', pair='{pair}', trigger_type='{trigger}', trigger_params={params!r}, action_type='{action}', "
            f"action_params={action_params or {}!r}, cooldown_seconds={cooldown}, max_executions={max_executions!r})")
        return automation_id

    def set_custodial_key(self, wallet_id: str, secret: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", "set_custodial_key", wallet_id], input=secret + "\n", cwd=ROOT,
                              env={**os.environ, **BASE_ENV, **self.env}, capture_output=True, text=True, timeout=120)

    def automation_row(self, automation_id: str) -> dict:
        columns = ("status", "condition_met", "last_price", "last_sequence", "trigger_count", "execution_count", "failure_count")
        row = self.query(f"SELECT {', '.join(columns)} FROM automation_automation WHERE id = %s", uuid.UUID(automation_id))[0]
        return dict(zip(columns, row))

    def runs(self, automation_id: str) -> list[dict]:
        columns = ("status", "transaction_hash", "error_code", "attempts", "sequence")
        rows = self.query(f"SELECT {', '.join(columns)} FROM automation_automationrun WHERE automation_id = %s ORDER BY sequence",
                          uuid.UUID(automation_id))
        return [dict(zip(columns, row)) for row in rows]

    async def until(self, check, what: str, timeout: float = WAIT):
        deadline = time.monotonic() + timeout
        while True:
            value = await asyncio.to_thread(check)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout}s: {what}")
            await asyncio.sleep(0.2)

    async def priced(self, automation_id: str, price: str) -> dict:
        """Wait until the engine has evaluated the automation at `price`."""
        return await self.until(lambda: (row := self.automation_row(automation_id))["last_price"] == Decimal(price) and row,
                                f"automation {automation_id} evaluated at {price}")


async def subscribed(stack: Stack, user: str, automation_id: str):
    client = await signed_in(stack.server, user)
    reply = await client.call("automation:subscribe", {"automationIds": [automation_id]})
    assert reply["ok"] is True and reply["automationIds"] == [automation_id], reply
    return client


async def test_a_crossing_fires_once_and_a_second_crossing_within_the_cooldown_does_not(stack):
    user = str(uuid.uuid4())
    pair, base = await asyncio.to_thread(stack.pair)
    wallet_id = await asyncio.to_thread(stack.wallet, user)
    automation_id = await asyncio.to_thread(stack.automation, user=user, wallet_id=wallet_id, pair=pair,
                                            trigger="price_above", params={"threshold": "2"}, cooldown=3600)
    client = await subscribed(stack, user, automation_id)
    try:
        await asyncio.to_thread(stack.trade, base, "1.0")
        row = await stack.priced(automation_id, "1.0")
        assert row["condition_met"] is False and row["trigger_count"] == 0

        await asyncio.to_thread(stack.trade, base, "2.5")
        triggered = await client.next("automation:triggered", timeout=WAIT)
        assert triggered == {
            "automationId": automation_id, "userId": user, "walletId": wallet_id,
            "triggerCondition": f"{pair} price >= 2", "triggerData": triggered["triggerData"],
        }
        assert triggered["triggerData"]["price"] == 2.5 and triggered["triggerData"]["pair"] == pair
        executed = await client.next("automation:executed", timeout=WAIT)
        assert set(executed) == {"automationId", "userId", "walletId", "result", "executedAt"}
        assert (executed["automationId"], executed["userId"], executed["walletId"], executed["result"]) == (
            automation_id, user, wallet_id, "success")
        assert abs(executed["executedAt"] - time.time() * 1000) < 60_000

        # Down and up again within the hour's cooldown: evaluated, not fired.
        await asyncio.to_thread(stack.trade, base, "1.5")
        assert (await stack.priced(automation_id, "1.5"))["condition_met"] is False
        await asyncio.to_thread(stack.trade, base, "2.6")
        row = await stack.priced(automation_id, "2.6")
        assert row["condition_met"] is True and row["trigger_count"] == 1 and row["execution_count"] == 1
        await client.none("automation:triggered", 1.5)
        runs = await asyncio.to_thread(stack.runs, automation_id)
        assert [run["status"] for run in runs] == ["executed"]
        assert client.drain("automation:executed") == []  # one socket in both rooms: one delivery
    finally:
        await client.close()


async def test_two_workers_given_the_same_price_update_many_times_fire_the_rule_once(stack):
    user = str(uuid.uuid4())
    wallet_id = await asyncio.to_thread(stack.wallet, user)
    # A pair nobody feeds: only the tasks this test sends evaluate it.
    automation_id = await asyncio.to_thread(stack.automation, user=user, wallet_id=wallet_id, pair="NOFEED_USDC",
                                            trigger="price_below", params={"threshold": "0.5"}, max_executions=5)
    client = await subscribed(stack, user, automation_id)
    marks = {name: worker_log(name).read_text().count("automation.evaluate_price") for name in WORKERS}
    try:
        now = int(time.time() * 1000)
        results = [stack.celery.send_task("automation.evaluate_price", args=["NOFEED_USDC", 0.4, 7, now], queue=RUN_ID)
                   for _ in range(24)]
        fired = [await asyncio.to_thread(result.get, timeout=WAIT) for result in results]
        assert sum(len(result["fired"]) for result in fired) == 1
        assert (await client.next("automation:triggered", timeout=WAIT))["triggerData"]["sequence"] == 7
        await client.next("automation:executed", timeout=WAIT)
        await client.none("automation:triggered", 1.0)
        assert [run["sequence"] for run in await asyncio.to_thread(stack.runs, automation_id)] == [7]
        assert (await asyncio.to_thread(stack.automation_row, automation_id))["trigger_count"] == 1
        # Both workers took part (each log names tasks it received beyond what it had before).
        for name in WORKERS:
            assert worker_log(name).read_text().count("automation.evaluate_price") > marks[name], name
    finally:
        await client.close()


def funded_payer(stack: Stack, user: str) -> tuple[Keypair, str, int]:
    payer = Keypair.random()
    sequence = int(stack.control("account", {"account": payer.public_key})["sequence"])
    wallet_id = stack.wallet(user, payer)
    result = stack.set_custodial_key(wallet_id, payer.secret)
    assert result.returncode == 0, result.stderr
    assert payer.secret not in result.stdout + result.stderr
    return payer, wallet_id, sequence


async def test_a_payment_automation_signs_a_payment_horizon_accepts_and_ends_executed_with_its_hash(stack):
    user = str(uuid.uuid4())
    pair, base = await asyncio.to_thread(stack.pair)
    payer, wallet_id, sequence = await asyncio.to_thread(funded_payer, stack, user)
    destination = Keypair.random().public_key
    automation_id = await asyncio.to_thread(
        stack.automation, user=user, wallet_id=wallet_id, pair=pair, trigger="price_below", params={"threshold": "0.5"},
        action="payment", action_params={"destination": destination, "amount": "12.5", "asset": "XLM"})
    client = await subscribed(stack, user, automation_id)
    try:
        await asyncio.to_thread(stack.trade, base, "1.0")
        await stack.priced(automation_id, "1.0")
        await asyncio.to_thread(stack.trade, base, "0.4")
        await client.next("automation:triggered", timeout=WAIT)

        def submitted():
            return {h: tx for h, tx in stack.control("submitted", method="get").items() if tx["source"] == payer.public_key}

        (tx_hash, received), = (await stack.until(submitted, "the payment reached Horizon")).items()
        envelope = TransactionEnvelope.from_xdr(received["xdr"], TESTNET_PASSPHRASE)
        assert envelope.hash_hex() == tx_hash
        assert envelope.transaction.source.account_id == payer.public_key
        assert envelope.transaction.sequence == sequence + 1
        (signature,) = envelope.signatures
        Keypair.from_public_key(payer.public_key).verify(envelope.hash(), signature.signature)  # raises if not
        (op,) = envelope.transaction.operations
        assert isinstance(op, Payment)
        assert (op.destination.account_id, op.amount, op.asset.is_native()) == (destination, "12.5", True)
        assert [run["status"] for run in await asyncio.to_thread(stack.runs, automation_id)] in (["submitted"], ["pending"])

        await asyncio.to_thread(stack.control, "include", {"hash": tx_hash})
        executed = await client.next("automation:executed", timeout=WAIT)
        assert (executed["result"], executed["transactionHash"], executed["walletId"]) == ("success", tx_hash, wallet_id)
        assert "error" not in executed
        (run,) = await asyncio.to_thread(stack.runs, automation_id)
        assert (run["status"], run["transaction_hash"]) == ("executed", tx_hash)
        # Tracked like any transaction of the wallet: the owner hears it confirmed too.
        assert (await client.next("transaction:confirmed", timeout=WAIT))["hash"] == tx_hash
    finally:
        await client.close()


async def test_a_payment_that_fails_in_the_ledger_is_executed_failed_with_its_hash(stack):
    user = str(uuid.uuid4())
    pair, base = await asyncio.to_thread(stack.pair)
    payer, wallet_id, _ = await asyncio.to_thread(funded_payer, stack, user)
    automation_id = await asyncio.to_thread(
        stack.automation, user=user, wallet_id=wallet_id, pair=pair, trigger="price_above", params={"threshold": "3"},
        action="payment", action_params={"destination": Keypair.random().public_key, "amount": "1", "asset": "XLM"})
    client = await subscribed(stack, user, automation_id)
    try:
        await asyncio.to_thread(stack.trade, base, "1.0")
        await stack.priced(automation_id, "1.0")
        await asyncio.to_thread(stack.trade, base, "3.5")
        await client.next("automation:triggered", timeout=WAIT)

        def submitted():
            return [h for h, tx in stack.control("submitted", method="get").items() if tx["source"] == payer.public_key]

        (tx_hash,) = await stack.until(submitted, "the payment reached Horizon")
        await asyncio.to_thread(stack.control, "include", {"hash": tx_hash, "successful": False,
                                                           "result_codes": {"transaction": "tx_failed", "operations": ["op_no_destination"]}})
        executed = await client.next("automation:executed", timeout=WAIT)
        assert (executed["result"], executed["transactionHash"]) == ("failed", tx_hash)
        assert "op_no_destination" in executed["error"]
        assert (await asyncio.to_thread(stack.runs, automation_id))[0]["error_code"] == "op_no_destination"
    finally:
        await client.close()


async def test_horizon_failing_every_submission_ends_in_automation_error_after_the_retries(stack):
    user = str(uuid.uuid4())
    pair, base = await asyncio.to_thread(stack.pair)
    payer, wallet_id, _ = await asyncio.to_thread(funded_payer, stack, user)
    automation_id = await asyncio.to_thread(
        stack.automation, user=user, wallet_id=wallet_id, pair=pair, trigger="price_above", params={"threshold": "2"},
        action="payment", action_params={"destination": Keypair.random().public_key, "amount": "3", "asset": "XLM"})
    client = await subscribed(stack, user, automation_id)
    try:
        await asyncio.to_thread(stack.trade, base, "1.0")
        await stack.priced(automation_id, "1.0")
        before = (await asyncio.to_thread(stack.control, "requests", None, "get")).get("/transactions_async", 0)
        # Five failures: the first attempt and its four retries (tasks.EXECUTION_RETRIES); a sixth would pass.
        await asyncio.to_thread(stack.control, "fail", {"count": 5, "status": 500, "path": "/transactions_async"})
        await asyncio.to_thread(stack.trade, base, "2.5")
        await client.next("automation:triggered", timeout=WAIT)
        error = await client.next("automation:error", timeout=WAIT + 20)
        assert set(error) == {"automationId", "userId", "walletId", "error", "errorCode", "errorAt"}
        assert (error["automationId"], error["userId"], error["walletId"], error["errorCode"]) == (
            automation_id, user, wallet_id, "horizon_unavailable")
        assert "after 5 attempts" in error["error"]
        (run,) = await asyncio.to_thread(stack.runs, automation_id)
        assert (run["status"], run["attempts"]) == ("failed", 5)
        after = (await asyncio.to_thread(stack.control, "requests", None, "get")).get("/transactions_async", 0)
        assert after - before == 5
        await client.none("automation:executed", 1.0)
        assert (await asyncio.to_thread(stack.automation_row, automation_id))["failure_count"] == 1
    finally:
        await client.close()


async def test_no_page_api_answer_or_log_shows_a_custodial_secret(stack):
    user = str(uuid.uuid4())
    owner_payer, owner_wallet, _ = await asyncio.to_thread(funded_payer, stack, user)  # by the command
    admin_wallet_key = Keypair.random()
    admin_wallet = await asyncio.to_thread(stack.wallet, user, admin_wallet_key)
    await asyncio.to_thread(stack.shell, "from django.contrib.auth.models import User; "
                            "User.objects.filter(username='ops').exists() or User.objects.create_superuser('ops', 'ops@example.com', 'pw-ops-123')")
    session = requests.Session()
    url = stack.server.url
    session.get(f"{url}/admin/login/", timeout=10)
    login = session.post(f"{url}/admin/login/?next=/admin/", data={"username": "ops", "password": "pw-ops-123",
                         "csrfmiddlewaretoken": session.cookies["csrftoken"]}, timeout=10)
    assert login.ok and "logout" in login.text.lower()

    # The admin's write-only field: a wrong seed is refused, the right one stored.
    add = f"{url}/admin/automation/custodialkey/add/"
    session.get(add, timeout=10)
    wrong = session.post(add, data={"wallet": admin_wallet, "secret": Keypair.random().secret,
                                    "csrfmiddlewaretoken": session.cookies["csrftoken"]}, timeout=10)
    assert "not the key of wallet" in wrong.text
    stored = session.post(add, data={"wallet": admin_wallet, "secret": admin_wallet_key.secret,
                                     "csrfmiddlewaretoken": session.cookies["csrftoken"]}, timeout=10)
    assert stored.ok and not re.search("errorlist", stored.text)

    ciphertexts = [bytes(row[0]).decode() for row in await asyncio.to_thread(stack.query, "SELECT ciphertext FROM automation_custodialkey")]
    assert len(ciphertexts) >= 2
    secrets = [owner_payer.secret, admin_wallet_key.secret]
    pages = [session.get(f"{url}/admin/automation/custodialkey/", timeout=10),
             session.get(f"{url}/admin/automation/custodialkey/{admin_wallet}/change/", timeout=10),
             session.get(f"{url}/admin/automation/custodialkey/{owner_wallet}/change/", timeout=10)]
    for page in pages:
        assert page.status_code == 200
        for secret in secrets + ciphertexts:
            assert secret not in page.text
    assert admin_wallet_key.public_key in pages[1].text and "icon-yes" in pages[0].text

    headers = {"Authorization": f"Bearer {token(user)}"}
    answers = [requests.get(f"{url}/api/schema/", headers=headers, timeout=10),
               requests.get(f"{url}/api/auth/me", headers=headers, timeout=10),
               requests.get(f"{url}/api/automations/", headers=headers, timeout=10)]
    for answer in answers:
        for secret in secrets + ciphertexts:
            assert secret not in answer.text

    logs = [worker_log(name).read_text(errors="replace") for name in WORKERS]
    logs.append(stack.server.log.read_text(errors="replace"))
    for log in logs:
        for secret in secrets:
            assert secret not in log
    assert json.dumps(secrets)  # the seeds were real
