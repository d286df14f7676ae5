"""The market events and the feed endpoint while Redis (the cache that holds the snapshots) is
away: a daphne server on a Redis of the test's own, stopped on purpose, and a real client."""

from __future__ import annotations

import aiohttp
import pytest

from tests.market.conftest import database_url
from tests.redisproc import RedisProcess
from tests.servers import ROOT, start_daphne


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory):
    server = RedisProcess(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(own_redis, horizon, database):
    srv = start_daphne("galaxy.asgi:application", {
        "DATABASE_URL": database_url(), "REDIS_URL": own_redis.url, "STELLAR_HORIZON_URL": horizon.url,
        "HORIZON_REQUEST_TIMEOUT": "1",
    }, ROOT / "artifacts" / "market-server-redis-outage.log")
    yield srv
    srv.stop()


@pytest.fixture
def redis_away(server, own_redis):
    """Redis stopped for the test, started again after it (the server outlives the outage)."""
    own_redis.stop()
    yield
    own_redis.start()


async def test_market_events_answer_without_the_cache_as_without_a_snapshot(server, inbox, redis_away):
    """A cache that cannot be read has no snapshot to give: the subscriptions succeed (the
    feed's first update reaches the room) and a snapshot asked for is unavailable, not an
    internal error after a `subscribed` that says otherwise."""
    ack = await inbox.call("market:subscribe", {"pairs": ["XLM_USDC"]})
    assert ack == {"ok": True, "pairs": ["XLM_USDC"], "rejected": []}
    assert (await inbox.wait_for("subscribed"))["room"] == "market:XLM_USDC"

    ack = await inbox.call("market:subscribe_orderbook", {"pair": "XLM_USDC"})
    assert ack == {"ok": True, "pair": "XLM_USDC", "room": "market:XLM_USDC:orderbook"}

    ack = await inbox.call("market:get_snapshot", {"pair": "XLM_USDC"})
    assert ack["ok"] is False and ack["error"]["code"] == "market_data_unavailable"
    assert [name for name, _ in inbox.events if name != "connected"] == ["subscribed", "subscribed"]  # no `error`


async def test_the_feed_endpoint_says_the_cache_is_away(server, redis_away):
    """The feed's spend, pauses and per-pair state live in Redis: without it, a 503 the client
    can act on, as while the database is away, not a 500."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/market/feed") as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "5"
            body = await response.json()
    assert body["code"] == "service_unavailable" and "Redis" in body["message"]
