"""The Socket.IO server on an Engine.IO session: what a connection holds after it closes."""

from __future__ import annotations

import weakref

from realtime.engine import EngineConfig, EngineServer, EngineSession
from realtime.fanout import Fanout
from realtime.server import SocketIOServer
from realtime.session import State
from tests.realtime.test_engine_close import RecordingWriter


async def test_a_closed_connection_lets_go_of_its_half_received_attachments_at_once():
    """A binary event announcing two attachments, one received, then the transport closes: the
    attachment goes with the close, not when a garbage collection finds the session (production
    collects rarely), though the session object itself is still referenced here."""
    sio = SocketIOServer({}, Fanout(), connect_timeout=60)
    engine = EngineServer(EngineConfig(ping_interval=60, ping_timeout=60, max_payload=100_000), sio)
    session = EngineSession(engine, "s1", State.WEBSOCKET, {})
    session.attach_websocket(RecordingWriter([]))
    engine.sessions[session.sid] = session
    await sio.on_open(session)
    await sio.on_message(session, '52-["upload",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
    await sio.on_message(session, b"x" * 50_000)
    assembler = weakref.ref(session.data["sio"].assembler)
    assert assembler() is not None
    await session.close("transport close")
    assert assembler() is None
