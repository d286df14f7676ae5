"""A real Socket.IO client that keeps every event it receives, and waits for the one a test needs."""

from __future__ import annotations

import asyncio

import socketio

# Polls run every 0.2 s in these tests and a backoff after two failures lasts 3 s; 15 s covers
# that on a loaded CI machine without letting a lost event hang the suite.
WAIT_SECONDS = 15.0


class Inbox:
    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, object]] = []
        self._changed = asyncio.Event()
        self.client.on("*", self._record)

    async def _record(self, event, *args):
        self.events.append((event, args[0] if args else None))
        self._changed.set()

    async def connect(self, url: str) -> Inbox:
        await self.client.connect(url, transports=["websocket"])
        return self

    async def call(self, event: str, data) -> dict:
        return await self.client.call(event, data, timeout=WAIT_SECONDS)

    def of(self, event: str, pair: str | None = None) -> list:
        return [data for name, data in self.events if name == event and (pair is None or data.get("pair") == pair)]

    async def wait_for(self, event: str, predicate=lambda data: True, timeout: float = WAIT_SECONDS):
        """The first `event` (already received or still to come) whose data satisfies `predicate`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for name, data in self.events:
                if name == event and predicate(data):
                    return data
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no {event} matching within {timeout}s; got {[n for n, _ in self.events]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def close(self) -> None:
        await self.client.disconnect()
