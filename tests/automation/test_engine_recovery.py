"""Runs whose worker died or whose execution was never queued still end, once, and pay once;
their events reach the client once, even when Redis goes away or the worker dies around an emit.

A stack of its own (test_engine_celery's shape): a daphne server, a standalone beat, and Celery
workers started and SIGKILLed by the tests, one at a time so the victim is the worker holding
the run. Grace and sweep are lowered to 1 s so a stranded run is taken back within seconds, the
announce lease to 6 s (so an emit is retried 2 s). A worker may reach Redis (its cache and
channel layer; not the broker) through a proxy the test cuts as the worker sends an event.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid

import msgpack
import pytest
import redis
from celery import Celery
from cryptography.fernet import Fernet
from stellar_sdk import Keypair

from tests.automation.test_engine_celery import BROKER_URL, CACHE_URL, Stack, funded_payer, subscribed
from tests.servers import BASE_ENV, ROOT, forget_run, fresh_postgres, manage, start_celery_worker, start_daphne, stop_process
from tests.tcpproxy import TcpProxy
from tests.transactions.conftest import SERVER_ENV

RUN_ID = f"automation-recovery-{os.getpid()}"
ARTIFACTS = ROOT / "artifacts"
# A killed attempt is held for 2 × HORIZON_REQUEST_TIMEOUT + grace (5 s) before the sweep takes it.
HORIZON_TIMEOUT = 2
WAIT = 25.0
# A claimed event is held this long; an emit is retried a third of it (automation.tasks).
ANNOUNCE_LEASE = 6
# Old code retried an emit 30 s whatever the lease: a test waits for the give-up, not a time.
GAVE_UP = re.compile(r"not emitted|raised unexpected: EmitFailed")


class RecoveryStack(Stack):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.workers: list[subprocess.Popen] = []

    def only_worker(self, redis_url: str | None = None) -> subprocess.Popen:
        """A new worker, the only one running: it takes every task, so it is the one to kill;
        `redis_url` for its cache and channel layer (the broker stays direct)."""
        for worker in self.workers:
            if worker.poll() is None:
                stop_process(worker)
        return self.worker(redis_url)

    def worker(self, redis_url: str | None = None) -> subprocess.Popen:
        name = f"{RUN_ID}-w{len(self.workers)}"
        env = {**self.env, "REDIS_URL": redis_url} if redis_url else self.env
        worker = start_celery_worker(env, name=name, log=self.log_of(len(self.workers)))
        self.workers.append(worker)
        return worker

    @staticmethod
    def log_of(index: int):
        return ARTIFACTS / f"{RUN_ID}-w{index}.log"

    def worker_log(self) -> str:
        """The newest worker's log."""
        return self.log_of(len(self.workers) - 1).read_text(errors="replace")

    def payments(self, public_key: str) -> list[str]:
        return [h for h, tx in self.control("submitted", method="get").items() if tx["source"] == public_key]

    def run_row(self, automation_id: str) -> dict:
        (run,) = self.runs(automation_id)
        return run


@pytest.fixture(scope="module")
def stack(horizon):
    database, drop = fresh_postgres()
    env = {**SERVER_ENV, "DATABASE_URL": database, "STELLAR_HORIZON_URL": horizon.url,
           "REDIS_URL": CACHE_URL, "REDIS_PREFIX": RUN_ID.replace("-", ""), "CACHE_KEY_PREFIX": RUN_ID,
           "CELERY_BROKER_URL": BROKER_URL, "CELERY_RESULT_BACKEND": BROKER_URL, "CELERY_TASK_DEFAULT_QUEUE": RUN_ID,
           "MARKET_MIN_POLL_INTERVAL": "0.2", "TRANSACTION_POLL_INTERVAL": "0.3", "TRANSACTION_DEADLINE_SECONDS": "60",
           "HORIZON_REQUEST_TIMEOUT": str(HORIZON_TIMEOUT), "AUTOMATION_STALE_GRACE": "1", "AUTOMATION_SWEEP_INTERVAL": "1",
           "AUTOMATION_ANNOUNCE_LEASE_SECONDS": str(ANNOUNCE_LEASE),
           "WALLET_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    manage(env, "migrate", "--noinput")
    schedule = ARTIFACTS / f"automation-recovery-beat-{os.getpid()}"
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / f"{RUN_ID}-beat.log").open("wb") as out:
        beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "galaxy", "beat", "-s", str(schedule), "--loglevel=INFO"],
                                cwd=ROOT, env={**os.environ, **BASE_ENV, **env}, stdout=out, stderr=subprocess.STDOUT)
    server, probe = None, Celery(broker=BROKER_URL, backend=BROKER_URL, set_as_current=False)
    stack = None
    try:
        server = start_daphne("galaxy.asgi:application", env, ARTIFACTS / f"automation-recovery-server-{os.getpid()}.log")
        stack = RecoveryStack(env, server, horizon, probe, database)
        yield stack
    finally:
        for worker in stack.workers if stack else []:
            stop_process(worker)
        if server is not None:
            server.stop()
        stop_process(beat)
        probe.close()
        drop()
        forget_run((CACHE_URL, f"{RUN_ID}:*"), (BROKER_URL, f"*{RUN_ID}*"))
        for leftover in schedule.parent.glob(f"{schedule.name}*"):
            leftover.unlink()


