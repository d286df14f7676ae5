"""The feed's Celery tasks through Celery itself: a worker with embedded beat on the Redis broker,
a daphne server on the Redis channel layer, and real clients."""

from __future__ import annotations

import pytest
from django.conf import settings

from galaxy.celery import app as galaxy_app
from market import selectors, services
from tests.market.conftest import create_pair, database_url, in_thread
from tests.market.inbox import Inbox
from tests.servers import ROOT, start_celery_worker, start_daphne, stop_process

# A task's trip through the broker and the worker takes well under a second; the rest is CI headroom.
TASK_SECONDS = 20


def stack_env(horizon) -> dict[str, str]:
    """What the worker and the server share: database, Redis cache and layer, broker, queue, Horizon."""
    return {
        "DJANGO_SETTINGS_MODULE": "galaxy.settings", "GALAXY_ENV_FILE": "/nonexistent",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.TEST_CACHE_URL, "CACHE_KEY_PREFIX": settings.RUN_ID,
        "CELERY_BROKER_URL": settings.TEST_BROKER_URL, "CELERY_RESULT_BACKEND": settings.TEST_BROKER_URL,
        "CELERY_TASK_DEFAULT_QUEUE": settings.RUN_ID,
        "STELLAR_HORIZON_URL": horizon.url, "MARKET_MIN_POLL_INTERVAL": "0.2",
        "HORIZON_REQUESTS_PER_HOUR": "1000000", "HORIZON_REQUEST_TIMEOUT": "1",
    }


@pytest.fixture(scope="module")
def worker(horizon, database, tmp_path_factory):
    process = start_celery_worker(stack_env(horizon), name=settings.RUN_ID, log=ROOT / "artifacts" / "market-celery-worker.log",
                                  beat_schedule=tmp_path_factory.mktemp("beat") / "schedule")
    yield process
    stop_process(process)


@pytest.fixture(scope="module")
def redis_server(worker, horizon):
    srv = start_daphne("galaxy.asgi:application", stack_env(horizon), ROOT / "artifacts" / "market-server-redis.log")
    yield srv
    srv.stop()


async def run_task(pair_id: int) -> dict:
    # Through the project's app by name: a thread's "current" Celery app is whatever another
    # package's test last made current in that thread (a task proxy's .delay follows it).
    return await in_thread(lambda: galaxy_app.send_task("market.poll_pair", args=[pair_id]).get(timeout=TASK_SECONDS))


async def test_the_poll_task_runs_in_the_worker_and_stores_the_snapshot(worker, horizon):
    # Disabled: beat leaves it alone, so only the tasks this test sends poll it.
    pair, script = await create_pair(horizon, enabled=False)
    await in_thread(script.trade, "7.0", "2")
    first = await run_task(pair.pk)
    assert first == {"pair": pair.name, "ok": True, "events": ["market:price_update", "market:orderbook_update"]}
    stored = await in_thread(selectors.snapshot, pair.name)
    assert stored["price"] == 7.0 and stored["sequence"] == 1

    await in_thread(script.trade, "7.5", "1")
    await in_thread(script.fail, 1, status=500)
    failed = await run_task(pair.pk)
    assert failed["ok"] is False and "500" in failed["error"] and failed["retryIn"] == 1.0
    assert (await in_thread(selectors.feed_pair_state, pair.name))["failures"] == 1

    recovered = await run_task(pair.pk)
    assert recovered["events"] == ["market:trade", "market:price_update"]
    assert (await in_thread(selectors.feed_pair_state, pair.name))["failures"] == 0
    assert (await run_task(pair.pk))["events"] == []  # the trade is not sent twice


async def test_changes_a_poll_never_sent_are_sent_by_the_next(worker, horizon):
    """A poller that dies or gives up while sending (a worker killed, or Redis away past its
    retries) has not stored what it saw: the next poll, the worker's task, sends the same trade
    and price under the same sequences, instead of never."""
    pair, script = await create_pair(horizon, enabled=False)
    await run_task(pair.pk)  # the market as it was: stored
    await in_thread(script.trade, "7.5", "1")
    lost: list = []

    def gone(events):
        lost.extend(events)
        raise ConnectionError("the worker is gone")

    with pytest.raises(ConnectionError):
        await in_thread(services.market_poll, pair=pair, publish=gone)
    assert "market:trade" in [event for _, event, _ in lost]
    again = await run_task(pair.pk)
    assert {"market:trade", "market:price_update"} <= set(again["events"])
    stored = await in_thread(selectors.snapshot, pair.name)
    assert stored["price"] == 7.5
    assert stored["sequence"] == max(data["sequence"] for _, event, data in lost if event != "market:orderbook_update")


async def test_a_429_pauses_the_whole_feed_for_retry_after(worker, horizon):
    pair, script = await create_pair(horizon, enabled=False)
    await in_thread(script.fail, 1, status=429, retry_after=30)
    result = await run_task(pair.pk)
    assert result["ok"] is False and result["retryIn"] == 30.0
    budget = await in_thread(selectors.feed_budget)
    assert budget["pausedUntil"] is not None and "429" in budget["pauseReason"]


async def test_beat_feeds_a_subscriber_through_the_redis_layer_and_recovers_from_failures(redis_server, horizon):
    pair, script = await create_pair(horizon)
    await in_thread(script.trade, "2.0", "1")
    await in_thread(script.book, [["1.9", "4"]], [["2.1", "5"]])
    inbox = await Inbox().connect(redis_server.url)
    try:
        ack = await inbox.call("market:subscribe", {"pairs": [pair.name]})
        assert ack["pairs"] == [pair.name]
        await inbox.call("market:subscribe_orderbook", {"pair": pair.name})
        assert (await inbox.wait_for("market:price_update"))["price"] == 2.0
        await inbox.wait_for("market:orderbook_update", lambda d: d["bids"] == [[1.9, 4.0]])

        made = await in_thread(script.trade, "2.2", "3", False)
        trade = await inbox.wait_for("market:trade")
        assert trade == {"pair": pair.name, "price": 2.2, "volume": 3.0, "side": "buy", "id": made["paging_token"],
                         "tradedAt": trade["tradedAt"], "timestamp": trade["timestamp"], "sequence": trade["sequence"]}
        await inbox.wait_for("market:price_update", lambda d: d["price"] == 2.2)

        await in_thread(script.fail, 2, status=503)
        later = await in_thread(script.trade, "2.3", "1")
        await inbox.wait_for("market:trade", lambda d: d["id"] == later["paging_token"])
        await in_thread(script.book, [["2.25", "1"]], [["2.35", "1"]])
        await inbox.wait_for("market:orderbook_update", lambda d: d["bids"] == [[2.25, 1.0]])
        assert [t["id"] for t in inbox.of("market:trade")] == [made["paging_token"], later["paging_token"]]
    finally:
        await inbox.close()
