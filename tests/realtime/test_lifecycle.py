"""ROOM_CLEANUP_INTERVAL: the periodic sweep runs every cleanup and survives a failing one. A
drain closes the sessions, then runs the stop hooks (the forwarder's), each whatever the others did."""

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


async def test_a_drain_runs_every_stop_hook_after_the_sessions_close_even_past_a_failing_one():
    calls = []

    class OneSession:
        async def close(self, reason: str, *, reconnect: bool) -> None:
            calls.append(("closed", reason, reconnect))

    class Engine:
        sessions = {"sid-1": OneSession()}

    async def broken() -> None:
        calls.append("broken")
        raise RuntimeError("a stop hook that fails must not stop the others, nor the drain")

    async def forwarder_stop() -> None:
        calls.append("stopped")

    await Lifecycle(Engine(), on_stop=[broken, forwarder_stop]).drain()
    assert calls == [("closed", "server shutting down", True), "broken", "stopped"]
