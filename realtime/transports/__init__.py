"""The Engine.IO transports as Channels consumers: the only code that does socket or HTTP I/O."""

from asgiref.sync import markcoroutinefunction
from django.urls import path

from .polling import PollingTransport
from .websocket import WebSocketTransport


class DirectWebSocketRoute:
    """ASGI app: a WebSocket for exactly `/<prefix>` goes straight to a new WebSocket
    transport; everything else to `app` (the Channels routers, which route it as before).

    A WebSocket's ASGI call lasts as long as the connection, and every router it passes
    through stays suspended in it: ProtocolTypeRouter, URLRouter (with its copy of the scope)
    and as_asgi's wrapper held ~1.3 KiB per connection (tests/benchmarks' RSS per connection).
    The transport needs neither the scope's `url_route` nor `path_remaining`.
    """

    def __init__(self, app, engine, gate, prefix: str = "socket.io/") -> None:
        self.app = app
        self.engine = engine
        self.gate = gate
        self.path = "/" + prefix

    @markcoroutinefunction  # returns the coroutine to await, so holds no frame of its own
    def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and scope["path"] == scope.get("root_path", "") + self.path:
            return WebSocketTransport(engine=self.engine, gate=self.gate)(scope, receive, send)
        return self.app(scope, receive, send)


def socketio_routes(engine, gate, prefix: str = "socket.io/", forwarder=None):
    """(http routes, websocket routes) serving `engine` under `/<prefix>`."""
    return (
        [path(prefix, PollingTransport.as_asgi(engine=engine, gate=gate, forwarder=forwarder))],
        [path(prefix, WebSocketTransport.as_asgi(engine=engine, gate=gate))],
    )
