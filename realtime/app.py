"""This process's Socket.IO server, built once from Django settings, and its ASGI routes."""

from __future__ import annotations

from django.conf import settings
from django.urls import path

from .cors import CorsPolicy
from .engine import EngineConfig, EngineServer
from .fanout import Fanout
from .namespace import GalaxyNamespace
from .router import router_from_settings
from .server import SocketIOServer
from .transports.polling import PollingTransport
from .transports.websocket import WebSocketTransport


def build_engine() -> EngineServer:
    fanout = Fanout()
    namespace = GalaxyNamespace(router_from_settings(), settings.HEARTBEAT_INTERVAL_MS / 1000)
    sio = SocketIOServer({"/": namespace}, fanout, settings.CONNECTION_TIMEOUT_MS / 1000)
    config = EngineConfig(
        ping_interval=settings.HEARTBEAT_INTERVAL_MS / 1000,
        ping_timeout=settings.CONNECTION_TIMEOUT_MS / 1000,
        max_payload=settings.MAX_HTTP_BUFFER_SIZE,
    )
    return EngineServer(config, sio)


def cors_policy() -> CorsPolicy:
    return CorsPolicy(frozenset(settings.ALLOWED_ORIGINS), settings.CORS_CREDENTIALS)


def socketio_routes(engine: EngineServer, cors: CorsPolicy, prefix: str = "socket.io/"):
    """(http routes, websocket routes) serving `engine` under `/socket.io/`."""
    return (
        [path(prefix, PollingTransport.as_asgi(engine=engine, cors=cors))],
        [path(prefix, WebSocketTransport.as_asgi(engine=engine, cors=cors))],
    )
