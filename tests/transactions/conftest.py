"""Transaction test fixtures: the local Horizon, real servers with their own databases, signed-in
clients, wallets. The test process never configures Django: everything runs in the servers."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import jwt
import pytest
import requests
from stellar_sdk import Keypair

from tests.auth.clients import Client
from tests.horizon.server import TEST_RATE_LIMIT, HorizonThread
from tests.servers import ROOT, fresh_sqlite, manage, start_daphne

ARTIFACTS = ROOT / "artifacts"
JWT_SECRET = "transactions-tests-hs256-secret-with-more-than-32-chars"
SUPABASE_URL = "http://127.0.0.1:54321"
# Short enough to observe confirmations and timeouts in a test, long enough for a loaded box.
POLL_INTERVAL = "0.3"
DEADLINE_SECONDS = 4
SERVER_ENV = {
    "SUPABASE_URL": SUPABASE_URL, "SUPABASE_JWT_SECRET": JWT_SECRET, "SUPABASE_VERIFY_USER": "false",
    "REDIS_URL": "", "RATE_LIMIT_REQUESTS": "100000", "RATE_LIMIT_HANDSHAKES": "100000",
    "TRANSACTION_POLL_INTERVAL": POLL_INTERVAL, "TRANSACTION_DEADLINE_SECONDS": str(DEADLINE_SECONDS),
    "HORIZON_REQUEST_TIMEOUT": "2", "HORIZON_REQUESTS_PER_HOUR": "1000000",
}


def token(user: str) -> str:
    """What `manage.py mint_token --user` prints, signed with these servers' secret."""
    now = int(time.time())
    return jwt.encode({"sub": user, "aud": "authenticated", "role": "authenticated", "iss": f"{SUPABASE_URL}/auth/v1",
                       "iat": now, "exp": now + 3600, "app_metadata": {"permissions": []}}, JWT_SECRET, algorithm="HS256")


class Horizon:
    """The local Horizon and its control API."""

    def __init__(self, thread: HorizonThread) -> None:
        self.thread, self.url = thread, thread.url

    def control(self, path: str, body: dict | None = None):
        response = requests.post(f"{self.url}/_control/{path}", json=body or {}, timeout=10)
        response.raise_for_status()
        return response.json()

    def transaction(self, source: str, destination: str, amount: str = "10", **kwargs) -> dict:
        return self.control("transaction", {"source": source, "destination": destination, "amount": amount, **kwargs})

    async def watched(self, account: str, timeout: float = 30) -> None:
        """Until someone (a watcher) has asked for the account's transactions: its first look
        sets the wallet's cursor at the newest one, so what the account does after it is news."""
        await self.thread.served(f"/accounts/{account}/transactions", timeout=timeout)
        await asyncio.sleep(0.3)  # the watcher stores the cursor it just read


@pytest.fixture(scope="session")
def horizon():
    thread = HorizonThread(rate_limit=TEST_RATE_LIMIT).start()
    yield Horizon(thread)
    thread.stop()


def make_wallets(env: dict, owners: dict[str, str], keys: dict[str, str] | None = None) -> dict[str, dict]:
    """{name: {"id", "user", "key"}}: one active testnet wallet per name, owned by owners[name]."""
    keys = keys or {}
    made = {name: {"id": str(uuid.uuid4()), "user": owner, "key": keys.get(name) or Keypair.random().public_key}
            for name, owner in owners.items()}
    lines = ["from transactions.models import Wallet"]
    for name, row in made.items():
        lines.append(f"Wallet.objects.create(id={row['id']!r}, owner_id={row['user']!r}, public_key={row['key']!r}, label={name!r})")
    manage(env, "shell", "-c", "\n".join(lines))
    return made


@pytest.fixture(scope="module")
def env(horizon, tmp_path_factory) -> dict:
    env = {**SERVER_ENV, "STELLAR_HORIZON_URL": horizon.url, "DATABASE_URL": fresh_sqlite(tmp_path_factory.mktemp("tx-db"))}
    manage(env, "migrate", "--noinput")
    return env


@pytest.fixture(scope="module")
def server(env):
    """The embedded default (daphne, in-memory layer, SQLite): the watcher runs in-process."""
    srv = start_daphne("galaxy.asgi:application", env, ARTIFACTS / f"transactions-server-{os.getpid()}.log")
    yield srv
    srv.stop()


async def signed_in(server, user: str) -> Client:
    client = await Client().connect(server)
    reply = await client.authenticate(token(user))
    assert reply["ok"] is True, reply
    await client.next("authenticated")
    return client


async def a_429_pauses_the_watcher(horizon, wallet: dict, client: Client) -> None:
    """Horizon answers the watcher's next look at `wallet` with 429, Retry-After 3: for 2 s it
    asks nothing more about it (it went on at every 0.3 s pass, keeping the limit hit), then a
    payment made meanwhile reaches `client` (in the wallet's rooms)."""
    path = f"/accounts/{wallet['key']}/transactions"
    await horizon.watched(wallet["key"])
    asked = lambda: horizon.thread.requests_served().get(path, 0)  # noqa: E731
    await asyncio.to_thread(horizon.control, "fail", {"count": 1, "status": 429, "retry_after": 3, "match": wallet["key"]})
    await horizon.thread.served(path, more_than=await asyncio.to_thread(asked))  # the 429 went out
    after_429 = await asyncio.to_thread(asked)
    record = await asyncio.to_thread(horizon.transaction, Keypair.random().public_key, wallet["key"], "5")
    await asyncio.sleep(2)
    assert await asyncio.to_thread(asked) == after_429  # not one request in the pause
    assert (await client.next("transaction:confirmed", timeout=15))["hash"] == record["hash"]
