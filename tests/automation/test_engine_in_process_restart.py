"""The embedded default (no Redis, no Celery, SQLite) SIGKILLed mid-run and restarted on the same
database: the in-process sweep takes back the run it left open, which ends once and pays once,
and the run events it owed reach the owner's sockets once they are back.

Each test runs a real daphne on a fresh SQLite, a local Horizon of this module's (it can hold a
submission's answer: the transaction received, the server still waiting), and a signed-in
python-socketio client; the server is killed with SIGKILL at a moment the test makes
deterministic, and started again on the same database and port. An owed event is made by a
trigger in the database refusing the claim to emit it (what a process dying between a commit
and its emit leaves: the run's row owing the event, nobody holding it), then the process dies.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import closing

import aiohttp
import pytest
import requests
from aiohttp import web
from cryptography.fernet import Fernet
from stellar_sdk import Keypair, TransactionEnvelope

from tests.auth.clients import Client
from tests.horizon.server import TEST_RATE_LIMIT, HorizonThread, LocalHorizon
from tests.horizon.world import TESTNET_PASSPHRASE, USDC_TESTNET
from tests.servers import BASE_ENV, ROOT, ServerProcess, fresh_sqlite, manage, start_daphne
from tests.transactions.conftest import SERVER_ENV, token

USDC = f"USDC:{USDC_TESTNET}"
ARTIFACTS = ROOT / "artifacts"
# An attempt holds its run 2 × HORIZON_REQUEST_TIMEOUT + grace (9 s): the server waits up to 4 s
# for the held submission's answer, the window in which the test kills it (it does so at once).
HORIZON_TIMEOUT = 4
# Longer than any server waits for an answer: a held submission is answered by no one.
HOLD_SECONDS = 60
WAIT = 25.0
# How long the owner's sockets take to come back after the restart: socket.io-client's first
# reconnection attempt comes 0.5-1.5 s after the drop, later ones up to 7.5 s apart. Two of the
# in-process sweep's passes (AUTOMATION_SWEEP_INTERVAL) run meanwhile.
RECONNECT_DELAY = 2.0
# Refuses a claim to emit a closed run's events (announcing_until set): they stay owed.
NO_CLAIM_OF_ENDED = """
CREATE TRIGGER no_claim BEFORE UPDATE OF announcing_until ON automation_automationrun
WHEN NEW.announcing_until IS NOT NULL AND NEW.status IN ('executed', 'failed')
BEGIN SELECT RAISE(ABORT, 'test: no claim'); END
"""
NO_CLAIM = """
CREATE TRIGGER no_claim BEFORE UPDATE OF announcing_until ON automation_automationrun
WHEN NEW.announcing_until IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'test: no claim'); END
"""


class HoldingHorizon(LocalHorizon):
    """The local Horizon, able to hold the answer to the next submissions: each is received (in
    `submitted`, as Horizon has it) and answered after HOLD_SECONDS. Every envelope POSTed to
    /transactions_async is listed, {hash, source}, in order, at GET /_control/received."""

    def __init__(self) -> None:
        super().__init__()
        self.holds = 0
        self.received: list[str] = []
        self.app.router.add_post("/_control/hold", self.control_hold)
        self.app.router.add_get("/_control/received", self.control_received)

    async def submit_async(self, request):
        response = await super().submit_async(request)
        envelope = TransactionEnvelope.from_xdr(str((await request.post())["tx"]), TESTNET_PASSPHRASE)
        self.received.append({"hash": envelope.hash_hex(), "source": envelope.transaction.source.account_id})
        if self.holds:
            self.holds -= 1
            await asyncio.sleep(HOLD_SECONDS)
        return response

    async def control_hold(self, request):
        self.holds += int((await request.json()).get("count", 1))
        return web.json_response({"ok": True})

    async def control_received(self, request):
        return web.json_response(self.received)


class HoldingHorizonThread(HorizonThread):
    async def _start(self) -> None:
        self.horizon = HoldingHorizon()
        self.horizon.rate_limit = TEST_RATE_LIMIT
        self._runner = web.AppRunner(self.horizon.app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]


@pytest.fixture(scope="module")
def horizon():
    thread = HoldingHorizonThread().start()
    yield thread
    thread.stop()


class Embedded:
    """One embedded-default server on its own SQLite, killed and restarted by the test."""

    def __init__(self, horizon, path) -> None:
        self.horizon = horizon
        self.database = fresh_sqlite(path)
        self.env = {**SERVER_ENV, "DATABASE_URL": self.database, "STELLAR_HORIZON_URL": horizon.url,
                    "MARKET_MIN_POLL_INTERVAL": "0.2", "TRANSACTION_DEADLINE_SECONDS": "60",
                    "HORIZON_REQUEST_TIMEOUT": str(HORIZON_TIMEOUT), "AUTOMATION_STALE_GRACE": "1",
                    "AUTOMATION_SWEEP_INTERVAL": "1", "WALLET_ENCRYPTION_KEY": Fernet.generate_key().decode()}
        self.server: ServerProcess | None = None
        self.starts = 0
        manage(self.env, "migrate", "--noinput")

    # -- the server ----------------------------------------------------------------------------

    def start(self) -> ServerProcess:
        self.starts += 1
        log = ARTIFACTS / f"automation-restart-{os.getpid()}-{uuid.uuid4().hex[:6]}-{self.starts}.log"
        self.server = start_daphne("galaxy.asgi:application", self.env, log, port=self.server.port if self.server else None)
        return self.server

    def kill(self) -> None:
        """SIGKILL: no shutdown, whatever the process was doing stops there."""
        self.server.process.kill()
        self.server.process.wait()

    def health(self) -> None:
        requests.get(f"{self.server.url}/health", timeout=10).raise_for_status()

    def stop(self) -> None:
        if self.server is not None and self.server.process.poll() is None:
            self.server.stop()

    # -- its database and its Horizon ------------------------------------------------------------

    def sql(self, statement: str, *args) -> list[tuple]:
        with closing(sqlite3.connect(self.database.removeprefix("sqlite:///"), timeout=20)) as conn, conn:
            return conn.execute(statement, args).fetchall()

    def run_rows(self, automation_id: str) -> list[dict]:
        columns = ("status", "attempts", "transaction_hash", "announced", "error_code")
        rows = self.sql(f"SELECT {', '.join(columns)} FROM automation_automationrun WHERE automation_id = ?",
                        automation_id.replace("-", ""))
        return [dict(zip(columns, row)) for row in rows]

    def received(self, payer: Keypair) -> list[str]:
        """The hashes of the envelopes from `payer` Horizon received, in order."""
        return [row["hash"] for row in self.control("received", method="get") if row["source"] == payer.public_key]

    def control(self, path: str, body: dict | None = None, method: str = "post"):
        response = requests.request(method, f"{self.horizon.url}/_control/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def shell(self, code: str) -> None:
        manage(self.env, "shell", "-c", code)

    def automation(self, *, user: str, action: str, payer: Keypair | None = None, custodial: bool = True) -> tuple[str, str]:
        """A pair, a wallet of `user` (`payer`'s, funded on Horizon with its custodial key when
        `custodial`) and an active automation firing above 2 with `action`: (automation id, base)."""
        code = f"RST{uuid.uuid4().hex[:5].upper()}"
        issuer = Keypair.random().public_key
        payer = payer or Keypair.random()
        wallet_id, automation_id = str(uuid.uuid4()), str(uuid.uuid4())
        params = {"destination": Keypair.random().public_key, "amount": "3", "asset": "XLM"} if action == "payment" else {}
        self.control("account", {"account": payer.public_key})
        self.shell(f"""
