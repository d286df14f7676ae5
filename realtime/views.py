"""HTTP endpoints of the realtime app: `/health`, `/metrics` (JSON and Prometheus), `/api/auth/me`."""

import time

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from . import metrics
from .auth import AuthFailed, bearer_token, verifier_from_settings
from .schema import UNAUTHENTICATED

STARTED_AT = time.monotonic()


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy", "degraded", "unhealthy"])
    timestamp = serializers.IntegerField(help_text="milliseconds since the epoch")
    uptime = serializers.IntegerField(help_text="seconds since this process started")
    version = serializers.CharField()
    environment = serializers.CharField()
    checks = serializers.DictField(child=serializers.CharField(), help_text='"ok" or "failed: why", per check')


class MeSerializer(serializers.Serializer):
    userId = serializers.CharField()
    userEmail = serializers.CharField(allow_null=True)
    permissions = serializers.ListField(child=serializers.CharField())


class HealthView(APIView):
    """The seed's health answer plus the checks behind it.

    healthy (200): all checks pass. degraded (200): Redis is unreachable (sockets stay up and
    events queue, so the node should stay in rotation) or a domain check failed (the market
    feed's Celery beat stopped). unhealthy (503): the database is down.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(summary="Health", responses={
        200: OpenApiResponse(HealthSerializer, description="healthy, or degraded (Redis or a domain check failing)"),
        503: OpenApiResponse(HealthSerializer, description="unhealthy: no database"),
    })
    def get(self, request):
        checks = {"database": _check_database()}
        if settings.REDIS_URL:
            checks["redis"] = _check_redis()
        for name, path in settings.HEALTH_CHECKS.items():
            checks[name] = _run_check(path)
        if checks["database"] != "ok":
            status, code = "unhealthy", 503
        elif any(result != "ok" for result in checks.values()):
            status, code = "degraded", 200
        else:
            status, code = "healthy", 200
        body = {
            "status": status,
            "timestamp": int(time.time() * 1000),
            "uptime": int(time.monotonic() - STARTED_AT),
            "version": settings.GALAXY_VERSION,
            "environment": settings.NODE_ENV,
            "checks": checks,
        }
        return Response(body, status=code)


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:
        return f"failed: {exc.__class__.__name__}"


def _run_check(path: str) -> str:
    try:
        return import_string(path)()
    except Exception as exc:
        return f"failed: {exc.__class__.__name__}"


def _check_redis() -> str:
    import redis

    try:
        redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1).ping()
        return "ok"
    except Exception as exc:
        return f"failed: {exc.__class__.__name__}"


@csrf_exempt  # read-only: another method is a 405, not the CSRF check's HTML 403
@require_safe
async def metrics_view(request):
    """The seed's metrics JSON across the cluster; Prometheus text when the client asks for it."""
    snapshots = await metrics.cluster_snapshots()
    extra = {name: await database_sync_to_async(_provide)(path) for name, path in settings.REALTIME_METRICS.items()}
    accept = request.headers.get("Accept", "")
    if request.path.endswith("/prometheus") or "text/plain" in accept or "openmetrics" in accept:
        return HttpResponse(metrics.prometheus(snapshots, extra), content_type="text/plain; version=0.0.4")
    return JsonResponse({**metrics.summarise(snapshots, show_private=await _is_admin(request)), **extra})


def _provide(path: str):
    try:
        return import_string(path)()
    except Exception as exc:
        return {"error": exc.__class__.__name__}


async def _is_admin(request) -> bool:
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        return False
    try:
        return (await verifier_from_settings().verify(token)).is_admin
    except AuthFailed:
        return False


class MeView(APIView):
    """Who the bearer token says you are, as the socket's `authenticated` event would."""

    @extend_schema(summary="The bearer token's user", responses={200: MeSerializer, 401: UNAUTHENTICATED})
    def get(self, request):
        user = request.user
        return Response({"userId": user.user_id, "userEmail": user.email, "permissions": list(user.permissions)})
