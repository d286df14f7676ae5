"""This process's Socket.IO server and its request gate, built once from Django settings."""

from __future__ import annotations

from django.conf import settings

from .auth import verifier_from_settings
from .connection_limits import make_connection_limit
from .cors import CorsPolicy
from . import metrics
from .emit import emitter
from .recovery import make_session_store
from .engine import EngineConfig, EngineServer
from .fanout import Fanout
from .gap_fill import LogGapFill
from .namespace import GalaxyNamespace
from .ratelimit import MemoryRateLimiter, make_rate_limiter
from .router import router_from_settings
from .server import SocketIOServer
from .transports.handshake import Gate


def build_engine() -> EngineServer:
    event_log = emitter().log  # the same log the process's emits append to
    namespace = GalaxyNamespace(
        router_from_settings(),
        settings.HEARTBEAT_INTERVAL_MS / 1000,
        verifier=verifier_from_settings(),
        connection_limit=make_connection_limit(settings.REDIS_URL, settings.MAX_CONNECTIONS_PER_USER, settings.REDIS_PREFIX),
        # Per connection, and a connection lives in one process: nothing to share, so no Redis
        # trip per event. What a client could gain by reconnecting, the handshake limit (shared) bounds.
        event_limiter=MemoryRateLimiter(
            settings.RATE_LIMIT_REQUESTS, settings.RATE_LIMIT_WINDOW_MS, settings.RATE_LIMIT_BLOCK_MS,
        ),
        event_log=event_log,
    )
    # With Redis, the layer's subscriber connection can drop and come back: what was published
    # meanwhile is read back from the log. The in-memory layer loses nothing.
    fanout = Fanout(fill_gap=LogGapFill(event_log) if settings.REDIS_URL else None, recheck=namespace.recheck_room)
    sio = SocketIOServer(
        {"/": namespace}, fanout, settings.CONNECTION_TIMEOUT_MS / 1000,
        event_log=event_log,
        session_store=make_session_store(settings.REDIS_URL, settings.RECOVERY_MAX_DISCONNECTION_MS, settings.REDIS_PREFIX),
    )
    config = EngineConfig(
        ping_interval=settings.HEARTBEAT_INTERVAL_MS / 1000,
        ping_timeout=settings.CONNECTION_TIMEOUT_MS / 1000,
        max_payload=settings.MAX_HTTP_BUFFER_SIZE,
        max_backlog=settings.MAX_SEND_BACKLOG,
    )
    engine = EngineServer(config, sio)
    metrics.register(metrics.ProcessMetrics(engine, sio, fanout, emitter()))
    return engine


def cleanups_of(engine: EngineServer, gate: Gate) -> list:
    """What ROOM_CLEANUP_INTERVAL sweeps in this process (Redis expires its own keys)."""
    sio = engine.handler
    namespace = sio.namespaces["/"]
    found = [namespace.event_limiter.sweep]
    for part in (sio.session_store, gate.handshake_limiter):
        if hasattr(part, "sweep"):
            found.append(part.sweep)
    return found


def gate_from_settings() -> Gate:
    return Gate(
        cors=CorsPolicy(frozenset(settings.ALLOWED_ORIGINS), settings.CORS_CREDENTIALS),
        handshake_limiter=make_rate_limiter(
            settings.REDIS_URL, settings.RATE_LIMIT_HANDSHAKES, settings.RATE_LIMIT_WINDOW_MS,
            settings.RATE_LIMIT_BLOCK_MS, prefix=f"{settings.REDIS_PREFIX}:rl:handshakes",
        ),
        trusted_proxies=list(settings.TRUSTED_PROXIES),
    )

