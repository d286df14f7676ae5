"""The server Socket.IO's v5 and Engine.IO's v4 test suites run against.

Configuration from the suites' protocol documents: pingInterval 300 ms, pingTimeout 200 ms,
maxPayload 1,000,000, a 1 s connect timeout; `/socket.io/` with namespaces "/" and "/custom"
(each emits `auth` with the handshake's auth, answers `message` with `message-back` and acks
`message-with-ack` with its arguments); `/engine.io/`, a bare Engine.IO echo server.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.conformance.settings")

import django  # noqa: E402

django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from realtime.cors import CorsPolicy  # noqa: E402
from realtime.engine import EngineConfig, EngineServer  # noqa: E402
from realtime.fanout import Fanout  # noqa: E402
from realtime.server import Namespace, SocketIOServer  # noqa: E402
from realtime.transports import socketio_routes  # noqa: E402
from realtime.transports.handshake import Gate  # noqa: E402

CONFIG = EngineConfig(ping_interval=0.3, ping_timeout=0.2, max_payload=1_000_000)
CONNECT_TIMEOUT = 1.0


class EchoHandler:
    """Engine.IO alone: every message goes back as it came."""

    async def on_open(self, session):
        pass

    async def on_message(self, session, data):
        await session.send_message(data)

    async def on_close(self, session, reason):
        pass


class SuiteNamespace(Namespace):
    async def on_connect(self, socket, auth):
        socket.data["auth"] = auth if auth is not None else {}

    async def on_connected(self, socket):
        await socket.emit("auth", socket.data["auth"])

    async def on_event(self, socket, event, args, ack):
        if event == "message":
            await socket.emit("message-back", *args)
        elif event == "message-with-ack" and ack is not None:
            await ack(*args)


def build_application():
    gate = Gate(CorsPolicy(frozenset({"*"}), allow_credentials=True))
    sio = SocketIOServer({"/": SuiteNamespace(), "/custom": SuiteNamespace()}, Fanout(), CONNECT_TIMEOUT)
    sio_http, sio_ws = socketio_routes(EngineServer(CONFIG, sio), gate, "socket.io/")
    eio_http, eio_ws = socketio_routes(EngineServer(CONFIG, EchoHandler()), gate, "engine.io/")
    return ProtocolTypeRouter(
        {"http": URLRouter([*sio_http, *eio_http]), "websocket": URLRouter([*sio_ws, *eio_ws])}
    )


application = build_application()
