"""Fixtures of the auth tests: a Supabase stand-in and real daphne servers pointed at it.

Each Supabase stand-in (tests/supabase) publishes an ES256 and an RS256 key and knows the
HS256 secret. `fleet` holds every server the tests use, all the product (plus
tests/e2e/testapp.py's emit endpoint): `main` on the in-memory layer with generous rate limits,
and the ones with other settings (rate limits, SUPABASE_VERIFY_USER, Redis, a JWKS cache of
its own), listed in FLEET.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.servers import BASE_ENV, REDIS_URL, ROOT, ServerProcess, free_port, manage, wait_for_port
from tests.supabase import SupabaseStandIn

ARTIFACTS = ROOT / "artifacts"
APP = "tests.e2e.testapp:application"
JWT_SECRET = "auth-tests-hs256-secret-with-more-than-32-characters"
ANON_KEY = "stand-in-anon-key"
# Every setting the auth code reads, given explicitly so the caller's environment cannot leak in.
AUTH_ENV = {
    "SUPABASE_JWT_SECRET": JWT_SECRET,
    "SUPABASE_ANON_KEY": ANON_KEY,
    "SUPABASE_VERIFY_USER": "false",
    "REDIS_URL": "",
    "TRUSTED_PROXIES": "",
    "MAX_CONNECTIONS_PER_USER": "5",
    "RATE_LIMIT_REQUESTS": "100000",
    "RATE_LIMIT_WINDOW_MS": "60000",
    "RATE_LIMIT_BLOCK_MS": "300000",
    "RATE_LIMIT_HANDSHAKES": "100000",
    # This run's own channels and keys on the shared Redis (pub/sub ignores database numbers).
    "REDIS_PREFIX": f"auth{os.getpid()}",
    # These servers' wallets are only room owners: the transaction watcher (tests/transactions)
    # would follow them on the default Horizon, and no test reaches the internet.
    "TRANSACTIONS_IN_PROCESS": "false",
}


def new_user() -> str:
    return str(uuid.uuid4())


def project() -> SupabaseStandIn:
    stand_in = SupabaseStandIn(jwt_secret=JWT_SECRET)
    stand_in.add_key("RS256")
    stand_in.add_key("ES256")
    return stand_in


@pytest.fixture(scope="session")
async def projects():
    """The Supabase projects: `main` for most servers; `jwks` and `verify` each count and fail
    for one server only (fetch counts, slowness and outages stay out of the other tests)."""
    stand_ins = {name: project() for name in ("main", "jwks", "verify")}
    for stand_in in stand_ins.values():
        await stand_in.start()
    yield stand_ins
    for stand_in in stand_ins.values():
        await stand_in.stop()


@pytest.fixture(scope="session")
def supabase(projects) -> SupabaseStandIn:
    return projects["main"]


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """One migrated SQLite file; each server gets a copy (migrate once, not per server)."""
    path = tmp_path_factory.mktemp("auth-db") / "template.sqlite3"
    manage({"DATABASE_URL": f"sqlite:///{path}"}, "migrate", "--noinput")
    return path


# The rate-limit tests' limits: small enough to reach in a test, windows short enough to wait out.
RATE_LIMITS = {
    "RATE_LIMIT_REQUESTS": "5",
    "RATE_LIMIT_WINDOW_MS": "1000",
    "RATE_LIMIT_BLOCK_MS": "1500",
    "RATE_LIMIT_HANDSHAKES": "3",
}
# Database 7 keeps the Redis servers' limiter keys apart from other test runs on database 0.
AUTH_REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/7"
# name -> (project, settings): every server the auth tests use.
FLEET = {
    "main": ("main", {}),
    "jwks": ("jwks", {}),  # a JWKS cache of its own, filled by test_jwks.py alone
    "rate-limited": ("main", {**RATE_LIMITS, "TRUSTED_PROXIES": "127.0.0.1"}),
    "rate-limited-untrusted": ("main", RATE_LIMITS),
    # One connection per user, so a slot that is never given back shows at once.
    # A short heartbeat: a polling client that vanishes between polls is noticed only by it.
    "verify-user": ("verify", {"SUPABASE_VERIFY_USER": "true", "MAX_CONNECTIONS_PER_USER": "1",
                               "HEARTBEAT_INTERVAL": "1000", "CONNECTION_TIMEOUT": "1000"}),
    "redis-1": ("main", {"REDIS_URL": AUTH_REDIS_URL}),
    "redis-2": ("main", {"REDIS_URL": AUTH_REDIS_URL}),
}


@pytest.fixture(scope="session")
def fleet(projects, migrated_db, tmp_path_factory) -> dict[str, ServerProcess]:
    """All servers, started together (a daphne takes a second or two to import) and stopped
    together. The two Redis servers share one database file; the others have a copy each."""
    directory = tmp_path_factory.mktemp("auth-db")
    pending = []
    for name, (project_name, settings) in FLEET.items():
        database = directory / f"{name.removesuffix('-1').removesuffix('-2')}.sqlite3"
        if not database.exists():
            shutil.copy(migrated_db, database)
        env = {**AUTH_ENV, "SUPABASE_URL": projects[project_name].url, "DATABASE_URL": f"sqlite:///{database}", **settings}
        port = free_port()
        log = ARTIFACTS / f"auth-{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), APP],
            cwd=ROOT, env={**os.environ, **BASE_ENV, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )
        pending.append((name, ServerProcess(f"http://127.0.0.1:{port}", port, process, log, env)))
    servers = {}
    try:
        for name, server in pending:
            wait_for_port(server.port, server.process)
            servers[name] = server
        yield servers
    finally:
        for _, server in pending:
            server.process.terminate()
        for _, server in pending:
            try:
                server.process.wait(1)  # daphne lingers over open connections; nothing here needs that
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


@pytest.fixture(scope="session")
def main_server(fleet) -> ServerProcess:
    return fleet["main"]


ALICE, BOB, CAROL = new_user(), new_user(), new_user()


@pytest.fixture(scope="session")
def owned(main_server) -> dict[str, dict[str, str]]:
    """A wallet and an automation each for alice, bob and carol, in the main server's database:
    {name: {"user", "wallet", "automation"}}."""
    users = {"alice": ALICE, "bob": BOB, "carol": CAROL}
    rows = wallets_and_automations(main_server, users)
    return {name: {"user": users[name], **rows[name]} for name in users}


def create_rows(server: ServerProcess, code: str) -> None:
    """Run Django shell code against `server`'s database (wallets, automations)."""
    manage({**server.env}, "shell", "-c", code)


def wallets_and_automations(server: ServerProcess, owners: dict[str, str]) -> dict[str, dict[str, str]]:
    """For each name -> owner id, a Wallet and an Automation owned by it: {name: {wallet, automation}}."""
    ids = {name: {"wallet": str(uuid.uuid4()), "automation": str(uuid.uuid4())} for name in owners}
    lines = ["from stellar_sdk import Keypair", "from transactions.models import Wallet",
             "from automation.models import Automation"]
    for name, owner in owners.items():
        lines.append(
            f"w = Wallet.objects.create(id={ids[name]['wallet']!r}, owner_id={owner!r}, "
            f"public_key=Keypair.random().public_key, label={name!r})"
        )
        lines.append(f"Automation.objects.create(id={ids[name]['automation']!r}, owner_id={owner!r}, wallet=w, name={name!r})")
    create_rows(server, "\n".join(lines))
    return ids