async def killed_mid_run(stack: RecoveryStack, *, fault: dict, killed_when) -> None:
    """A payment automation fires with Horizon's submissions failing as `fault` says; its only
    worker is SIGKILLed once `killed_when(run)` holds, and another starts. The run still ends in
    one automation:executed, with the one payment that reached Horizon."""
    user = str(uuid.uuid4())
    pair, base = await asyncio.to_thread(stack.pair)
    payer, wallet_id, _ = await asyncio.to_thread(funded_payer, stack, user)
    automation_id = await asyncio.to_thread(
        stack.automation, user=user, wallet_id=wallet_id, pair=pair, trigger="price_above", params={"threshold": "2"},
        action="payment", action_params={"destination": Keypair.random().public_key, "amount": "3", "asset": "XLM"})
    victim = await asyncio.to_thread(stack.only_worker)
    client = await subscribed(stack, user, automation_id)
    try:
        await asyncio.to_thread(stack.trade, base, "1.0")
        await stack.priced(automation_id, "1.0")
        await asyncio.to_thread(stack.control, "fail", {**fault, "path": "/transactions_async"})
        await asyncio.to_thread(stack.trade, base, "2.5")
        await client.next("automation:triggered", timeout=WAIT)
        await stack.until(lambda: stack.runs(automation_id) and killed_when(stack.run_row(automation_id)), "the moment to kill", WAIT)
        victim.kill()  # SIGKILL: no shutdown, its reserved messages stay unacked in the broker
        victim.wait()
        await asyncio.to_thread(stack.worker)

        (tx_hash,) = await stack.until(lambda: stack.payments(payer.public_key), "the payment reached Horizon", WAIT)
        await asyncio.to_thread(stack.control, "include", {"hash": tx_hash})
        executed = await client.next("automation:executed", timeout=WAIT)
        assert (executed["result"], executed["transactionHash"]) == ("success", tx_hash)
        await client.none("automation:executed", 1.0)
        assert client.drain("automation:error") == [] and client.drain("automation:triggered") == []
        # In the ledger now; nothing else from the payer reached Horizon: one payment, never a second.
        assert await asyncio.to_thread(stack.payments, payer.public_key) == []
        run = await asyncio.to_thread(stack.run_row, automation_id)
        assert (run["status"], run["transaction_hash"]) == ("executed", tx_hash)
    finally:
        await client.close()


async def test_a_worker_killed_in_a_retry_countdown_leaves_a_run_that_still_ends_executed_once(stack):
    # Two 503s: attempts 1-2 fail; the kill falls in the 2 s countdown before attempt 3, whose
    # message the dead worker held (unacked until the broker's one-hour visibility timeout).
    started = {}

    def in_countdown(run):
        if run["attempts"] >= 2:
            started.setdefault("at", time.monotonic())
            return time.monotonic() - started["at"] > 0.3
        return False

    await killed_mid_run(stack, fault={"count": 2, "status": 503}, killed_when=in_countdown)


async def test_a_worker_killed_while_it_submits_leaves_a_run_that_still_ends_executed_once(stack):
    # The first submission hangs (Horizon slow, past the request timeout); the worker dies in it,
    # its message acked.
    started = {}

    def submitting(run):
        if run["attempts"] >= 1 and run["transaction_hash"]:
            started.setdefault("at", time.monotonic())
            return time.monotonic() - started["at"] > 0.5
        return False

    await killed_mid_run(stack, fault={"count": 1, "mode": "timeout", "delay": 4}, killed_when=submitting)


