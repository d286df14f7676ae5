"""Writes held while a connect is answered (EngineSession.hold/release) go out as one write, in
order; a close meanwhile sends them before its CLOSE packet."""

from __future__ import annotations

from realtime.engine import CLOSE_FRAME, EngineConfig, EngineServer, EngineSession
from realtime.session import State


class Writes:
    """A WebSocket transport that takes every write at once and remembers each one."""

    def __init__(self) -> None:
        self.calls: list[list] = []

    def write(self, frames):
        self.calls.append(list(frames))

    async def send_frames(self, frames):
        self.write(frames)

    async def close(self):
        pass


class Handler:
    async def on_close(self, session, reason):
        pass


def session_on(state: State, writes: Writes | None = None) -> EngineSession:
    engine = EngineServer(EngineConfig(ping_interval=60, ping_timeout=60, max_payload=1000), Handler())
    session = EngineSession(engine, "s1", state, {})
    if writes is not None:
        session.attach_websocket(writes)
    engine.sessions[session.sid] = session
    return session


async def test_held_writes_go_out_as_one_in_order():
    writes = Writes()
    session = session_on(State.WEBSOCKET, writes)
    session.hold()
    await session.write(['40{"sid":"a"}'])
    session.push(['42["connected",{}]', '42["authenticated",{}]'])
    assert writes.calls == []
    session.release()
    assert writes.calls == [['40{"sid":"a"}', '42["connected",{}]', '42["authenticated",{}]']]
    await session.write(["42[\"later\"]"])  # released: straight through again
    assert writes.calls[-1] == ['42["later"]']


async def test_a_close_while_held_sends_what_was_held_first():
    writes = Writes()
    session = session_on(State.WEBSOCKET, writes)
    session.hold()
    await session.write(['40{"sid":"a"}'])
    await session.close("server shutting down")
    assert writes.calls == [['40{"sid":"a"}'], [CLOSE_FRAME]]
    session.release()  # the connect's finally, after the close: nothing more
    assert writes.calls == [['40{"sid":"a"}'], [CLOSE_FRAME]]

