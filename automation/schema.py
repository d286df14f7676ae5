"""OpenAPI description of the bearer authentication (Supabase JWTs) for drf-spectacular's /api/schema/."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class SupabaseJWTScheme(OpenApiAuthenticationExtension):
    """Registered on import (views import it): every view using the verifier gets this scheme."""

    target_class = "realtime.auth.SupabaseJWTAuthentication"
    name = "SupabaseJWT"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A Supabase access token: Authorization: Bearer <token>"}