async def test_a_firing_whose_execution_was_never_queued_is_executed_or_given_up_by_the_sweep(stack):
    """As after a Redis outage right behind the engine's commit: no triggered emit, no task."""
    if not any(worker.poll() is None for worker in stack.workers):
        await asyncio.to_thread(stack.worker)
    user = str(uuid.uuid4())
    wallet_id = await asyncio.to_thread(stack.wallet, user)
    fresh, late = [await asyncio.to_thread(stack.automation, user=user, wallet_id=wallet_id, pair=f"NOFEED{n}_USDC",
                                           trigger="price_above", params={"threshold": "2"}) for n in (1, 2)]
    client = await subscribed(stack, user, fresh)
    assert (await client.call("automation:subscribe", {"automationIds": [late]}))["ok"] is True
    try:
        await asyncio.to_thread(stack.shell, (
            "import time\nfrom datetime import timedelta\nfrom django.utils import timezone\n"
            "from automation import engine\nfrom automation.models import AutomationRun\n"
            "now = int(time.time() * 1000)\n"
            "for n in (1, 2):\n"
            "    engine.automation_evaluate_price(pair=f'NOFEED{n}_USDC', price=1.0, sequence=1, timestamp=now)\n"
            "    engine.automation_evaluate_price(pair=f'NOFEED{n}_USDC', price=2.5, sequence=2, timestamp=now + 1000)\n"
            # The second fired two minutes ago: past the time its retries allow.
            f"AutomationRun.objects.filter(automation_id='{late}').update(triggered_at=timezone.now() - timedelta(minutes=2))\n"))
        executed = await client.next("automation:executed", timeout=WAIT)
        assert (executed["automationId"], executed["result"]) == (fresh, "success")
        error = await client.next("automation:error", timeout=WAIT)
        assert (error["automationId"], error["errorCode"]) == (late, "execution_timeout")
        await client.none("automation:executed", 2.0)
        assert client.drain("automation:error") == []
        # Their triggered events, owed since the firing, went out with them, once each.
        assert sorted(t["automationId"] for t in client.drain("automation:triggered")) == sorted([fresh, late])
        assert [run["status"] for run in await asyncio.to_thread(stack.runs, late)] == ["failed"]
    finally:
        await client.close()


class CutAtEvent(TcpProxy):
    """A proxy in front of Redis that cuts (every connection; new ones refused until `restore`)
    when the worker sends the command carrying `marker` (its emit of that event): before it
    arrives, or with `done` once Redis did it (logged and published), as its answer comes back."""

    def __init__(self, *ports: int) -> None:
        super().__init__(*ports)
        self.fired = asyncio.Event()

    def cut_at(self, marker: bytes, done: bool = False) -> None:
        self.fired.clear()
        (self.lose_reply_to if done else self.cut_on)(marker, everything=True)

    def cut(self) -> None:
        super().cut()
        self.fired.set()


async def through_proxy(stack: RecoveryStack) -> CutAtEvent:
    """The only worker, reaching Redis (not its broker) through a proxy of the test's."""
    host_port, db = CACHE_URL.split("//", 1)[1].rsplit("/", 1)
    proxy = await CutAtEvent(int(host_port.rsplit(":", 1)[1])).start()
    await asyncio.to_thread(stack.only_worker, f"redis://127.0.0.1:{proxy.port}/{db}")
    return proxy


def in_order(client) -> list[str]:
    """Record the names of the client's events as they arrive (besides its queues)."""
    names: list[str] = []
    record = client._record

    async def both(event, *args):
        names.append(event)
        await record(event, *args)

    client.sio.on("*", both)
    return names


async def notify_automation(stack: RecoveryStack) -> tuple[str, str, str]:
    """A notify automation on a fresh pair, priced below its threshold: (user, automation, base)."""
    user = str(uuid.uuid4())
    pair, base = await asyncio.to_thread(stack.pair)
    wallet_id = await asyncio.to_thread(stack.wallet, user)
    automation_id = await asyncio.to_thread(stack.automation, user=user, wallet_id=wallet_id, pair=pair,
                                            trigger="price_above", params={"threshold": "2"})
    return user, automation_id, base


async def gave_up(stack: RecoveryStack, timeout: float = 45.0) -> None:
    """Until the worker's log says it gave an emit up (its retries are over)."""
    await stack.until(lambda: GAVE_UP.search(stack.worker_log()), "the worker gave the emit up", timeout)


def announced(stack: RecoveryStack, automation_id: str) -> list[int]:
    return [row[0] for row in stack.query("SELECT announced FROM automation_automationrun WHERE automation_id = %s",
                                          uuid.UUID(automation_id))]


def logged(stack: RecoveryStack, event: str, automation_id: str) -> list[str]:
    """The offsets under which the event log (what recoveries replay) holds `event` of the automation."""
    client = redis.from_url(CACHE_URL)
    try:
        entries = client.xrange(f"{stack.env['REDIS_PREFIX']}:events")
    finally:
        client.close()
    return [entry_id.decode() for entry_id, fields in entries
            for *_, name, data in [msgpack.unpackb(fields[b"m"], raw=False)]
            if name == event and data.get("automationId") == automation_id]


