"""MAX_CONNECTIONS_PER_USER: authenticated connections per user, counted across processes.

With Redis, each user has a sorted set of connection ids scored by lease expiry; a process
renews the leases of its live connections, so a crashed process's entries lapse by themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

from .redis_client import BatchedScript, redis_client

logger = logging.getLogger(__name__)

# A crashed node's connections stop counting after this long; renewed every third of it.
LEASE_SECONDS = 90
# Users whose leases one pipelined round trip renews.
RENEW_BATCH = 500


class MemoryConnectionLimit:
    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self._by_user: dict[str, set[str]] = defaultdict(set)

    async def acquire(self, user_id: str, conn_id: str) -> bool:
        held = self._by_user[user_id]
        if conn_id in held:
            return True
        if len(held) >= self.maximum:
            return False
        held.add(conn_id)
        return True

    async def release(self, user_id: str, conn_id: str) -> None:
        held = self._by_user.get(user_id)
        if held is not None:
            held.discard(conn_id)
            if not held:
                del self._by_user[user_id]


_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


class RedisConnectionLimit:
    def __init__(self, redis_url: str, maximum: int, prefix: str) -> None:
        self.client = redis_client(redis_url)
        self.script = BatchedScript(self.client, _ACQUIRE)  # a burst of sign-ins: one round trip
        self.maximum, self.prefix = maximum, prefix
        # user -> this process's connection ids (a few at most: a list is a quarter of a set's
        # size, and there is one per signed-in user), for lease renewal
        self._held: dict[str, list[str]] = {}
        self._renewer: asyncio.Task | None = None

    async def acquire(self, user_id: str, conn_id: str) -> bool:
        now = time.time()
        try:
            ok = await self.script(
                [self._key(user_id)], [now, now + LEASE_SECONDS, conn_id, self.maximum, LEASE_SECONDS * 1000],
            )
        except Exception as exc:  # Redis down: count locally rather than refuse every login
            logger.warning("connection limit store unavailable for %s: %s", user_id, exc)
            ok = len(self._held.get(user_id, ())) < self.maximum
        if ok:
            held = self._held.setdefault(user_id, [])
            if conn_id not in held:  # signing in again as the same user holds the same lease
                held.append(conn_id)
            if self._renewer is None or self._renewer.done():
                self._renewer = asyncio.ensure_future(self._renew())
        return bool(ok)

    async def release(self, user_id: str, conn_id: str) -> None:
        held = self._held.get(user_id)
        if held is not None and conn_id in held:
            held.remove(conn_id)
            if not held:
                del self._held[user_id]
        try:
            await self.client.zrem(self._key(user_id), conn_id)
        except Exception as exc:  # the lease lapses by itself
            logger.warning("could not release connection %s of %s: %s", conn_id, user_id, exc)

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        await self.script.aclose()
        await self.client.aclose()

    def _key(self, user_id: str) -> str:
        return f"{self.prefix}:{user_id}"

    async def _renew(self) -> None:
        while self._held:
            await asyncio.sleep(LEASE_SECONDS / 3)
            expires = time.time() + LEASE_SECONDS
            held = list(self._held.items())
            # Pipelined: ten thousand signed-in users were twenty thousand round trips per renewal.
            for start in range(0, len(held), RENEW_BATCH):
                pipe = self.client.pipeline(transaction=False)
                for user_id, conns in held[start:start + RENEW_BATCH]:
                    pipe.zadd(self._key(user_id), {c: expires for c in conns})
                    pipe.pexpire(self._key(user_id), LEASE_SECONDS * 1000)
                try:
                    await pipe.execute()
                except Exception as exc:  # the next renewal tries again; a lease lasts three
                    logger.warning("lease renewal failed for %d users: %s", len(held[start:start + RENEW_BATCH]), exc)


def make_connection_limit(redis_url: str | None, maximum: int, redis_prefix: str = "galaxy"):
    if redis_url:
        return RedisConnectionLimit(redis_url, maximum, prefix=f"{redis_prefix}:conns")
    return MemoryConnectionLimit(maximum)
