"""Batched Redis scripts (redis_client.BatchedScript): a burst shares round trips, and every caller
still gets its own answer, as one by one; a flushed script cache and a lost Redis are answered."""

from __future__ import annotations

import asyncio

import pytest
import redis

from realtime.connection_limits import RedisConnectionLimit
from realtime.ratelimit import RedisRateLimiter
from realtime.redis_client import BatchedScript, redis_client
from tests.redisproc import RedisProcess

BURST = 200


@pytest.fixture
def redis_server(tmp_path):
    """A Redis of the test's own: its command counts are this test's alone."""
    server = RedisProcess(tmp_path).start()
    yield server
    server.stop()


def evalsha_calls(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return stats.get("cmdstat_evalsha", {}).get("calls", 0)


async def test_a_burst_of_hits_shares_round_trips_and_counts_exactly(redis_server):
    limiter = RedisRateLimiter(redis_server.url, limit=150, window_ms=60_000, block_ms=60_000, prefix="batched")
    try:
        verdicts = await asyncio.gather(*(limiter.hit("one-address") for _ in range(BURST)))
        # Exactly the limit let through, in the order asked, as one round trip each would.
        assert [v.allowed for v in verdicts] == [True] * 150 + [False] * 50
        assert sum(v.newly_blocked for v in verdicts) == 1
        assert evalsha_calls(redis_server.url) < BURST / 10
    finally:
        await limiter.aclose()


async def test_hits_arriving_over_several_turns_of_the_loop_share_one_round_trip(redis_server):
    """A burst of connects reaches the limiter over many turns of the event loop, not in one:
    the batch waits for them (batching.GATHER_TURNS) instead of going with the first."""
    limiter = RedisRateLimiter(redis_server.url, limit=1000, window_ms=60_000, block_ms=60_000, prefix="turns")
    try:
        assert (await limiter.hit("warm-up")).allowed  # loads the script: its own round trips
        before = evalsha_calls(redis_server.url)
        hits = []
        for _ in range(20):  # a hit a turn
            hits.append(asyncio.ensure_future(limiter.hit("spread")))
            await asyncio.sleep(0)
        assert all(v.allowed for v in await asyncio.gather(*hits))
        assert evalsha_calls(redis_server.url) - before == 1
    finally:
        await limiter.aclose()


async def test_each_caller_gets_its_own_answer(redis_server):
    limit = RedisConnectionLimit(redis_server.url, 1, prefix="batched-conns")
    users = [f"user{n % 50}" for n in range(BURST)]  # four sign-ins per user, one allowed
    try:
        granted = await asyncio.gather(*(limit.acquire(user, f"conn{n}") for n, user in enumerate(users)))
        assert granted == [True] * 50 + [False] * 150
        assert evalsha_calls(redis_server.url) < BURST / 10
        holders = [await limit.client.zrange(limit._key(f"user{n}"), 0, -1) for n in range(50)]
        assert holders == [[f"conn{n}".encode()] for n in range(50)]  # each user's first sign-in holds it
    finally:
        await limit.aclose()


async def test_calls_of_another_shape_are_refused_not_misread(redis_server):
    script = BatchedScript(redis_client(redis_server.url), "return {KEYS[1], ARGV[1]}")
    try:
        assert await asyncio.gather(script(["a"], ["1"]), script(["b"], ["2"]), script(["c"], ["3"])) == [[b"a", b"1"], [b"b", b"2"], [b"c", b"3"]]
        with pytest.raises(ValueError):
            await asyncio.gather(script(["a"], ["1"]), script(["b"], ["2", "extra"]))
    finally:
        await script.aclose()


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
        await limiter.aclose()
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
        await limit.aclose()
        await limiter.aclose()
        redis_server.stop()


async def test_the_first_calls_after_a_redis_restart_are_answered_by_redis(tmp_path):
    """The scripts' and the log's shared read keep a connection of their own: after a restart it
    is dead, and the next call must go again on a fresh one, not fail into the fallback (which
    lets a rate-limited address through uncounted, and connects a socket without an offset)."""
    from realtime.recovery import RedisEventLog

    redis_server = RedisProcess(tmp_path).start()
    limiter = RedisRateLimiter(redis_server.url, limit=1, window_ms=60_000, block_ms=60_000, prefix="restart")
    log = RedisEventLog(redis_server.url, "restart", max_age_ms=60_000)
    try:
        assert (await limiter.hit("a")).allowed
        assert await log.shared_head() == "0-0"
        redis_server.stop()
        redis_server.start()  # the same port, empty
        offset = await log.append("/", ("market:A_B",), "e", 1)
        assert await log.shared_head() == offset
        assert (await limiter.hit("b")).allowed
        assert not (await limiter.hit("b")).allowed  # the first hit was counted in Redis
    finally:
        await limiter.aclose()
        await log.aclose()
        redis_server.stop()
