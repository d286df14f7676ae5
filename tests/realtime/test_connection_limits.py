"""The per-user connection limit's Redis leases: renewed while held (one pipeline for all
users), one per connection however often it signs in, gone when released."""

from __future__ import annotations

import asyncio
import os

from realtime import connection_limits
from realtime.connection_limits import RedisConnectionLimit
from tests.servers import REDIS_URL


async def test_leases_outlive_their_length_while_held_and_end_when_released(monkeypatch):
    monkeypatch.setattr(connection_limits, "LEASE_SECONDS", 1)  # renewed every third of a second
    limit = RedisConnectionLimit(REDIS_URL, 2, prefix=f"test-conns-{os.getpid()}")
    users = [f"user{n}" for n in range(3)]
    try:
        for user in users:
            assert await limit.acquire(user, f"{user}-a")
        assert await limit.acquire("user0", "user0-a")  # signed in again: still one lease
        await asyncio.sleep(2.5)  # over two lease lengths: only renewal keeps them
        for user in users:
            assert await limit.client.zrange(limit._key(user), 0, -1) == [f"{user}-a".encode()]
        await limit.release("user0", "user0-a")
        assert await limit.client.zrange(limit._key("user0"), 0, -1) == []
        assert await limit.acquire("user1", "user1-b")  # the second of two
        assert not await limit.acquire("user1", "user1-c")  # the third is refused
    finally:
        await limit.client.delete(*(limit._key(user) for user in users))
        await limit.aclose()
