"""What a transport checks before any session work: the query string and the Origin."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs

from ..cors import CorsPolicy
from ..protocol.engineio import ErrorCode
from ..ratelimit import client_ip


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


# What a session reads of its handshake's headers once it is open: Authorization, for each
# namespace's CONNECT. The rest (CORS, the client's address) is decided at the handshake.
SESSION_HEADERS = frozenset({b"authorization"})


def session_headers(scope: dict) -> list[tuple[bytes, bytes]]:
    """The handshake's headers a session keeps: a session holds its scope for its whole life,
    and a browser sends a dozen headers or more (cookies among them) that nothing reads again."""
    return [(key, value) for key, value in scope.get("headers", ()) if key in SESSION_HEADERS]


def origin_of(scope: dict) -> str | None:
    value = header(scope, b"origin")
    return value.decode("latin-1") if value is not None else None


def host_of(scope: dict) -> str | None:
    value = header(scope, b"host")
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


@dataclass(frozen=True)
class Gate:
    """What a request must pass before it reaches the engine: its Origin, and for a new
    session, the handshake rate limit of its client address."""

    cors: CorsPolicy
    handshake_limiter: object = None  # a ratelimit limiter, or None for no limit
    trusted_proxies: list[str] = field(default_factory=list)

    async def admit_new_session(self, scope: dict) -> int | None:
        """None if a new session may open, else how many ms the client must wait."""
        if self.handshake_limiter is None:
            return None
        verdict = await self.handshake_limiter.hit("hs:" + client_ip(scope, self.trusted_proxies))
        return None if verdict.allowed else verdict.retry_after_ms
