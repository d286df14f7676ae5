"""HTTP endpoint of the market app: the feed's schedule and spend (what /metrics should include)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime.api import REDIS_AWAY, ErrorSerializer

from . import selectors
from .serializers import FeedBudgetSerializer

# Seconds a client is asked to wait while Redis is away: a restart or a failover, as the
# database's 503 asks (realtime.rest).
REDIS_RETRY_AFTER = 5


class FeedView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(summary="The market feed's schedule and Horizon request spend", responses={
        200: FeedBudgetSerializer,
        503: OpenApiResponse(ErrorSerializer, description="Redis, which holds the feed's state, is unreachable: {code: service_unavailable, message}, Retry-After"),
    })
    def get(self, request):
        try:
            return Response(selectors.feed_budget())
        except REDIS_AWAY:  # spend, pauses and per-pair state: a report without them would mislead
            body = {"code": "service_unavailable", "message": "Redis, which holds the feed's state, is unavailable: try again shortly"}
            return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": str(REDIS_RETRY_AFTER)})
