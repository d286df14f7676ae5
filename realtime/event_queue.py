"""Emits that could not reach the channel layer, kept and retried until they get through.

Seed: "reliable event delivery with retry mechanisms". A passing Redis fault must not lose a
producer's event: it waits here (bounded: the oldest is dropped, counted and logged, when full)
and a background task retries with exponential backoff and jitter, in order.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from typing import Any, Awaitable, Callable

logger = logging.getLogger(__name__)

# Retry delays: 0.1 s doubling to 10 s. Short enough that a Redis restart costs clients a few
# seconds at most, long enough not to hammer a Redis that is down for minutes.
FIRST_RETRY_SECONDS = 0.1
MAX_RETRY_SECONDS = 10.0


class EventQueue:
    def __init__(self, maxsize: int, deliver: Callable[[Any], Awaitable[None]]) -> None:
        self.maxsize = maxsize
        self.deliver = deliver
        self._items: deque[tuple[float, Any]] = deque()
        self._drainer: asyncio.Task | None = None
        self.retries = 0
        self.dropped = 0
        self.delivered = 0

    @property
    def pending(self) -> bool:
        return bool(self._items)

    def put(self, item: Any) -> None:
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self.dropped += 1
            logger.warning("event queue full (%d): dropped the oldest event (%d dropped so far)", self.maxsize, self.dropped)
        self._items.append((time.time(), item))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while self._items:
            try:
                await self.deliver(self._items[0][1])
            except Exception as exc:
                self.retries += 1
                logger.warning("event delivery failed, retrying in %.1f s: %s", delay, exc)
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, MAX_RETRY_SECONDS)
                continue
            self._items.popleft()
            self.delivered += 1
            delay = FIRST_RETRY_SECONDS

    def stats(self) -> dict:
        """The seed's `events` block of /metrics, plus retries and drops."""
        oldest = self._items[0][0] if self._items else None
        return {
            "queueSize": len(self._items),
            "maxQueueSize": self.maxsize,
            "oldestItem": int(oldest * 1000) if oldest is not None else None,
            "retries": self.retries,
            "dropped": self.dropped,
        }
