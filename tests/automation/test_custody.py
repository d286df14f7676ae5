"""Custodial keys and WALLET_ENCRYPTION_KEY, in a real process on its own SQLite database: the
command, the store's checks, and a payment run refused without the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from cryptography.fernet import Fernet
from stellar_sdk import Keypair

from tests.servers import BASE_ENV, ROOT, fresh_sqlite, manage

KEY = Fernet.generate_key().decode()


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    env = {"DATABASE_URL": fresh_sqlite(tmp_path_factory.mktemp("custody-db")), "REDIS_URL": "",
           "WALLET_ENCRYPTION_KEY": KEY, "STELLAR_HORIZON_URL": "http://127.0.0.1:9", "LOG_LEVEL": "debug"}
    manage(env, "migrate", "--noinput")
    return env


def wallet(env: dict, keypair: Keypair) -> str:
    wallet_id = str(uuid.uuid4())
    manage(env, "shell", "-c", f"from transactions.models import Wallet; Wallet.objects.create(id='{wallet_id}', "
                               f"owner_id='u1', public_key='{keypair.public_key}')")
    return wallet_id


def set_key(env: dict, wallet_id: str, secret: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "set_custodial_key", wallet_id], input=secret + "\n", cwd=ROOT,
                          env={**os.environ, **BASE_ENV, **env}, capture_output=True, text=True, timeout=120)


def py(env: dict, code: str) -> dict:
    """Run `code` (which sets `out`) in a Django shell of `env`; `out` as JSON, and the output."""
    result = manage(env, "shell", "-c", code + "\nimport json; print('OUT=' + json.dumps(out))")
    line = next(line for line in result.stdout.splitlines() if line.startswith("OUT="))
    return {"out": json.loads(line[4:]), "all": result.stdout + result.stderr}


def test_the_command_stores_only_ciphertext_of_the_wallets_own_seed(env):
    keypair = Keypair.random()
    wallet_id = wallet(env, keypair)
    wrong = set_key(env, wallet_id, Keypair.random().secret)
    assert wrong.returncode != 0 and "not the key of wallet" in wrong.stderr
    garbage = set_key(env, wallet_id, "SNOTASEED")
    assert garbage.returncode != 0 and "not a Stellar secret seed" in garbage.stderr and "SNOTASEED" not in garbage.stderr
    assert set_key(env, str(uuid.uuid4()), keypair.secret).returncode != 0  # no such wallet

    stored = set_key(env, wallet_id, keypair.secret)
    assert stored.returncode == 0 and keypair.public_key in stored.stdout and keypair.secret not in stored.stdout + stored.stderr
    result = py(env, f"""
from automation.custody import custodial_keypair
from automation.models import CustodialKey
from transactions.models import Wallet
w = Wallet.objects.get(pk='{wallet_id}')
row = CustodialKey.objects.get(wallet=w)
out = {{"ciphertext": bytes(row.ciphertext).decode(), "public": custodial_keypair(wallet=w).public_key}}
""")
    assert result["out"]["public"] == keypair.public_key
    assert keypair.secret not in result["out"]["ciphertext"] and Fernet(KEY).decrypt(result["out"]["ciphertext"].encode()).decode() == keypair.secret
    assert keypair.secret not in result["all"]


def test_under_another_encryption_key_a_stored_seed_is_refused_not_misread(env):
    keypair = Keypair.random()
    wallet_id = wallet(env, keypair)
    assert set_key(env, wallet_id, keypair.secret).returncode == 0
    result = py({**env, "WALLET_ENCRYPTION_KEY": Fernet.generate_key().decode()}, f"""
from automation.custody import CustodyError, custodial_keypair
from transactions.models import Wallet
try:
    custodial_keypair(wallet=Wallet.objects.get(pk='{wallet_id}'))
    out = "signed"
except CustodyError as exc:
    out = exc.code
""")
    assert result["out"] == "custodial_key_invalid"
    assert py({**env, "WALLET_ENCRYPTION_KEY": "not-a-fernet-key"}, f"""
from automation.custody import CustodyError, custodial_keypair
from transactions.models import Wallet
try:
    custodial_keypair(wallet=Wallet.objects.get(pk='{wallet_id}'))
    out = "signed"
except CustodyError as exc:
    out = exc.code
""")["out"] == "custody_unavailable"


def test_without_wallet_encryption_key_nothing_is_stored_and_a_payment_run_ends_in_automation_error(env):
    keypair = Keypair.random()
    wallet_id = wallet(env, keypair)
    no_key = {**env, "WALLET_ENCRYPTION_KEY": ""}
    refused = set_key(no_key, wallet_id, keypair.secret)
    assert refused.returncode != 0 and "WALLET_ENCRYPTION_KEY is not set" in refused.stderr

    assert set_key(env, wallet_id, keypair.secret).returncode == 0  # stored while the key was configured
    result = py(no_key, f"""
from automation.models import Automation, AutomationRun
from automation.announcements import runs_announce_now
from automation.execution import run_execute
a = Automation.objects.create(owner_id='u1', wallet_id='{wallet_id}', name='pay', status='active', pair='XLM_USDC',
    trigger_type='price_above', trigger_params={{"threshold": "1"}}, action_type='payment',
    action_params={{"destination": "{Keypair.random().public_key}", "amount": "5", "asset": "XLM"}})
# Its triggered went out: the ending is what it owes.
run = AutomationRun.objects.create(automation=a, sequence=1, trigger_condition='t', trigger_data={{}},
                                   announced=AutomationRun.Announced.TRIGGERED)
events = [event for _, _, event in runs_announce_now(run_ids=run_execute(run_id=str(run.pk)))]
run.refresh_from_db()
out = {{"events": events, "run": [run.status, run.error_code, run.transaction_hash], "automation": str(a.pk)}}
""")
    (rooms, event, data), = result["out"]["events"]
    automation_id = result["out"]["automation"]
    assert event == "automation:error" and rooms == [f"automation:{automation_id}", "user:u1"]
    assert set(data) == {"automationId", "userId", "walletId", "error", "errorCode", "errorAt"}
    assert (data["errorCode"], data["walletId"], data["userId"]) == ("custody_unavailable", wallet_id, "u1")
    assert result["out"]["run"] == ["failed", "custody_unavailable", ""]  # nothing was signed or sent
    assert keypair.secret not in result["all"]