from market.models import MarketPair
from transactions.models import Wallet
from automation.models import Automation
MarketPair.objects.create(name='{code}_USDC', network='testnet', base_code='{code}', base_issuer='{issuer}',
    counter_code='USDC', counter_issuer='{USDC_TESTNET}', enabled=True, horizon_url='{self.horizon.url}')
Wallet.objects.create(id='{wallet_id}', owner_id='{user}', public_key='{payer.public_key}')
Automation.objects.create(id='{automation_id}', owner_id='{user}', wallet_id='{wallet_id}', name='r', status='active',
    pair='{code}_USDC', trigger_type='price_above', trigger_params={{"threshold": "2"}}, action_type='{action}',
    action_params={params!r})
""")
        if custodial:
            set_key(self.env, wallet_id, payer.secret)
        return automation_id, f"{code}:{issuer}"

    def trade(self, base: str, price: str) -> None:
        self.control("trade", {"base": base, "counter": USDC, "price": price, "amount": "1", "base_is_seller": True})

    async def until(self, check, what: str, timeout: float = WAIT):
        deadline = time.monotonic() + timeout
        while not (value := await asyncio.to_thread(check)):
            assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
            await asyncio.sleep(0.1)
        return value

    async def priced_below(self, automation_id: str) -> None:
        """Until the engine evaluated the automation at a price below its threshold."""
        await self.until(lambda: self.sql("SELECT condition_met FROM automation_automation WHERE id = ?",
                                          automation_id.replace("-", "")) == [(0,)], "evaluated below the threshold")

    async def runs_rest(self, user: str, automation_id: str) -> list[dict]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.server.url}/api/automations/{automation_id}/runs",
                                   headers={"Authorization": f"Bearer {token(user)}"}) as response:
                assert response.status == 200, await response.text()
                return (await response.json())["results"]


def set_key(env: dict, wallet_id: str, secret: str) -> None:
    """`manage.py set_custodial_key WALLET_ID`, the seed on stdin."""
    result = subprocess.run([sys.executable, "manage.py", "set_custodial_key", wallet_id], input=secret + "\n", cwd=ROOT,
                            env={**os.environ, **BASE_ENV, **env}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def embedded(horizon, tmp_path):
    server = Embedded(horizon, tmp_path)
    yield server
    server.stop()


async def signed_in(server, user: str) -> Client:
    """The owner signed in (user:{id}), its automation events listed as they arrive from the
    handshake on (`client.names`)."""
    client = Client()
    client.names = in_order(client)
    await client.connect(server)
    reply = await client.authenticate(token(user))
    assert reply["ok"] is True, reply
    await client.next("authenticated")
    return client


async def owner(embedded: Embedded, user: str, automation_id: str) -> Client:
    """The owner signed in and in automation:{id}."""
    client = await signed_in(embedded.server, user)
    reply = await client.call("automation:subscribe", {"automationIds": [automation_id]})
    assert reply["ok"] is True, reply
    return client


def in_order(client) -> list[str]:
    """The names of the client's automation events as they arrive (besides its queues)."""
    names: list[str] = []
    record = client._record

    async def both(event, *args):
        if event.startswith("automation:") and event != "automation:status":
            names.append(event)
        await record(event, *args)

    client.sio.on("*", both)
    return names


