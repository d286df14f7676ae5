"""Batched Redis scripts (redis_client.Batched): a burst shares round trips, and every caller
still gets its own answer, as one by one; a flushed script cache and a lost Redis are answered."""

from __future__ import annotations

import asyncio
import os

import pytest
from redis.asyncio.client import Pipeline

from realtime.connection_limits import RedisConnectionLimit
from realtime.ratelimit import RedisRateLimiter
from tests.redisproc import RedisProcess
from tests.servers import REDIS_URL

BURST = 200


@pytest.fixture
def pipelines(monkeypatch):
    """How many pipelines redis-py sent (the real method, counted)."""
    sent = []
    execute = Pipeline.execute

    async def counted(self, *args, **kwargs):
        sent.append(len(self.command_stack))
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", counted)
    return sent


async def test_a_burst_of_hits_shares_round_trips_and_counts_exactly(pipelines):
    limiter = RedisRateLimiter(REDIS_URL, limit=150, window_ms=60_000, block_ms=60_000, prefix=f"test-batched-{os.getpid()}")
    try:
        verdicts = await asyncio.gather(*(limiter.hit("one-address") for _ in range(BURST)))
        # Exactly the limit let through, in the order asked, as one round trip each would.
        assert [v.allowed for v in verdicts] == [True] * 150 + [False] * 50
        assert sum(v.newly_blocked for v in verdicts) == 1
        assert sum(pipelines) == BURST and len(pipelines) < BURST / 10
    finally:
        await limiter.client.delete(*(f"{limiter.prefix}:{kind}:one-address" for kind in "nb"))
        await limiter.client.aclose()


async def test_each_caller_gets_its_own_answer(pipelines):
    limit = RedisConnectionLimit(REDIS_URL, 1, prefix=f"test-batched-conns-{os.getpid()}")
    users = [f"user{n % 50}" for n in range(BURST)]  # four sign-ins per user, one allowed
    try:
        granted = await asyncio.gather(*(limit.acquire(user, f"conn{n}") for n, user in enumerate(users)))
        assert granted == [True] * 50 + [False] * 150
        assert sum(pipelines) == BURST and len(pipelines) < BURST / 10
    finally:
        if limit._renewer is not None:
            limit._renewer.cancel()
        await limit.client.delete(*(limit._key(user) for user in set(users)))
        await limit.client.aclose()


async def test_a_flushed_script_cache_is_reloaded(tmp_path):
    redis_server = RedisProcess(tmp_path).start()
    limiter = RedisRateLimiter(redis_server.url, limit=3, window_ms=60_000, block_ms=60_000, prefix="flush")
    try:
        assert (await limiter.hit("a")).allowed
        await limiter.client.script_flush()
        verdicts = await asyncio.gather(*(limiter.hit("a") for _ in range(3)))
        # Each retried after the reload, in whatever order they got back: counted all the same.
        assert sorted(v.allowed for v in verdicts) == [False, True, True]
    finally:
        await limiter.client.aclose()
        redis_server.stop()


async def test_a_lost_redis_answers_every_caller(tmp_path):
    redis_server = RedisProcess(tmp_path).start()
    limit = RedisConnectionLimit(redis_server.url, 1, prefix="lost")
    limiter = RedisRateLimiter(redis_server.url, limit=1, window_ms=60_000, block_ms=60_000, prefix="lost")
    try:
        assert await limit.acquire("user", "conn0")
        redis_server.stop()
        # The limiter lets traffic through; the connection limit counts in this process alone.
        verdicts = await asyncio.wait_for(asyncio.gather(*(limiter.hit("a") for _ in range(20))), 30)
        assert all(v.allowed for v in verdicts)
        granted = await asyncio.wait_for(asyncio.gather(*(limit.acquire(f"user{n}", f"c{n}") for n in range(20))), 30)
        assert granted == [True] * 20
        assert not await asyncio.wait_for(limit.acquire("user", "conn1"), 30)  # still one per user here
    finally:
        if limit._renewer is not None:
            limit._renewer.cancel()
        await limit.client.aclose()
        await limiter.client.aclose()
        redis_server.stop()
