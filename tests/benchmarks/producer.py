"""The benchmark's Python producer: K price updates at R per second from a process of its own.

`galaxy` goes through the product's emit API (`realtime.emit.emit`, as the Celery market feed
does); `python-socketio` through `socketio.AsyncRedisManager(write_only=True)`, that library's
way for an outside process to emit. Each update carries its send time `ts` (ms) and `seq`.

Usage: python -m tests.benchmarks.producer galaxy|python-socketio REDIS_URL ROOM COUNT RATE
"""

from __future__ import annotations

import asyncio
import os
import sys
import time


def update(seq: int) -> dict:
    return {
        "pair": "XLM_USDC", "price": 0.1 + (seq % 100) / 10000, "volume": 1000.0 + seq, "change24h": 0.5,
        "timestamp": int(time.time() * 1000), "ts": time.time() * 1000, "seq": seq,
    }


def galaxy_emitter(redis_url: str):
    os.environ.update({"DJANGO_SETTINGS_MODULE": "galaxy.settings", "GALAXY_ENV_FILE": "/nonexistent", "REDIS_URL": redis_url})
    import django

    django.setup()
    from realtime.emit import emit

    return lambda room, data: emit(room, "market:price_update", data)


def python_socketio_emitter(redis_url: str):
    import socketio

    manager = socketio.AsyncRedisManager(redis_url, write_only=True)
    return lambda room, data: manager.emit("market:price_update", data, room=room, namespace="/")


async def produce(kind: str, redis_url: str, room: str, count: int, rate: float) -> None:
    send = {"galaxy": galaxy_emitter, "python-socketio": python_socketio_emitter}[kind](redis_url)
    start = time.monotonic()
    for seq in range(count):
        await asyncio.sleep(max(0.0, start + seq / rate - time.monotonic()))  # fixed schedule, no drift
        await send(room, update(seq))


if __name__ == "__main__":
    kind, redis_url, room, count, rate = sys.argv[1:6]
    asyncio.run(produce(kind, redis_url, room, int(count), float(rate)))
