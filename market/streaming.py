"""MARKET_FEED_MODE=stream: one supervised process follows every enabled pair over Horizon SSE.

For operators with their own Horizon (Horizon counts each streamed update against the public
rate limit). Per pair, one task keeps the SSE streams open (reconnecting with backoff and
jitter) and another polls whenever they report a change, plus once a minute so the 24 h figures
move even when nothing trades; polls and emits are exactly the poll mode's.
"""

from __future__ import annotations

import asyncio
import logging
import random

from channels.db import database_sync_to_async

from realtime.api import emit

from . import selectors, services
from .models import MarketPair
from .signals import asend_price_updates

logger = logging.getLogger(__name__)

# The 24 h figures change as old trades leave the window: look at least this often.
QUIET_POLL_SECONDS = 60.0
# Reconnect delays after a broken stream: 1 s doubling to 60 s, with jitter so a Horizon
# restart is not met by every pair reconnecting at the same instant.
RECONNECT_FIRST_SECONDS = 1.0
RECONNECT_MAX_SECONDS = 60.0


class StreamFeed:
    def __init__(self) -> None:
        self.tasks: list[asyncio.Task] = []

    async def run(self) -> None:
        # Every enabled pair, watched or not: an open stream costs the operator's own Horizon
        # nothing until something moves, and the set of pairs is fixed for the process's life.
        pairs = await database_sync_to_async(selectors.active_pairs)(occupied=None)
        logger.info("market feed streaming %s", ", ".join(pair.name for pair in pairs) or "no pairs")
        for pair in pairs:
            changed = asyncio.Event()
            changed.set()  # a first poll at once: the snapshot and the cursor to resume from
            self.tasks += [asyncio.ensure_future(self.follow(pair, changed)), asyncio.ensure_future(self.poll_on_change(pair, changed))]
        await asyncio.gather(*self.tasks)

    async def follow(self, pair: MarketPair, changed: asyncio.Event) -> None:
        delay = RECONNECT_FIRST_SECONDS
        while True:
            try:
                await services.market_stream_changes(pair=pair, changed=changed)
            except services.HorizonUnavailable as exc:
                wait = exc.retry_after if exc.retry_after is not None else delay
                logger.warning("market stream %s broke (%s); reconnecting in %.1f s", pair.name, exc, wait)
                await asyncio.sleep(wait * random.uniform(0.8, 1.2))
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
                changed.set()  # anything missed while down is caught up by the next poll
            else:
                delay = RECONNECT_FIRST_SECONDS

    async def poll_on_change(self, pair: MarketPair, changed: asyncio.Event) -> None:
        while True:
            try:
                await asyncio.wait_for(changed.wait(), QUIET_POLL_SECONDS)
            except asyncio.TimeoutError:
                pass
            changed.clear()
            await database_sync_to_async(services.feed_record_beat)()  # /health: the feed is alive
            try:
                events = await services.market_apoll(pair=pair)
            except services.HorizonUnavailable as exc:
                logger.warning("market poll %s failed in stream mode: %s", pair.name, exc)
                continue
            for room, event, data in events or []:
                await emit(room, event, data)
            await asend_price_updates(events)
