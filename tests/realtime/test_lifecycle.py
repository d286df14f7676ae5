"""ROOM_CLEANUP_INTERVAL: the periodic sweep runs every cleanup and survives a failing one."""

from __future__ import annotations

import asyncio
import signal

from realtime.lifecycle import Lifecycle
from realtime.ratelimit import MemoryRateLimiter
from realtime.recovery import MemorySessionStore


class NoEngine:
    sessions: dict = {}


async def test_the_sweep_drops_expired_state_every_interval():
    store = MemorySessionStore(ttl_ms=10)
    await store.save("pid-1", {"sid": "a"})
    limiter = MemoryRateLimiter(limit=5, window_ms=10, block_ms=10)
    await limiter.hit("socket-1")
    calls = []

    def broken() -> int:
        calls.append("broken")
        raise RuntimeError("a cleanup that fails must not stop the others")

    lifecycle = Lifecycle(NoEngine(), cleanups=[broken, store.sweep, limiter.sweep], cleanup_interval=0.05)
    lifecycle.start()
    await asyncio.sleep(0.2)
    lifecycle.draining = True  # ends the sweep loop
    asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)  # start() installed it
    assert len(calls) >= 2  # ran more than once
    assert await store.take("pid-1") is None and store._states == {}
    assert limiter._state == {}
