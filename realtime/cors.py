"""Which browser origins may reach the server (Socket.IO and the HTTP API), and the CORS headers that say so."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class CorsPolicy:
    allowed_origins: frozenset[str]  # exact origins; "*" allows any (development only)
    allow_credentials: bool

    def allows(self, origin: str | None, host: str | None = None) -> bool:
        # A request without Origin does not come from a browser page (mobile apps, servers,
        # CLI clients): CORS protects browsers' users, so there is nothing to enforce.
        if origin is None:
            return True
        # A page of this server itself (the live page at /) is same-origin, not cross-origin:
        # Node's Socket.IO never refuses its own pages either. Host only, not the scheme, since
        # TLS usually ends at a proxy in front.
        if host is not None and urlsplit(origin).netloc.lower() == host.lower():
            return True
        return "*" in self.allowed_origins or origin in self.allowed_origins

    def headers(self, origin: str | None) -> list[tuple[bytes, bytes]]:
        if origin is None or not self.allows(origin):
            return []
        headers = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
        if self.allow_credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        return headers

    def preflight_headers(self, origin: str | None, request_headers: bytes | None,
                          methods: bytes = b"GET, POST, OPTIONS") -> list[tuple[bytes, bytes]]:
        headers = self.headers(origin)
        headers.append((b"access-control-allow-methods", methods))
        if request_headers:  # reflected: the answer depends on them too (for shared caches)
            headers = [(n, b"Origin, Access-Control-Request-Headers" if n == b"vary" else v) for n, v in headers]
            headers.append((b"access-control-allow-headers", request_headers))
        # One day, the longest Chromium honours is two hours anyway; it saves a round trip per poll.
        headers.append((b"access-control-max-age", b"86400"))
        return headers