async def fired_with_its_executed_cut(stack: RecoveryStack, proxy, client, automation_id: str, base,
                                      done: bool = False) -> None:
    """The automation fires (`triggered` heard) and its run ends; the worker's emit of
    `executed` is cut on its way to Redis, or with `done` on its answer's way back."""
    await asyncio.to_thread(stack.trade, base, "1.0")
    await stack.priced(automation_id, "1.0")
    proxy.cut_at(b"automation:executed", done)
    await asyncio.to_thread(stack.trade, base, "2.5")
    await client.next("automation:triggered", timeout=WAIT)
    await asyncio.wait_for(proxy.fired.wait(), WAIT)


@pytest.mark.parametrize("done", [False, True], ids=["before-its-emit", "after-its-emit-before-its-answer"])
async def test_redis_away_past_the_emit_retries_as_a_run_ends_still_sends_its_executed_once(stack, done):
    """Whether Redis went before the event's emit (logged and published in one script) or after
    it, before its answer came back, the sweep's emit is the same event: the client hears it
    once and the log, which recoveries replay, holds it once. (Logged anew, the second copy
    would reach a recovering client.)"""
    proxy = await through_proxy(stack)
    user, automation_id, base = await notify_automation(stack)
    client = await subscribed(stack, user, automation_id)
    try:
        await fired_with_its_executed_cut(stack, proxy, client, automation_id, base, done)
        await gave_up(stack)  # Redis away longer than the worker's retries: the run's state stands
        assert [run["status"] for run in await asyncio.to_thread(stack.runs, automation_id)] == ["executed"]
        if done:  # published before Redis went: the server heard it
            executed = await client.next("automation:executed", timeout=WAIT)
        else:
            await client.none("automation:executed", 0.5)
        proxy.restore()

        if not done:
            executed = await client.next("automation:executed", timeout=WAIT)  # the sweep's, Redis back
        await stack.until(lambda: announced(stack, automation_id) == [2], "the sweep's emit of the run's ending")
        assert (executed["automationId"], executed["userId"], executed["result"]) == (automation_id, user, "success")
        await client.none("automation:executed", 2.0)
        assert client.drain("automation:triggered") == [] and client.drain("automation:error") == []
        assert len(await asyncio.to_thread(logged, stack, "automation:executed", automation_id)) == 1
    finally:
        await client.close()
        await asyncio.to_thread(stack.only_worker)  # off the proxy
        await proxy.stop()


async def test_a_worker_killed_while_it_emits_a_runs_ending_leaves_it_sent_once_its_lease_lapsed(stack):
    proxy = await through_proxy(stack)
    user, automation_id, base = await notify_automation(stack)
    client = await subscribed(stack, user, automation_id)
    try:
        await fired_with_its_executed_cut(stack, proxy, client, automation_id, base)
        await asyncio.sleep(0.3)
        stack.workers[-1].kill()  # SIGKILL inside the emit's retries, its claim held
        stack.workers[-1].wait()
        proxy.restore()
        assert [run["status"] for run in await asyncio.to_thread(stack.runs, automation_id)] == ["executed"]
        await asyncio.to_thread(stack.worker)

        executed = await client.next("automation:executed", timeout=WAIT)
        assert (executed["automationId"], executed["result"]) == (automation_id, "success")
        await client.none("automation:executed", 2.0)
        assert client.drain("automation:triggered") == []
        assert await asyncio.to_thread(announced, stack, automation_id) == [2]
    finally:
        await client.close()
        await proxy.stop()


async def test_a_triggered_emit_given_up_in_an_outage_goes_out_before_the_executed_each_once(stack):
    proxy = await through_proxy(stack)
    user, automation_id, base = await notify_automation(stack)
    client = await subscribed(stack, user, automation_id)
    names = in_order(client)
    try:
        await asyncio.to_thread(stack.trade, base, "1.0")
        await stack.priced(automation_id, "1.0")
        proxy.cut_at(b"automation:triggered")
        await asyncio.to_thread(stack.trade, base, "2.5")
        await asyncio.wait_for(proxy.fired.wait(), WAIT)
        await gave_up(stack)
        await client.none("automation:triggered", 0.5)
        proxy.restore()

        triggered = await client.next("automation:triggered", timeout=WAIT)
        assert (triggered["automationId"], triggered["triggerData"]["price"]) == (automation_id, 2.5)
        await client.next("automation:executed", timeout=WAIT)
        await client.none("automation:executed", 2.0)
        assert [name for name in names if name.startswith("automation:")] == ["automation:triggered", "automation:executed"]
        assert await asyncio.to_thread(announced, stack, automation_id) == [2]
    finally:
        await client.close()
        await asyncio.to_thread(stack.only_worker)
        await proxy.stop()
