"""Fixed-window rate limits with a block, in memory or shared through Redis.

A key may make `limit` hits per window; the hit after that blocks the key for `block_ms`, during
which every hit is refused with the time left. Redis makes the count one across processes.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass

from .redis_client import BatchedScript, redis_client

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_ms: int = 0
    newly_blocked: bool = False  # this very hit caused the block


class MemoryRateLimiter:
    # Forget keys idle this many windows; a sweep runs at most once per window.
    IDLE_WINDOWS = 2

    def __init__(self, limit: int, window_ms: int, block_ms: int) -> None:
        self.limit, self.window_ms, self.block_ms = limit, window_ms, block_ms
        self._state: dict[str, list[float]] = {}  # key -> [window start, count, blocked until]
        self._last_sweep = 0.0

    async def hit(self, key: str) -> Verdict:
        now = time.monotonic() * 1000
        self._sweep(now)
        state = self._state.setdefault(key, [now, 0, 0.0])
        if state[2] > now:
            return Verdict(False, int(state[2] - now))
        if now - state[0] >= self.window_ms:
            state[0], state[1] = now, 0
        state[1] += 1
        if state[1] > self.limit:
            state[1], state[2] = 0, now + self.block_ms
            return Verdict(False, self.block_ms, newly_blocked=True)
        return Verdict(True)

    def sweep(self) -> int:
        """Forget idle keys now (ROOM_CLEANUP_INTERVAL); how many."""
        before = len(self._state)
        self._last_sweep = 0.0
        self._sweep(time.monotonic() * 1000)
        return before - len(self._state)

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < self.window_ms:
            return
        self._last_sweep = now
        horizon = now - self.IDLE_WINDOWS * self.window_ms
        for key in [k for k, s in self._state.items() if s[0] < horizon and s[2] < now]:
            del self._state[key]


_HIT = """
local blocked = redis.call('PTTL', KEYS[2])
if blocked > 0 then return {0, blocked, 0} end
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if count > tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], 1, 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return {0, tonumber(ARGV[3]), 1}
end
return {1, 0, 0}
"""


class RedisRateLimiter:
    def __init__(self, redis_url: str, limit: int, window_ms: int, block_ms: int, prefix: str) -> None:
        self.client = redis_client(redis_url)
        self.script = BatchedScript(self.client, _HIT)  # a burst of handshakes: one round trip
        self.limit, self.window_ms, self.block_ms, self.prefix = limit, window_ms, block_ms, prefix

    async def hit(self, key: str) -> Verdict:
        try:
            allowed, retry_after, newly = await self.script(
                [f"{self.prefix}:n:{key}", f"{self.prefix}:b:{key}"], [self.limit, self.window_ms, self.block_ms],
            )
        except Exception as exc:  # Redis down: let traffic through rather than lock everyone out
            logger.warning("rate limiter unavailable, allowing %s: %s", key, exc)
            return Verdict(True)
        return Verdict(bool(allowed), int(retry_after), bool(newly))

    async def aclose(self) -> None:
        await self.script.aclose()
        await self.client.aclose()


def make_rate_limiter(redis_url: str | None, limit: int, window_ms: int, block_ms: int, prefix: str):
    if redis_url:
        return RedisRateLimiter(redis_url, limit, window_ms, block_ms, prefix)
    return MemoryRateLimiter(limit, window_ms, block_ms)


def client_ip(scope: dict, trusted_proxies: list[str]) -> str:
    """The client's address: the peer, or through X-Forwarded-For when the peer is trusted.

    Walks the forwarded chain from the right and stops at the first address that is not a
    trusted proxy, so a client cannot pick its own address by sending the header itself.
    """
    peer = (scope.get("client") or ("unknown", 0))[0]
    networks = _networks(tuple(trusted_proxies))
    if not networks or not _in(peer, networks):
        return peer
    forwarded = [v for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"]
    chain = [part.strip() for value in forwarded for part in value.decode("latin-1").split(",") if part.strip()]
    for address in reversed(chain):
        if not _in(address, networks):
            return address
    return chain[0] if chain else peer


def _networks(proxies: tuple[str, ...]):
    return [ipaddress.ip_network(p, strict=False) for p in proxies]


def _in(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
