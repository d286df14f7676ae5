"""HTTP endpoints of the realtime app: the seed's `/health`, and `/api/auth/me`."""

import time

from django.conf import settings
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

STARTED_AT = time.monotonic()


class HealthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request):
        return Response(
            {
                "status": "healthy",
                "timestamp": int(time.time() * 1000),
                "uptime": int(time.monotonic() - STARTED_AT),
                "version": settings.GALAXY_VERSION,
                "environment": settings.NODE_ENV,
            }
        )


class MeView(APIView):
    """Who the bearer token says you are, as the socket's `authenticated` event would."""

    def get(self, request):
        user = request.user
        return Response({"userId": user.user_id, "userEmail": user.email, "permissions": list(user.permissions)})
