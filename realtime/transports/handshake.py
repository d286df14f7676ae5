"""What a transport checks before any session work: the query string and the Origin."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from ..protocol.engineio import ErrorCode


class HandshakeError(Exception):
    def __init__(self, code: ErrorCode, status: int = 400) -> None:
        super().__init__(code.message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Handshake:
    transport: str
    sid: str | None


def header(scope: dict, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


def origin_of(scope: dict) -> str | None:
    value = header(scope, b"origin")
    return value.decode("latin-1") if value is not None else None


def parse_handshake(scope: dict, transport: str) -> Handshake:
    """The EIO, transport and sid query parameters, or the Engine.IO error they deserve."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("EIO", [None])[0] != "4":
        raise HandshakeError(ErrorCode.UNSUPPORTED_PROTOCOL_VERSION)
    requested = query.get("transport", [None])[0]
    if requested not in ("polling", "websocket"):
        raise HandshakeError(ErrorCode.UNKNOWN_TRANSPORT)
    if requested != transport:
        raise HandshakeError(ErrorCode.BAD_REQUEST)
    sid = query.get("sid", [None])[0]
    return Handshake(transport=requested, sid=sid)
