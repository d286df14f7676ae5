"""DirectWebSocketRoute: Socket.IO's WebSockets straight to their transport, the rest to the routers."""

from __future__ import annotations

from types import SimpleNamespace

from realtime.transports import DirectWebSocketRoute, WebSocketTransport


class Recorder:
    def __init__(self) -> None:
        self.scopes: list[dict] = []

    async def __call__(self, scope, receive, send):
        self.scopes.append(scope)


async def test_only_a_websocket_for_exactly_the_prefix_skips_the_routers(monkeypatch):
    reached: list[dict] = []

    async def transport_call(self, scope, receive, send):
        reached.append(scope)

    monkeypatch.setattr(WebSocketTransport, "__call__", transport_call)
    routers = Recorder()
    app = DirectWebSocketRoute(routers, engine=None, gate=SimpleNamespace(cors=None))
    direct = [{"type": "websocket", "path": "/socket.io/"},
              {"type": "websocket", "path": "/api/socket.io/", "root_path": "/api"}]
    routed = [{"type": "http", "path": "/socket.io/"},
              {"type": "websocket", "path": "/socket.io/x"},
              {"type": "websocket", "path": "/engine.io/"},
              {"type": "websocket", "path": "/socket.io/", "root_path": "/api"}]
    for scope in direct + routed:
        await app(scope, None, None)
    assert reached == direct  # the very scope, not a copy
    assert routers.scopes == routed
