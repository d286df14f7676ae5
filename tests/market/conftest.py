"""Market test fixtures: Django on a PostgreSQL test database, the local Horizon, scripted pairs."""

from __future__ import annotations

import asyncio
import itertools
import os

import django
import pytest
import redis
import requests
from django.conf import settings

os.environ.setdefault("GALAXY_ENV_FILE", "/nonexistent")  # a developer's .env must not leak in
if not settings.configured:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.market.settings"
    django.setup()

from django.core.cache import cache  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402
from stellar_sdk import Keypair  # noqa: E402

from market import selectors  # noqa: E402
from market.models import MarketPair  # noqa: E402
from tests.horizon.server import TEST_RATE_LIMIT, HorizonThread  # noqa: E402
from tests.horizon.world import USDC_TESTNET  # noqa: E402
from tests.market.inbox import Inbox  # noqa: E402
from tests.servers import ROOT, start_daphne  # noqa: E402

USDC = f"USDC:{USDC_TESTNET}"
XLM_USDC = ("native", USDC)
_names = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def database():
    if settings.SETTINGS_MODULE != "tests.market.settings":
        pytest.fail("tests/market needs its own settings; another package configured Django first")
    old = setup_databases(verbosity=0, interactive=False)
    yield connection.settings_dict
    connection.close()
    teardown_databases(old, verbosity=0)
    # This run's cache keys (DB 4) and Celery queue and results (DB 3): other runs share those DBs.
    forget_redis_keys(settings.TEST_CACHE_URL, f"{settings.RUN_ID}:*")
    forget_redis_keys(settings.TEST_BROKER_URL, f"*{settings.RUN_ID}*")


def forget_redis_keys(url: str, pattern: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)
    finally:
        client.close()


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"




@pytest.fixture(scope="session")
def horizon():
    server = HorizonThread(rate_limit=TEST_RATE_LIMIT).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def clean_feed_state():
    """The feed-wide keys (pause, rate-limit headers) start each test empty."""
    cache.delete_many([selectors.PAUSE_KEY, selectors.RATELIMIT_KEY])
    yield
    cache.delete_many([selectors.PAUSE_KEY, selectors.RATELIMIT_KEY])


class Script:
    """Drives the local Horizon through its control API for one pair."""

    def __init__(self, horizon: HorizonThread, base: str, counter: str) -> None:
        self.horizon, self.url, self.base, self.counter = horizon, horizon.url, base, counter

    def post(self, path: str, body: dict) -> dict:
        response = requests.post(f"{self.url}/_control/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def trade(self, price, amount, base_is_seller: bool = True) -> dict:
        return self.post("trade", {"base": self.base, "counter": self.counter, "price": str(price), "amount": str(amount), "base_is_seller": base_is_seller})

    def book(self, bids, asks) -> None:
        self.post("orderbook", {"base": self.base, "counter": self.counter, "bids": bids, "asks": asks})

    def fail(self, count: int = 1, **kwargs) -> None:
        """The next `count` requests about this pair fail (other pairs' requests are served)."""
        self.post("fail", {"count": count, "match": self.base.split(":")[0], **kwargs})

    def requests_served(self) -> dict:
        return self.horizon.requests_served()


def make_pair(horizon, *, enabled: bool = True, on_default_horizon: bool = False) -> tuple[MarketPair, Script]:
    """A fresh pair of its own (own asset, own rooms, own snapshot) served by the local Horizon."""
    code = f"TST{next(_names)}{os.getpid() % 1000}"
    issuer = Keypair.random().public_key
    pair = MarketPair.objects.create(
        name=f"{code}_USDC", network=settings.STELLAR_NETWORK, base_code=code, base_issuer=issuer,
        counter_code="USDC", counter_issuer=USDC_TESTNET, enabled=enabled,
        horizon_url="" if on_default_horizon else horizon.url,
    )
    return pair, Script(horizon, f"{code}:{issuer}", USDC)


async def in_thread(fn, *args, **kwargs):
    """Run sync code (ORM, cache, the Horizon script) from an async test, in a thread whose
    database connection is closed after (else the test database could not be dropped)."""

    def run():
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    return await asyncio.to_thread(run)


async def create_pair(horizon, **kwargs) -> tuple[MarketPair, Script]:
    return await in_thread(make_pair, horizon, **kwargs)


def start_embedded_server(horizon, log_name: str, request_timeout: str):
    """daphne on the embedded default (in-process feed, in-memory layer), polling every 0.2 s
    with an unlimited Horizon budget; `request_timeout` is HORIZON_REQUEST_TIMEOUT."""
    return start_daphne("galaxy.asgi:application", {
        "DATABASE_URL": database_url(),
        "STELLAR_HORIZON_URL": horizon.url,
        "MARKET_MIN_POLL_INTERVAL": "0.2",
        "HORIZON_REQUESTS_PER_HOUR": "1000000",
        "HORIZON_REQUEST_TIMEOUT": request_timeout,
    }, ROOT / "artifacts" / log_name)


@pytest.fixture
async def inbox(server):
    """A socket on the module's `server`, recording what it hears (tests/market/inbox.py)."""
    box = await Inbox().connect(server.url)
    yield box
    await box.close()
