"""OpenAPI pieces the REST views share: the bearer scheme, error bodies, and /metrics' paths."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class SupabaseBearerScheme(OpenApiAuthenticationExtension):
    """SupabaseJWTAuthentication as OpenAPI's HTTP bearer scheme (a Supabase access token)."""

    target_class = "realtime.auth.SupabaseJWTAuthentication"
    name = "supabaseBearer"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A Supabase access token; `manage.py mint_token --user ID` prints one in development."}


class ErrorSerializer(serializers.Serializer):
    """Our typed errors, as sockets get them in an ack's `error`."""

    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.JSONField(required=False)


class DetailSerializer(serializers.Serializer):
    """DRF's own refusals (401, 403, 405)."""

    detail = serializers.CharField()


FIELD_ERRORS = OpenApiResponse(
    {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    description="field errors: {field: [messages]} (non_field_errors for the body as a whole)",
)
UNAUTHENTICATED = OpenApiResponse(DetailSerializer, description="no bearer token, or one that does not verify")
NOT_ADMIN = OpenApiResponse(DetailSerializer, description="the token lacks the `admin` permission")

_METRICS_JSON = {
    "type": "object",
    "required": ["server", "connections", "rooms", "events"],
    "properties": {
        "server": {"type": "object"},
        "connections": {"type": "object"},
        "rooms": {"type": "object"},
        "events": {"type": "object"},
    },
    "additionalProperties": True,
    "description": "The seed's metrics summed over every live node, plus recovery, rateLimits, latency and the market feed.",
}


def add_metrics_paths(result, generator, request, public):
    """drf-spectacular postprocessing hook: /metrics and /metrics/prometheus are async Django views
    (DRF views cannot be async), so they are described here rather than generated."""
    prometheus = {"description": "Prometheus text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}
    result["paths"]["/metrics"] = {"get": {
        "operationId": "metrics_retrieve", "tags": ["metrics"], "summary": "Metrics (JSON, or Prometheus text with Accept: text/plain)",
        "description": "Private room names are listed only with an `admin` bearer token.",
        "security": [{"supabaseBearer": []}, {}],
        "responses": {"200": {"description": "the cluster's metrics",
                              "content": {"application/json": {"schema": _METRICS_JSON}, **prometheus["content"]}}},
    }}
    result["paths"]["/metrics/prometheus"] = {"get": {
        "operationId": "metrics_prometheus_retrieve", "tags": ["metrics"], "summary": "Metrics for Prometheus",
        "security": [{}], "responses": {"200": prometheus},
    }}
    return result
