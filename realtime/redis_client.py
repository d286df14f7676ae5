"""Redis clients for the server's own state (log, sessions, limits, metrics).

A blocking pool: under a burst (a node draining 10,000 sockets saves each one) callers wait a
moment for a free connection instead of failing with "Too many connections".
"""

import asyncio

import redis.asyncio as redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

# Connections per client; each holds a socket to Redis, and a few dozen keep a burst busy.
POOL_SIZE = 50
# How long a caller may wait for a connection from the pool before failing.
POOL_WAIT_SECONDS = 10


def redis_client(url: str) -> redis.Redis:
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=POOL_SIZE, timeout=POOL_WAIT_SECONDS)
    return redis.Redis(connection_pool=pool)


class Batched:
    """Scripts run on `client` in batches: those that arrive while a batch is in flight go
    together in the next one, as one pipelined round trip.

    A burst of connects is a burst of small scripts (the handshake limit, the connection limit);
    one by one, each paid its own round trip and redis-py's per-command machinery (batched:
    ~7 % less server CPU per connect in tests/benchmarks). A caller alone still goes at once (a
    pipeline of one). Each script stays a command of its own: batching changes no result, only
    how many commands share a write.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._queue: list[tuple[tuple, asyncio.Future]] = []
        self._sending = False

    async def run(self, script: AsyncScript, keys: list, args: list):
        try:
            return await self._call("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:  # Redis restarted or flushed its script cache: load it again
            script.sha = await self.client.script_load(script.script)
            return await self._call("EVALSHA", script.sha, len(keys), *keys, *args)

    def _call(self, *command) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((command, future))
        if not self._sending:
            self._sending = True
            asyncio.ensure_future(self._send())
        return future

    async def _send(self) -> None:
        batch: list[tuple[tuple, asyncio.Future]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                pipe = self.client.pipeline(transaction=False)
                for command, _ in batch:
                    pipe.execute_command(*command)
                try:
                    results = await pipe.execute(raise_on_error=False)
                except Exception as exc:  # the connection failed: every caller hears it
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results):
                    if future.done():  # its caller was cancelled
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._sending = False
            for _, future in batch + self._queue:  # cancelled itself: no caller waits forever
                future.cancel()
            self._queue = []
