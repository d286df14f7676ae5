"""Timers by the thousand on one event-loop timer: a heap of deadlines, as Node keeps its timers.

Every session has a heartbeat timer and every signed-in socket one for its token's expiry. A
loop timer each costs about half a kilobyte (uvloop's handle, its libuv timer, a copied context):
a twentieth of what a connection costs in all. Here a timer is a small entry in a heap, and one
loop timer waits for the earliest of them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Timer:
    """One pending call; `cancel` as asyncio's TimerHandle."""

    __slots__ = ("callback", "args", "owner")

    def __init__(self, callback: Callable, args: tuple, owner: Timers) -> None:
        self.callback, self.args, self.owner = callback, args, owner

    def cancel(self) -> None:
        if self.callback is not None:
            self.callback, self.args = None, ()  # let go of what it would have called
            self.owner.cancelled()


class Timers:
    # Cancelled timers stay in the heap until their time comes (a token's hour, say); past
    # this many, and more than the live ones, the heap is rebuilt without them.
    COMPACT_AFTER = 1000

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()  # equal deadlines fire in the order they were set
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None
        self._cancelled = 0

    def call_later(self, delay: float, callback: Callable, *args) -> Timer:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (tests): the old one's timers will never fire
            self._loop, self._heap, self._handle, self._armed_for, self._cancelled = loop, [], None, None, 0
        when = loop.time() + delay
        timer = Timer(callback, args, self)
        heapq.heappush(self._heap, (when, next(self._order), timer))
        if self._armed_for is None or when < self._armed_for:
            self._arm(when)
        return timer

    def __len__(self) -> int:
        """Timers waiting, cancelled ones included until they are dropped."""
        return len(self._heap)

    def cancelled(self) -> None:
        self._cancelled += 1
        if self._cancelled > self.COMPACT_AFTER and self._cancelled * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if entry[2].callback is not None]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_for = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = self._armed_for = None
        now = self._loop.time()
        # self._heap each time round: a callback may set timers, or cancel enough to compact.
        while self._heap and self._heap[0][0] <= now:
            timer = heapq.heappop(self._heap)[2]
            callback, args = timer.callback, timer.args
            if callback is None:
                self._cancelled -= 1
                continue
            timer.callback, timer.args = None, ()
            try:
                callback(*args)
            except Exception:  # one failing callback must not keep the others from firing
                logger.exception("timer callback %r failed", callback)
        if self._heap:
            self._arm(self._heap[0][0])
