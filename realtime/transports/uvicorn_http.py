"""uvicorn's httptools HTTP protocol, recording the worker's server for handed-over WebSockets.

Production runs uvicorn with this class (`--http realtime.transports.uvicorn_http:HttpToolsProtocol`,
bin/serve-production). A connection another worker hands to this one (handoff.py) is served with
a WebSocket protocol made as uvicorn makes one on an upgrade, from the worker's Config, ServerState
and app state; nothing in the application can reach them, so the first HTTP connection records them.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as UvicornHttpToolsProtocol

from . import handoff


class HttpToolsProtocol(UvicornHttpToolsProtocol):
    def __init__(self, config, server_state, app_state, _loop=None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        handoff.remember_server(config, server_state, app_state)