def payer_transactions(embedded: Embedded, payer: Keypair) -> list[str]:
    """The payer's transactions in the local Horizon's ledger (its GET /accounts/{id}/transactions)."""
    response = requests.get(f"{embedded.horizon.url}/accounts/{payer.public_key}/transactions", timeout=10)
    response.raise_for_status()
    return [record["hash"] for record in response.json()["_embedded"]["records"]]


async def killed_in_its_submission(embedded: Embedded, client, base: str, payer: Keypair) -> str:
    """The automation crosses its threshold with Horizon holding the submission's answer; the
    server is SIGKILLed once Horizon has the transaction, waiting for that answer. Its hash."""
    await asyncio.to_thread(embedded.trade, base, "1.0")
    await embedded.priced_below(client.automation_id)
    await asyncio.to_thread(embedded.control, "hold", {"count": 1})
    await asyncio.to_thread(embedded.trade, base, "2.5")
    (tx_hash,) = await embedded.until(lambda: embedded.received(payer), "the payment reached Horizon")
    embedded.kill()
    return tx_hash


async def restarted(embedded: Embedded, user: str, automation_id: str):
    """The server started again on the same database, its first request a health check (as a
    container's or balancer's would be: it starts the in-process engine), then, after a client's
    reconnection delay, the owner back with two sockets: one in the user room only, one in
    automation:{id} too (each must hear a run's events once)."""
    await asyncio.to_thread(embedded.start)
    await asyncio.to_thread(embedded.health)
    await asyncio.sleep(RECONNECT_DELAY)
    in_user_room = await signed_in(embedded.server, user)
    in_both = await owner(embedded, user, automation_id)
    return in_user_room, in_both


