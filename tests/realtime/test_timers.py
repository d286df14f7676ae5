"""Timers on one loop timer: they fire in deadline order, at their time, cancelled ones never."""

from __future__ import annotations

import asyncio

from realtime.timers import Timers


async def test_timers_fire_in_deadline_order_and_cancelled_ones_do_not():
    timers, fired = Timers(), []
    loop = asyncio.get_running_loop()
    start = loop.time()
    timers.call_later(0.06, lambda: fired.append(("c", loop.time() - start)))
    timers.call_later(0.02, lambda: fired.append(("a", loop.time() - start)))
    cancelled = timers.call_later(0.03, fired.append, "never")
    timers.call_later(0.04, lambda: fired.append(("b", loop.time() - start)))
    cancelled.cancel()
    await asyncio.sleep(0.15)
    assert [name for name, _ in fired] == ["a", "b", "c"]
    assert all(at >= due for (_, at), due in zip(fired, (0.02, 0.04, 0.06)))  # never early
    assert len(timers) == 0


async def test_a_timer_set_from_a_callback_and_a_failing_callback_do_not_stop_the_rest():
    timers, fired = Timers(), []

    def chain():
        fired.append("first")
        timers.call_later(0.01, fired.append, "chained")

    def broken():
        raise RuntimeError("boom")

    timers.call_later(0.01, chain)
    timers.call_later(0.01, broken)
    timers.call_later(0.02, fired.append, "last")
    await asyncio.sleep(0.1)
    assert fired == ["first", "last", "chained"]  # "chained" is due no earlier than "last"


async def test_cancelled_timers_are_dropped_before_their_time_once_they_are_many():
    timers = Timers()
    live = timers.call_later(3600, lambda: None)
    for _ in range(Timers.COMPACT_AFTER * 2):
        timers.call_later(3600, lambda: None).cancel()  # an hour-long token on a socket that left
    assert len(timers) < Timers.COMPACT_AFTER + 2  # not every cancelled one is still held
    live.cancel()


async def test_an_earlier_timer_set_later_is_not_kept_waiting_by_a_later_one():
    timers, fired = Timers(), []
    timers.call_later(10, fired.append, "late")
    timers.call_later(0.01, fired.append, "early")
    await asyncio.sleep(0.05)
    assert fired == ["early"]
