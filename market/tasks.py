"""The feed's interfaces: Celery beat tasks, and the same loop in-process for the embedded default.

Each loads pairs, calls a service, emits what the service decided through realtime's emit API;
backoff after failures lives here. The beat schedule is declared in settings (CELERY_BEAT_SCHEDULE).
"""

from __future__ import annotations

import asyncio
import logging
import time

from celery import shared_task
from channels.db import database_sync_to_async
from django.conf import settings

from realtime.api import emit, emit_sync
from realtime.emit import EmitFailed

from . import selectors, services
from .signals import asend_price_updates, send_price_updates
from .models import MarketPair
from .services import HorizonUnavailable

logger = logging.getLogger(__name__)

# After a failed poll a pair waits 1 s, doubling per consecutive failure, up to 5 minutes:
# Horizon incidents usually last seconds to minutes, and clients should not wait much longer
# than that for data once Horizon is back.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0
# How long a poll task keeps retrying an emit through a channel-layer (Redis) fault.
EMIT_RETRY_SECONDS = 300.0


def backoff_seconds(failures: int) -> float:
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, failures - 1))


def handle_poll_failure(pair: MarketPair, exc: HorizonUnavailable) -> dict:
    """Back off the pair (or, on 429, the whole feed) and say what happened; nothing is emitted."""
    failures = selectors.feed_pair_state(pair.name).get("failures", 0) + 1
    delay = exc.retry_after if exc.retry_after is not None else backoff_seconds(failures)
    if exc.rate_limited:
        services.feed_pause(seconds=exc.retry_after if exc.retry_after is not None else services.RATE_LIMIT_DEFAULT_PAUSE, reason=str(exc))
    services.feed_record_failure(name=pair.name, delay=delay, error=str(exc))
    logger.warning("market feed: %s failed (%s); next try in %.1f s", pair.name, exc, delay)
    return {"pair": pair.name, "ok": False, "error": str(exc), "retryIn": delay}


def poll_result(pair: MarketPair, events: list | None) -> dict:
    if events is None:
        return {"pair": pair.name, "ok": True, "skipped": "another process is polling this pair"}
    services.feed_record_success(name=pair.name, events=len(events))
    return {"pair": pair.name, "ok": True, "events": [name for _, name, _ in events]}


@shared_task(name="market.feed_tick", ignore_result=True)
def feed_tick() -> None:
    """Beat's heartbeat: queue a poll for every pair whose budgeted interval has elapsed."""
    services.feed_record_beat()
    if settings.MARKET_FEED_MODE == "stream":
        return  # `manage.py market_stream` drives the feed
    for pair in services.feed_claim_due_pairs():
        market_poll_pair.delay(pair.pk)


@shared_task(name="market.poll_pair")
def market_poll_pair(pair_id: int) -> dict:
    pair = selectors.pair_by_id(pair_id)
    def publish(events) -> None:
        # Before the snapshot moves on (services.market_poll): a Redis fault is waited out here,
        # for all of them together (Redis is also the broker: the worker could do nothing else);
        # past it, or if the worker dies, the next poll sends them.
        deadline = time.monotonic() + EMIT_RETRY_SECONDS
        for room, event, data in events:
            left = deadline - time.monotonic()
            if left <= 0:
                raise EmitFailed(f"{event} to {room} not sent within {EMIT_RETRY_SECONDS:.0f} s: the next poll sends it")
            emit_sync(room, event, data, retry_for=left)  # each try ends by the deadline too

    try:
        # The lock outlasts the publish (a try may end a second past its deadline): no other
        # poll of the pair finds the old snapshot and sends the same events meanwhile.
        events = services.market_poll(pair=pair, publish=publish, publish_seconds=EMIT_RETRY_SECONDS + 5)
    except HorizonUnavailable as exc:
        return handle_poll_failure(pair, exc)
    send_price_updates(events)
    return poll_result(pair, events)


class InProcessFeed:
    """The feed inside the server process (no Redis, so no Celery): the same claim, poll, emit.

    Each pair's poll is a task of its own, as each is a Celery task in production: a pair whose
    Horizon hangs (each pair may have its own) holds up nobody else's updates.
    """

    _task: asyncio.Task | None = None

    def __init__(self) -> None:
        self._polling: dict[str, asyncio.Task] = {}  # pair name -> its poll still running

    @classmethod
    def ensure_running(cls) -> None:
        if cls._task is None or cls._task.done():
            cls._task = asyncio.ensure_future(cls().run())

    async def run(self) -> None:
        logger.info("market feed running in-process against %s", settings.STELLAR_HORIZON_URL)
        while True:
            try:
                for pair in await database_sync_to_async(services.feed_claim_due_pairs)():
                    if pair.name not in self._polling:  # still at its last poll: it waits its turn
                        self._polling[pair.name] = task = asyncio.ensure_future(self._poll_logged(pair))
                        task.add_done_callback(lambda _, name=pair.name: self._polling.pop(name, None))
            except Exception:  # a bug or a database hiccup must not end the feed
                logger.exception("market feed tick failed")
            await asyncio.sleep(settings.MARKET_MIN_POLL_INTERVAL)

    async def _poll_logged(self, pair: MarketPair) -> None:
        try:
            await self.poll(pair)
        except Exception:
            logger.exception("market feed: polling %s failed", pair.name)

    async def poll(self, pair: MarketPair) -> dict:
        try:
            events = await services.market_apoll(pair=pair)
        except HorizonUnavailable as exc:
            return await database_sync_to_async(handle_poll_failure)(pair, exc)
        for room, event, data in events or []:
            await emit(room, event, data)
        await asend_price_updates(events)
        return await database_sync_to_async(poll_result)(pair, events)


def ensure_feed_running() -> None:
    """Start the in-process feed on the embedded default (called on the first market event)."""
    if settings.MARKET_FEED_IN_PROCESS:
        if settings.MARKET_FEED_MODE == "stream":
            from .streaming import StreamFeed

            if InProcessFeed._task is None or InProcessFeed._task.done():
                InProcessFeed._task = asyncio.ensure_future(StreamFeed().run())
        else:
            InProcessFeed.ensure_running()


