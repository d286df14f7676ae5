"""Django middleware: the Socket.IO endpoint's CORS policy (realtime/cors.py) on the HTTP API.

The seed's ALLOWED_ORIGINS and CORS_CREDENTIALS are the server's, as the Node server's cors()
was on every route: a dashboard on an allowed origin reads /health and /metrics and calls /api/
with its bearer token. Not the admin (cookie sessions: same-origin only) nor the pages, which
are same-origin. Socket.IO's routes never reach Django; they apply the same policy themselves.
"""

from __future__ import annotations

import re

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpResponse
from django.utils.decorators import sync_and_async_middleware

from .cors import CorsPolicy

# What a page of another origin may call, or load: the client bundles too, as Socket.IO's server
# serves them (an ES module is fetched with CORS: `import {io} from ".../socket.io.esm.min.js"`).
CORS_PATHS = re.compile(r"/(api/|health$|metrics(/|$)|socket\.io/socket\.io[a-z.]*\.js(\.map)?$)")
REST_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"


@sync_and_async_middleware
def cors_middleware(get_response):
    policy = CorsPolicy(frozenset(settings.ALLOWED_ORIGINS), settings.CORS_CREDENTIALS)

    def preflight(request) -> HttpResponse | None:
        """The answer to a CORS preflight on a CORS path (403 for an origin not allowed, as
        /socket.io/ answers), or None for any other request."""
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        origin = request.headers.get("Origin")
        if not CORS_PATHS.match(request.path) or origin is None:
            return None
        if not policy.allows(origin, request.get_host()):
            return HttpResponse(status=403)
        requested = request.headers.get("Access-Control-Request-Headers")
        return with_headers(HttpResponse(status=204), policy.preflight_headers(
            origin, requested.encode("latin-1") if requested else None, methods=REST_METHODS))

    def answered(request, response: HttpResponse) -> HttpResponse:
        if CORS_PATHS.match(request.path):
            with_headers(response, policy.headers(request.headers.get("Origin")))
        return response

    if iscoroutinefunction(get_response):
        async def middleware(request):
            if (response := preflight(request)) is not None:
                return response
            return answered(request, await get_response(request))
    else:
        def middleware(request):
            if (response := preflight(request)) is not None:
                return response
            return answered(request, get_response(request))
    return middleware


def with_headers(response: HttpResponse, headers: list[tuple[bytes, bytes]]) -> HttpResponse:
    for name, value in headers:
        response.headers[name.decode("latin-1")] = value.decode("latin-1")
    return response
