"""The Engine.IO transports as Channels consumers: the only code that does socket or HTTP I/O."""

from asgiref.sync import markcoroutinefunction
from django.urls import path

from .polling import PollingTransport
from .websocket import WebSocketTransport


class DirectSocketIORoute:
    """ASGI app: a request or WebSocket for exactly `/<prefix>` goes straight to a new transport
    of its kind; everything else to `app` (the Channels routers, which route it as before).

    A WebSocket's ASGI call lasts as long as the connection, and every router it passes
    through stays suspended in it: ProtocolTypeRouter, URLRouter (with its copy of the scope)
    and as_asgi's wrapper held ~1.3 KiB per connection (tests/benchmarks' RSS per connection).
    A long-polling client makes a request per message it receives, and the routers were ~8 %
    of each one's CPU (py-spy, tests/benchmarks --transport polling). The transports need
    neither the scope's `url_route` nor `path_remaining`.
    """

    def __init__(self, app, engine, gate, prefix: str = "socket.io/", forwarder=None) -> None:
        self.app = app
        self.engine = engine
        self.gate = gate
        self.forwarder = forwarder  # as socketio_routes' (several nodes sharing Redis)
        self.path = "/" + prefix

    @markcoroutinefunction  # returns the coroutine to await, so holds no frame of its own
    def __call__(self, scope, receive, send):
        if scope["path"] == scope.get("root_path", "") + self.path:
            if scope["type"] == "websocket":
                return WebSocketTransport(engine=self.engine, gate=self.gate)(scope, receive, send)
            if scope["type"] == "http":
                return PollingTransport(engine=self.engine, gate=self.gate, forwarder=self.forwarder)(scope, receive, send)
        return self.app(scope, receive, send)


async def no_such_websocket(scope, receive, send) -> None:
    """ASGI app for a WebSocket on a path nothing serves: refused before the handshake completes
    (the client gets a 403), where Channels' URLRouter raised (a 500, and a traceback in the log
    for any client that asks)."""
    await receive()  # websocket.connect
    await send({"type": "websocket.close", "code": 1000})


def socketio_routes(engine, gate, prefix: str = "socket.io/", forwarder=None):
    """(http routes, websocket routes) serving `engine` under `/<prefix>`."""
    return (
        [path(prefix, PollingTransport.as_asgi(engine=engine, gate=gate, forwarder=forwarder))],
        [path(prefix, WebSocketTransport.as_asgi(engine=engine, gate=gate))],
    )