async def test_a_payment_whose_server_died_waiting_for_horizon_ends_executed_once_after_the_restart_and_pays_once(embedded):
    user, payer = str(uuid.uuid4()), Keypair.random()
    automation_id, base = await asyncio.to_thread(embedded.automation, user=user, action="payment", payer=payer)
    await asyncio.to_thread(embedded.start)
    client = await owner(embedded, user, automation_id)
    client.automation_id = automation_id
    try:
        tx_hash = await killed_in_its_submission(embedded, client, base, payer)
        assert (await client.next("automation:triggered", timeout=WAIT))["automationId"] == automation_id
    finally:
        await client.close()
    (run,) = await asyncio.to_thread(embedded.run_rows, automation_id)
    assert (run["status"], run["attempts"], run["transaction_hash"], run["announced"]) == ("pending", 1, tx_hash, 1)

    user_only, both = await restarted(embedded, user, automation_id)
    try:
        # Its attempt's hold lapsed: the in-process sweep attempts it again, with the same envelope.
        received = await embedded.until(lambda: len(r := embedded.received(payer)) > 1 and r,
                                        "the run attempted again after the restart")
        assert received == [tx_hash, tx_hash]
        await asyncio.to_thread(embedded.control, "include", {"hash": tx_hash})
        for client in (user_only, both):
            executed = await client.next("automation:executed", timeout=WAIT)
            assert (executed["automationId"], executed["result"], executed["transactionHash"]) == (automation_id, "success", tx_hash)
        await both.none("automation:executed", 1.5)
        assert user_only.names == both.names == ["automation:executed"]  # once; its triggered went out before the kill
        runs = await embedded.runs_rest(user, automation_id)
        assert [(r["status"], r["transactionHash"], r["attempts"]) for r in runs] == [("executed", tx_hash, 2)]
        # One payment: the signed envelope sent again (Horizon: DUPLICATE), never a second transaction.
        assert await asyncio.to_thread(embedded.received, payer) == [tx_hash, tx_hash]
        assert await asyncio.to_thread(payer_transactions, embedded, payer) == [tx_hash]
    finally:
        await user_only.close()
        await both.close()


@pytest.mark.parametrize("owed", ["executed", "error"])
async def test_a_runs_ending_owed_when_the_server_died_reaches_the_owner_once_after_the_restart(embedded, owed):
    # notify: executed; a payment from a wallet without its custodial key: error before the ledger.
    user = str(uuid.uuid4())
    action, custodial = ("notify", True) if owed == "executed" else ("payment", False)
    automation_id, base = await asyncio.to_thread(embedded.automation, user=user, action=action, custodial=custodial)
    await asyncio.to_thread(embedded.start)
    client = await owner(embedded, user, automation_id)
    try:
        await asyncio.to_thread(embedded.trade, base, "1.0")
        await embedded.priced_below(automation_id)
        await asyncio.to_thread(embedded.sql, NO_CLAIM_OF_ENDED)
        await asyncio.to_thread(embedded.trade, base, "2.5")
        assert (await client.next("automation:triggered", timeout=WAIT))["automationId"] == automation_id
        status = "executed" if owed == "executed" else "failed"
        await embedded.until(lambda: [(r["status"], r["announced"]) for r in embedded.run_rows(automation_id)] == [(status, 1)],
                             f"the run {status}, its ending owed")
        embedded.kill()
        assert client.drain(f"automation:{owed}") == []
    finally:
        await client.close()
    await asyncio.to_thread(embedded.sql, "DROP TRIGGER no_claim")

    user_only, both = await restarted(embedded, user, automation_id)
    try:
        for client in (user_only, both):
            ending = await client.next(f"automation:{owed}", timeout=WAIT)
            assert (ending["automationId"], ending["userId"]) == (automation_id, user)
            if owed == "error":
                assert ending["errorCode"] == "custodial_key_missing"
            else:
                assert ending["result"] == "success"
        await both.none(f"automation:{owed}", 1.5)
        assert user_only.names == both.names == [f"automation:{owed}"]
        assert [r["announced"] for r in await asyncio.to_thread(embedded.run_rows, automation_id)] == [2]
        runs = await embedded.runs_rest(user, automation_id)
        assert [r["status"] for r in runs] == [status]
    finally:
        await user_only.close()
        await both.close()


