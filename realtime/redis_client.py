"""Redis clients for the server's own state (log, sessions, limits, metrics).

A blocking pool: under a burst (a node draining 10,000 sockets saves each one) callers wait a
moment for a free connection instead of failing with "Too many connections".
"""

import redis.asyncio as redis

# Connections per client; each holds a socket to Redis, and a few dozen keep a burst busy.
POOL_SIZE = 50
# How long a caller may wait for a connection from the pool before failing.
POOL_WAIT_SECONDS = 10


def redis_client(url: str) -> redis.Redis:
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=POOL_SIZE, timeout=POOL_WAIT_SECONDS)
    return redis.Redis(connection_pool=pool)
