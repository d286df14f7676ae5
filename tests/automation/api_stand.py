"""The API tests' stand: a real server (daphne on PostgreSQL, Redis channel layer so other
processes' emits reach it), tokens, wallets and automations made in the server's database, REST
calls, and the admin driven by Django's test client in a process of its own.

The test process never configures Django (other test packages choose their own settings);
everything Django runs in the server or in `manage.py` / driver subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import aiohttp
import jwt
import pytest
from stellar_sdk import Keypair

from tests.auth.clients import Client
from tests.servers import BASE_ENV, REDIS_URL, ROOT, fresh_postgres, manage, start_daphne

ARTIFACTS = ROOT / "artifacts"
JWT_SECRET = "automation-api-tests-hs256-secret-more-than-32-chars"
SUPABASE_URL = "http://127.0.0.1:54321"
RUN = f"autoapi{os.getpid()}"
SERVER_ENV = {
    "SUPABASE_URL": SUPABASE_URL, "SUPABASE_JWT_SECRET": JWT_SECRET, "SUPABASE_VERIFY_USER": "false",
    "RATE_LIMIT_REQUESTS": "100000", "RATE_LIMIT_HANDSHAKES": "100000",
    # Redis carries the admin driver's emits to the server; the prefixes keep this run's keys,
    # channels and queue apart from every other run sharing the Redis.
    "REDIS_URL": REDIS_URL, "REDIS_PREFIX": RUN, "CACHE_KEY_PREFIX": RUN, "CELERY_TASK_DEFAULT_QUEUE": RUN,
    "MARKET_FEED_IN_PROCESS": "false", "TRANSACTIONS_IN_PROCESS": "false",
    "STELLAR_HORIZON_URL": "http://127.0.0.1:9",  # nothing here talks to Horizon
}
ALICE, BOB, ADMIN = (str(uuid.uuid4()) for _ in range(3))


def token(user: str, permissions: list[str] | None = None, secret: str = JWT_SECRET) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user, "aud": "authenticated", "role": "authenticated", "iss": f"{SUPABASE_URL}/auth/v1",
                       "iat": now, "exp": now + 3600, "app_metadata": {"permissions": permissions or []}},
                      secret, algorithm="HS256")


def bearer(user: str | None) -> dict:
    if user is None:
        return {}
    return {"Authorization": f"Bearer {token(user, ['admin'] if user == ADMIN else [])}"}


async def rest(server, method: str, path: str, user: str | None, body=None, *, headers: dict | None = None):
    """(status, JSON body or None) of one REST call as `user` (None: no token)."""
    async with aiohttp.ClientSession() as session:
        async with session.request(method, f"{server.url}{path}", json=body,
                                   headers={**bearer(user), **(headers or {})}) as response:
            text = await response.text()
            return response.status, (json.loads(text) if text else None)


async def signed_in(server, user: str) -> Client:
    client = await Client().connect(server)
    reply = await client.authenticate(token(user, ["admin"] if user == ADMIN else []))
    assert reply["ok"] is True, reply
    await client.next("authenticated")
    return client


def run_django(env: dict, code: str) -> str:
    """`code` in `manage.py shell` against the server's database; its stdout."""
    return manage(env, "shell", "--no-imports", "-c", code).stdout


def make_wallet(env: dict, owner: str) -> str:
    wallet_id = str(uuid.uuid4())
    run_django(env, "from transactions.models import Wallet\n"
                    f"Wallet.objects.create(id={wallet_id!r}, owner_id={owner!r}, public_key={Keypair.random().public_key!r})")
    return wallet_id


def admin_requests(env: dict, steps: list[dict]) -> list[dict]:
    """Run `steps` ({method, path, data?}) through Django's test client logged in as a staff
    superuser, in a process of its own; each answer is {status, body, location}."""
    result = subprocess.run([sys.executable, "-m", "tests.automation.admin_driver"], cwd=ROOT, input=json.dumps(steps),
                            env={**os.environ, **BASE_ENV, **env}, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"admin driver failed:\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def env():
    url, drop = fresh_postgres()
    env = {**SERVER_ENV, "DATABASE_URL": url}
    manage(env, "migrate", "--noinput")
    yield env
    drop()


@pytest.fixture(scope="module")
def server(env):
    srv = start_daphne("galaxy.asgi:application", env, ARTIFACTS / f"automation-api-server-{os.getpid()}.log")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def wallets(env) -> dict[str, str]:
    return {"alice": make_wallet(env, ALICE), "alice2": make_wallet(env, ALICE), "bob": make_wallet(env, BOB)}


def automation_body(wallet_id: str, **overrides) -> dict:
    return {"name": "XLM above 0.12", "walletId": wallet_id, "pair": "XLM_USDC", "triggerType": "price_above",
            "triggerParams": {"threshold": "0.12"}, **overrides}


async def create(server, user: str, wallet_id: str, **overrides) -> dict:
    status, body = await rest(server, "POST", "/api/automations/", user, automation_body(wallet_id, **overrides))
    assert status == 201, body
    return body
