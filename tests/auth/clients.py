"""Socket.IO clients for the auth tests: python-socketio's AsyncClient recording every event."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import aiohttp
import socketio

# "polling" stays on long-polling (no upgrade), so that transport is what carries the auth.
TRANSPORTS = {"websocket": ["websocket"], "polling": ["polling"]}
WAIT = 5  # seconds: an expected event arrives well within this on loopback
QUIET = 0.5  # seconds of silence that count as "that event did not come"


class Client:
    """One python-socketio client; every server event lands in a queue per event name."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.queues: dict[str, asyncio.Queue] = defaultdict(asyncio.Queue)
        self.order: list[str] = []  # every event's name, in the order they arrived
        self.connect_errors: asyncio.Queue = asyncio.Queue()
        self.disconnected = asyncio.Event()
        self.sio.on("*", self._record)
        self.sio.on("connect_error", self.connect_errors.put_nowait)
        self.sio.on("disconnect", self._on_disconnect)

    async def _record(self, event: str, *args: Any) -> None:
        # The first argument is the payload; a room event may carry its recovery offset after it.
        self.order.append(event)
        self.queues[event].put_nowait(args[0] if args else None)

    async def _on_disconnect(self, *args: Any) -> None:
        self.disconnected.set()

    async def connect(self, server, transport: str = "websocket", *, auth: Any = None,
                      headers: dict[str, str] | None = None) -> Client:
        await self.sio.connect(server.url, transports=TRANSPORTS[transport], auth=auth,
                               headers=headers or {}, wait_timeout=WAIT)
        return self

    async def next(self, event: str, timeout: float = WAIT) -> Any:
        return await asyncio.wait_for(self.queues[event].get(), timeout)

    async def none(self, event: str, within: float = QUIET) -> None:
        """Assert that no `event` arrives within `within` seconds."""
        try:
            got = await asyncio.wait_for(self.queues[event].get(), within)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected {event!r}: {got!r}")

    def drain(self, event: str) -> list:
        items = []
        while not self.queues[event].empty():
            items.append(self.queues[event].get_nowait())
        return items

    async def call(self, event: str, data: Any = None, timeout: float = WAIT) -> Any:
        return await self.sio.call(event, {} if data is None else data, timeout=timeout)

    async def emit(self, event: str, data: Any = None) -> None:
        await self.sio.emit(event, {} if data is None else data)

    async def authenticate(self, token: Any) -> dict:
        """The `authenticate` event with an ack; returns the ack."""
        return await self.call("authenticate", {"token": token})

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


async def connected(server, transport: str = "websocket", **kwargs) -> Client:
    return await Client().connect(server, transport, **kwargs)


async def refused(server, transport: str = "websocket", **kwargs) -> dict:
    """Connect expecting CONNECT_ERROR; returns its data ({message, data})."""
    client = Client()
    try:
        await client.connect(server, transport, **kwargs)
    except socketio.exceptions.ConnectionError:
        return await asyncio.wait_for(client.connect_errors.get(), WAIT)
    finally:
        await client.close()
    raise AssertionError("the connection was accepted")


async def emit_from_server(server, room: str, event: str, data: Any) -> None:
    """Emit to `room` from inside the server process (tests/e2e/testapp.py's test endpoint)."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/__test__/emit", json={"room": room, "event": event, "data": data}) as resp:
            assert resp.status == 200


async def receives_room_emit(server, client: Client, room: str, within: float = WAIT) -> bool:
    """Emit a marker to `room`; True if `client` gets it within `within` seconds."""
    marker = {"marker": id(client), "room": room}
    client.drain("probe")
    await emit_from_server(server, room, "probe", marker)
    try:
        while True:
            got = await asyncio.wait_for(client.queues["probe"].get(), within)
            if got == marker:
                return True
    except asyncio.TimeoutError:
        return False
