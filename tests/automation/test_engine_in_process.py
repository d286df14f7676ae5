"""The embedded default (no Redis, no Celery): the server process feeds the automations' pair,
evaluates each price update and executes in-process; a real client hears it. The automation is
enabled only after the server started, and nobody subscribes to its pair: the feed still polls it."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid

import requests
from stellar_sdk import Keypair

from tests.horizon.world import USDC_TESTNET
from tests.servers import ROOT, fresh_sqlite, manage, start_daphne
from tests.transactions.conftest import SERVER_ENV, signed_in

USDC = f"USDC:{USDC_TESTNET}"
WAIT = 20.0


def trade(horizon, base: str, price: str) -> None:
    requests.post(f"{horizon.url}/_control/trade", json={"base": base, "counter": USDC, "price": price, "amount": "1"},
                  timeout=10).raise_for_status()


async def test_the_server_feeds_evaluates_and_executes_in_process(horizon, tmp_path):
    database = fresh_sqlite(tmp_path)
    env = {**SERVER_ENV, "DATABASE_URL": database, "STELLAR_HORIZON_URL": horizon.url, "MARKET_MIN_POLL_INTERVAL": "0.2"}
    manage(env, "migrate", "--noinput")
    user, code = str(uuid.uuid4()), f"INP{uuid.uuid4().hex[:5].upper()}"
    base = f"{code}:{Keypair.random().public_key}"
    wallet_id, automation_id = str(uuid.uuid4()), str(uuid.uuid4())
    manage(env, "shell", "-c", f"""
from market.models import MarketPair
from transactions.models import Wallet
from automation.models import Automation
MarketPair.objects.create(name='{code}_USDC', network='testnet', base_code='{code}', base_issuer='{base.split(':')[1]}',
    counter_code='USDC', counter_issuer='{USDC_TESTNET}', enabled=True, horizon_url='{horizon.url}')
Wallet.objects.create(id='{wallet_id}', owner_id='{user}', public_key='{Keypair.random().public_key}')
Automation.objects.create(id='{automation_id}', owner_id='{user}', wallet_id='{wallet_id}', name='n', status='paused',
    pair='{code}_USDC', trigger_type='price_above', trigger_params={{"threshold": "2"}}, cooldown_seconds=3600)
""")
    server = start_daphne("galaxy.asgi:application", env, ROOT / "artifacts" / f"automation-in-process-{os.getpid()}.log")
    client = None
    try:
        client = await signed_in(server, user)
        assert (await client.call("automation:subscribe", {"automationIds": [automation_id]}))["ok"] is True
        enabled = await client.call("automation:enable", {"automationId": automation_id})
        assert enabled["ok"] is True and enabled["status"] == "active", enabled
        await asyncio.to_thread(trade, horizon, base, "1.0")
        path = database.removeprefix("sqlite:///")
        deadline = time.monotonic() + WAIT
        while True:
            with sqlite3.connect(path) as conn:
                row = conn.execute("SELECT condition_met FROM automation_automation WHERE id = ?", (automation_id.replace("-", ""),)).fetchone()
            if row and row[0] == 0:
                break
            assert time.monotonic() < deadline, f"not evaluated at 1.0: {row}"
            await asyncio.sleep(0.2)
        await asyncio.to_thread(trade, horizon, base, "2.5")
        triggered = await client.next("automation:triggered", timeout=WAIT)
        assert (triggered["automationId"], triggered["triggerData"]["price"]) == (automation_id, 2.5)
        executed = await client.next("automation:executed", timeout=WAIT)
        assert (executed["automationId"], executed["result"]) == (automation_id, "success")
        await asyncio.to_thread(trade, horizon, base, "1.0")
        await asyncio.to_thread(trade, horizon, base, "3.0")
        await client.none("automation:triggered", 2.0)  # within the cooldown
    finally:
        if client is not None:
            await client.close()
        server.stop()
