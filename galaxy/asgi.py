"""The ASGI application: Socket.IO under /socket.io/ (both transports), Django for the rest."""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "galaxy.settings")

from django.core.asgi import get_asgi_application  # noqa: E402  (settings must be set first)

django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import re_path  # noqa: E402

from automation.tasks import ensure_engine_running  # noqa: E402
from realtime.app import build_engine, cleanups_of, gate_from_settings  # noqa: E402
from realtime.forwarding import Forwarder  # noqa: E402
from realtime.lifecycle import Lifecycle, LifecycleMiddleware  # noqa: E402
from realtime.transports import DirectSocketIORoute, handoff, no_such_websocket, socketio_routes  # noqa: E402
from transactions.tasks import ensure_watcher_running  # noqa: E402

engine = build_engine()
# Several nodes share sessions only through Redis; the in-memory layer is one process.
forwarder = Forwarder(engine) if settings.REDIS_URL else None
gate = gate_from_settings()
http_routes, websocket_routes = socketio_routes(engine, gate, forwarder=forwarder)

lifecycle = Lifecycle(
    engine,
    # The in-process transaction watcher (embedded default) runs from the first request: a
    # socket hears its wallets' events in user:{id} without ever sending a transaction:* event;
    # the feed, when active automations need prices nobody subscribed to.
    # With Redis, several processes: polling requests and WebSocket upgrades for another's
    # session go to it (forwarding, handoff).
    on_start=[*([forwarder.start, lambda: handoff.start_receiving(engine.node_id)] if forwarder else []),
              ensure_watcher_running, ensure_engine_running],
    on_stop=[forwarder.stop] if forwarder else [],
    cleanups=cleanups_of(engine, gate),
    cleanup_interval=settings.ROOM_CLEANUP_INTERVAL_MS / 1000,
)

routers = ProtocolTypeRouter(
    {
        # Static files (the live page's script, the admin's) from the apps' static/ folders,
        # with no collectstatic step; the Socket.IO route is exactly /socket.io/, so the
        # client bundle at /socket.io/socket.io.min.js reaches Django (web.urls).
        "http": URLRouter([*http_routes, re_path(r"", ASGIStaticFilesHandler(django_application))]),
        "websocket": URLRouter([*websocket_routes, re_path(r"", no_such_websocket)]),
    }
)
# Socket.IO's requests and WebSockets go straight to their transport: each router a WebSocket
# passes through stays in its call for the connection's life (memory per connection), and a
# long-polling client pays them on every request (CPU per message). The routers still serve the
# rest, and would route Socket.IO's the same way.
application = LifecycleMiddleware(DirectSocketIORoute(routers, engine, gate, forwarder=forwarder), lifecycle)

# Garbage collection for a process holding thousands of long-lived connections (README,
# "Benchmark"). A full collection walks every object; while connections pile up (a deploy's
# reconnect storm) one came every 25 % of growth, ~0.2 s each at 5,000 connections, ~18 % of a
# connect's CPU. Start-up objects (Django, the apps) live as long as the process: frozen out of
# every collection. A full collection waits for 100 middle-generation ones instead of 10:
# connects cost ~20 % less (1,050 -> 845 us, N = 6,000), fan-out latency is unchanged; cyclic
# garbage waits longer (churning 3,000 connections levels off ~30 MB higher).
FULL_COLLECTION_AFTER = 100
gc.freeze()
gc.set_threshold(*gc.get_threshold()[:2], FULL_COLLECTION_AFTER)
