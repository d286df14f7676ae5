"""DirectSocketIORoute: Socket.IO's requests and WebSockets straight to their transport, the rest to the routers."""

from __future__ import annotations

from types import SimpleNamespace

from realtime.cors import CorsPolicy
from realtime.transports import DirectSocketIORoute


class Recorder:
    def __init__(self) -> None:
        self.scopes: list[dict] = []

    async def __call__(self, scope, receive, send):
        self.scopes.append(scope)


async def test_only_socketio_requests_and_websockets_for_exactly_the_prefix_skip_the_routers():
    routers = Recorder()
    # Refuses every browser origin: a request that reaches the polling transport is answered 403.
    gate = SimpleNamespace(cors=CorsPolicy(allowed_origins=frozenset(), allow_credentials=False))
    app = DirectSocketIORoute(routers, engine=None, gate=gate)
    from_elsewhere = [(b"origin", b"https://elsewhere.example")]
    direct_ws = [{"type": "websocket", "path": "/socket.io/"},
                 {"type": "websocket", "path": "/api/socket.io/", "root_path": "/api"}]
    direct_http = [{"type": "http", "method": "GET", "path": "/socket.io/", "headers": from_elsewhere},
                   {"type": "http", "method": "POST", "path": "/api/socket.io/", "root_path": "/api", "headers": from_elsewhere}]
    routed = [{"type": "http", "path": "/socket.io/x"},
              {"type": "http", "path": "/health"},
              {"type": "websocket", "path": "/socket.io/x"},
              {"type": "websocket", "path": "/engine.io/"},
              {"type": "websocket", "path": "/socket.io/", "root_path": "/api"},
              {"type": "http", "path": "/socket.io/", "root_path": "/api"}]
    received, sent = [], []

    async def client_gone():  # the WebSocket transport's first message: it ends at once, quietly
        received.append(1)
        return {"type": "websocket.disconnect", "code": 1006}

    async def send(message):
        sent.append(message)

    for scope in direct_ws + direct_http + routed:
        await app(scope, client_gone, send)
    assert len(received) == len(direct_ws)  # each direct WebSocket reached a WebSocket transport
    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert statuses == [403] * len(direct_http)  # each direct request reached the polling transport
    assert routers.scopes == routed  # the rest went to the routers, untouched
