"""Redis clients for the server's own state (log, sessions, limits, metrics).

A blocking pool: under a burst (a node draining 10,000 sockets saves each one) callers wait a
moment for a free connection instead of failing with "Too many connections".
"""

import asyncio
import logging
import time

import hiredis
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError, NoScriptError, TimeoutError as RedisTimeoutError

from .batching import Coalescer

# What a Redis client raises while the server is away (down, restarting, failing over), once
# redis-py's own retries are spent: what callers that can carry on without it catch.
REDIS_AWAY = (RedisConnectionError, RedisTimeoutError)

# Connections per client; each holds a socket to Redis, and a few dozen keep a burst busy.
POOL_SIZE = 50
# How long a caller may wait for a connection from the pool before failing.
POOL_WAIT_SECONDS = 10


class RedisAwayOneLine(logging.Filter):
    """channels_redis' subscriber logs a full traceback every second while Redis is away ("Unexpected
    exception in receive task"): 30 of them for a 30 s restart, burying what else went wrong. Such a
    record becomes one line, at most every QUIET_SECONDS; any other exception is left as it is."""

    QUIET_SECONDS = 10.0

    def __init__(self) -> None:
        super().__init__()
        self._last = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, REDIS_AWAY):
            return True
        now = time.monotonic()
        if now - self._last < self.QUIET_SECONDS:
            return False
        self._last = now
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg, record.args, record.exc_info, record.exc_text = "Redis is away, reconnecting: %s", (exc,), None, None
        return True


def redis_client(url: str) -> redis.Redis:
    # One retry on a fresh connection: after a blip every pooled connection is dead, and without
    # it the first command on each fails although Redis is there (a pool's connections get no
    # retry by default). A Redis that is away fails the retry as fast.
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=POOL_SIZE, timeout=POOL_WAIT_SECONDS,
                                                 retry=Retry(NoBackoff(), 1))
    return redis.Redis(connection_pool=pool)


# Runs the script in BODY once per call of a batch: ARGV[1] is how many calls, ARGV[2] and
# ARGV[3] how many keys and arguments each has; the rest are the calls' own, one after the other.
# Returns their results in order (a nil would cut the list short: our scripts never return one).
_BATCH = """
local function call(KEYS, ARGV)
%s
end
local calls, nkeys, nargs = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local results, k, a = {}, 1, 4
for i = 1, calls do
  results[i] = call({unpack(KEYS, k, k + nkeys - 1)}, {unpack(ARGV, a, a + nargs - 1)})
  k, a = k + nkeys, a + nargs
end
return results
"""


class OwnConnection:
    """One connection of a client's pool, its own for good, for a caller that has one command in
    flight at a time (BatchedScript's batches, the event log's shared head read). Its commands go
    out and come back straight: redis-py's execute_command around them (a lock, the retry
    wrapper, observability hooks) and Script's call were over a third of such a round trip's CPU
    (a scratch loop: 122 against 75 us an EVALSHA; paired, 6 % of a signed-in connect's, with the
    head read's pool get and release). As the client's Retry: once more on a fresh connection
    after a connection failure (a command whose reply was lost runs twice: a rate-limit hit may
    count twice across a Redis blip, erring strict). The reply is RESP as read, with none of
    redis-py's per-command parsing (XREVRANGE's entries stay lists).
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = redis.Redis(connection_pool=client.connection_pool, single_connection_client=True)

    async def execute(self, *args):
        if self.client.connection is None:
            await self.client.initialize()
        conn = self.client.connection
        try:
            return await self._exchange(conn, args)
        except REDIS_AWAY:  # after a blip the connection is dead although Redis is back
            await conn.disconnect()
            return await self._exchange(conn, args)

    @staticmethod
    async def _exchange(conn, args: tuple):
        # hiredis packs in C what redis-py's pack_command joins argument by argument into a
        # growing buffer (a batch of a hundred arguments copies it a hundred times).
        await conn.send_packed_command(hiredis.pack_command(args), check_health=False)
        return await conn.read_response()

    async def aclose(self) -> None:
        await self.client.aclose()


class BatchedScript:
    """A Lua script whose calls run in batches (batching.Coalescer): those that arrive while a
    batch is in flight go together in the next one, as one EVALSHA that runs the script once
    per call, in order. Per call, redis-py's work for a command of its own was a third of the
    call's CPU at the batch sizes a burst of connects makes (tests/benchmarks). Batching
    changes no result: the calls run one after the other, as they would one by one, and a
    batch runs atomically as each call did. Each call has the same number of keys and of
    arguments. A batch's keys all go to one server: not for Redis Cluster.
    """

    def __init__(self, client: redis.Redis, body: str) -> None:
        self._connection = OwnConnection(client)  # a batch at a time is in flight
        self._script = self._connection.client.register_script(_BATCH % body)
        self._call = Coalescer(self._run)

    def __call__(self, keys: list, args: list) -> asyncio.Future:
        return self._call((keys, args))

    async def aclose(self) -> None:
        await self._connection.aclose()

    async def _run(self, calls: list[tuple[list, list]]) -> list:
        nkeys, nargs = len(calls[0][0]), len(calls[0][1])
        if any(len(keys) != nkeys or len(args) != nargs for keys, args in calls):
            raise ValueError("every call of a batched script takes the same number of keys and of arguments")
        keys = [key for keys, _ in calls for key in keys]
        args = [len(calls), nkeys, nargs, *(arg for _, args in calls for arg in args)]
        try:
            return await self._connection.execute("EVALSHA", self._script.sha, len(keys), *keys, *args)
        except NoScriptError:  # never loaded here, or a SCRIPT FLUSH since: as redis-py's Script
            self._script.sha = await self._connection.client.script_load(self._script.script)
            return await self._connection.execute("EVALSHA", self._script.sha, len(keys), *keys, *args)
