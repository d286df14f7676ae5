"""Calls that pile up while one is in flight go out together, as one batch.

A burst of connects is a burst of small Redis round trips (limit scripts, SUBSCRIBEs of new
users' rooms); one by one, each pays redis-py's per-command machinery and a write of its own.
A caller alone still goes at once (a batch of one): nothing waits for a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

# send(items) -> one result per item, in order; an Exception in the list is that item's failure.
SendBatch = Callable[[list], Awaitable[list]]


class Coalescer:
    def __init__(self, send: SendBatch) -> None:
        self._send_batch = send
        self._queue: list[tuple[Any, asyncio.Future]] = []
        self._sender: asyncio.Task | None = None  # held: the loop keeps only a weak reference

    def __call__(self, item: Any) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send())
        return future

    async def _send(self) -> None:
        batch: list[tuple[Any, asyncio.Future]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    results = await self._send_batch([item for item, _ in batch])
                except Exception as exc:  # the whole batch failed: every caller hears it
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results):
                    if future.done():  # its caller was cancelled
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._sender = None
            for _, future in batch + self._queue:  # cancelled itself: no caller waits forever
                future.cancel()
            self._queue = []