async def test_a_triggered_owed_when_the_server_died_mid_payment_goes_out_before_its_executed_each_once(embedded):
    user, payer = str(uuid.uuid4()), Keypair.random()
    automation_id, base = await asyncio.to_thread(embedded.automation, user=user, action="payment", payer=payer)
    await asyncio.to_thread(embedded.start)
    client = await owner(embedded, user, automation_id)
    client.automation_id = automation_id
    try:
        await asyncio.to_thread(embedded.sql, NO_CLAIM)
        tx_hash = await killed_in_its_submission(embedded, client, base, payer)
        assert client.drain("automation:triggered") == []
    finally:
        await client.close()
    (run,) = await asyncio.to_thread(embedded.run_rows, automation_id)
    assert (run["status"], run["attempts"], run["announced"]) == ("pending", 1, 0)

    # The sweep sends an owed event once one of its rooms has someone in it; a socket back a
    # moment after the first misses it (CI once: a pass between the two sign-ins). Both are back
    # before the claim can succeed.
    user_only, both = await restarted(embedded, user, automation_id)
    await asyncio.to_thread(embedded.sql, "DROP TRIGGER no_claim")
    try:
        for client in (user_only, both):
            triggered = await client.next("automation:triggered", timeout=WAIT)
            assert (triggered["automationId"], triggered["triggerData"]["price"]) == (automation_id, 2.5)
        await embedded.until(lambda: len(embedded.received(payer)) > 1, "the run attempted again")
        await asyncio.to_thread(embedded.control, "include", {"hash": tx_hash})
        for client in (user_only, both):
            executed = await client.next("automation:executed", timeout=WAIT)
            assert (executed["result"], executed["transactionHash"]) == ("success", tx_hash)
        await both.none("automation:executed", 1.5)
        assert user_only.names == both.names == ["automation:triggered", "automation:executed"]
        assert await asyncio.to_thread(payer_transactions, embedded, payer) == [tx_hash]
        runs = await embedded.runs_rest(user, automation_id)
        assert [(r["status"], r["transactionHash"]) for r in runs] == [("executed", tx_hash)]
    finally:
        await user_only.close()
        await both.close()


async def test_a_payment_submitted_when_the_server_died_and_in_a_ledger_by_the_restart_reaches_the_owner_once(embedded):
    # The restarted watcher settles it at its first pass, started by the first request: its
    # executed waits for the owner (it went to no one when the health check came first).
    user, payer = str(uuid.uuid4()), Keypair.random()
    automation_id, base = await asyncio.to_thread(embedded.automation, user=user, action="payment", payer=payer)
    await asyncio.to_thread(embedded.start)
    client = await owner(embedded, user, automation_id)
    try:
        await asyncio.to_thread(embedded.trade, base, "1.0")
        await embedded.priced_below(automation_id)
        await asyncio.to_thread(embedded.trade, base, "2.5")
        await embedded.until(lambda: [r["status"] for r in embedded.run_rows(automation_id)] == ["submitted"], "the run submitted")
        embedded.kill()
    finally:
        await client.close()
    (tx_hash,) = await asyncio.to_thread(embedded.received, payer)
    await asyncio.to_thread(embedded.control, "include", {"hash": tx_hash})

    user_only, both = await restarted(embedded, user, automation_id)
    try:
        for client in (user_only, both):
            executed = await client.next("automation:executed", timeout=WAIT)
            assert (executed["automationId"], executed["result"], executed["transactionHash"]) == (automation_id, "success", tx_hash)
        await both.none("automation:executed", 1.5)
        assert user_only.names == both.names == ["automation:executed"]
        runs = await embedded.runs_rest(user, automation_id)
        assert [(r["status"], r["transactionHash"], r["attempts"]) for r in runs] == [("executed", tx_hash, 1)]
        assert await asyncio.to_thread(embedded.received, payer) == [tx_hash]
        assert await asyncio.to_thread(payer_transactions, embedded, payer) == [tx_hash]
    finally:
        await user_only.close()
        await both.close()
