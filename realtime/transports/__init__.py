"""The Engine.IO transports as Channels consumers: the only code that does socket or HTTP I/O."""

from django.urls import path

from .polling import PollingTransport
from .websocket import WebSocketTransport


def socketio_routes(engine, gate, prefix: str = "socket.io/", forwarder=None):
    """(http routes, websocket routes) serving `engine` under `/<prefix>`."""
    return (
        [path(prefix, PollingTransport.as_asgi(engine=engine, gate=gate, forwarder=forwarder))],
        [path(prefix, WebSocketTransport.as_asgi(engine=engine, gate=gate))],
    )
