"""DirectWebSocketRoute: Socket.IO's WebSockets straight to their transport, the rest to the routers."""

from __future__ import annotations

from types import SimpleNamespace

from realtime.transports import DirectWebSocketRoute


class Recorder:
    def __init__(self) -> None:
        self.scopes: list[dict] = []

    async def __call__(self, scope, receive, send):
        self.scopes.append(scope)


async def test_only_a_websocket_for_exactly_the_prefix_skips_the_routers():
    routers = Recorder()
    app = DirectWebSocketRoute(routers, engine=None, gate=SimpleNamespace(cors=None))
    direct = [{"type": "websocket", "path": "/socket.io/"},
              {"type": "websocket", "path": "/api/socket.io/", "root_path": "/api"}]
    routed = [{"type": "http", "path": "/socket.io/"},
              {"type": "websocket", "path": "/socket.io/x"},
              {"type": "websocket", "path": "/engine.io/"},
              {"type": "websocket", "path": "/socket.io/", "root_path": "/api"}]
    received = []

    async def client_gone():  # the real transport's first message: it ends at once, quietly
        received.append(1)
        return {"type": "websocket.disconnect", "code": 1006}

    for scope in direct + routed:
        await app(scope, client_gone, None)
    assert len(received) == len(direct)  # each direct scope reached a WebSocket transport
    assert routers.scopes == routed  # the rest went to the routers, untouched
