"""DRF's parser, renderer and exception handler for every REST view: bad input is a JSON 4xx,
a database outage a JSON 503, never one of Django's HTML pages."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, parsers, renderers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

# Seconds a client is asked to wait after a database outage's 503: a restart or a failover.
DATABASE_RETRY_AFTER = 5


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "request body too large"
    default_code = "payload_too_large"


def rest_exception_handler(exc, context):
    """DRF's, plus the request refusals Django raises while DRF reads the body, which would
    otherwise reach Django as HTML 400 pages: over DATA_UPLOAD_MAX_MEMORY_SIZE (413), or over
    its field and file counts (400); and the database unreachable (a passing outage: 503 with
    Retry-After, as the sockets' handlers answer it)."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        body = {"code": "service_unavailable", "message": "the database is unavailable: try again shortly"}
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": str(DATABASE_RETRY_AFTER)})
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        exc = exceptions.ParseError(str(exc))
    return exception_handler(exc, context)


class JSONParser(parsers.JSONParser):
    """DRF's; JSON nested deeper than Python's parser goes is a parse error like any malformed
    body (DRF catches ValueError only: it was a 500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from None


class JSONRenderer(renderers.JSONRenderer):
    """DRF's; a body UTF-8 cannot carry (a lone surrogate of the request's, echoed in "is not a
    valid choice") is written with \\u escapes instead, as JSON.stringify writes it."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            self.ensure_ascii = True  # this response's renderer only: DRF makes one per request
            return super().render(data, accepted_media_type, renderer_context)


def server_error(request):
    """Django's handler500: under /api/ a JSON body (any bug a view did not expect), elsewhere
    (the admin, the live page) Django's own page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "internal_error", "message": "Internal server error"}, status=500)
    return defaults.server_error(request)


@csrf_exempt  # any method: the answer is the same 404, never the CSRF check's HTML 403
def api_not_found(request):
    """Under /api/, a path no endpoint serves: the API's JSON error, not Django's HTML page."""
    return JsonResponse({"code": "not_found", "message": "no such endpoint"}, status=404)
