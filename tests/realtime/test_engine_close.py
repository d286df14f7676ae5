"""Closing an Engine.IO session: the handler before the CLOSE packet (draining, before the transport
closes, with no CLOSE packet), one close at a time, and a close from within a close (its handler's)
that returns instead of waiting for itself."""

from __future__ import annotations

import asyncio

from realtime.engine import CLOSE_FRAME, EngineConfig, EngineServer, EngineSession
from realtime.session import State


class RecordingWriter:
    """A WebSocket transport that takes every write at once."""

    def __init__(self, log: list) -> None:
        self.log = log

    def write(self, frames):
        self.log.extend(("wrote", frame) for frame in frames)
        return None

    async def send_frames(self, frames):
        self.write(frames)

    async def close(self):
        self.log.append(("transport closed",))


class Handler:
    """Records each close it hears of; takes `delay` seconds over it (a save to a slow Redis)."""

    def __init__(self, log: list, delay: float = 0.0, close_again: bool = False) -> None:
        self.log, self.delay, self.close_again = log, delay, close_again

    async def on_open(self, session):
        pass

    async def on_message(self, session, data):
        pass

    async def on_close(self, session, reason):
        self.log.append(("handler", reason))
        await asyncio.sleep(self.delay)
        if self.close_again:
            await session.close("from the handler")
        self.log.append(("handler done", reason))


def websocket_session(handler) -> EngineSession:
    engine = EngineServer(EngineConfig(ping_interval=60, ping_timeout=60, max_payload=1000), handler)
    session = EngineSession(engine, "s1", State.WEBSOCKET, {})
    session.attach_websocket(RecordingWriter(handler.log))
    engine.sessions[session.sid] = session
    return session


async def test_the_handler_finishes_before_the_client_is_told():
    log: list = []
    session = websocket_session(Handler(log, delay=0.05))
    await session.close("server shutting down")
    assert log[:3] == [("handler", "server shutting down"), ("handler done", "server shutting down"), ("wrote", CLOSE_FRAME)]
    assert session.closed


async def test_a_drain_saves_then_closes_the_transport_without_a_close_packet():
    # python-engineio takes a CLOSE packet for a deliberate disconnect and would not reconnect.
    log: list = []
    session = websocket_session(Handler(log, delay=0.05))
    await session.close("server shutting down", reconnect=True)
    assert log == [("handler", "server shutting down"), ("handler done", "server shutting down"), ("transport closed",)]


async def test_a_second_close_waits_for_the_first_and_adds_nothing():
    log: list = []
    session = websocket_session(Handler(log, delay=0.1))
    first = asyncio.ensure_future(session.close("server shutting down"))
    await asyncio.sleep(0.01)  # the first is in its handler
    await session.close("ping timeout")
    assert first.done()  # the second returned only once the first had finished
    assert [entry for entry in log if entry[0] == "handler"] == [("handler", "server shutting down")]
    assert log.count(("wrote", CLOSE_FRAME)) == 1


async def test_a_close_from_the_handler_returns_at_once():
    log: list = []
    session = websocket_session(Handler(log, delay=0.01, close_again=True))
    await asyncio.wait_for(session.close("rate limited"), 5)  # would wait for itself forever
    assert ("handler done", "rate limited") in log and session.closed
