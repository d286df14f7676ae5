"""HTTP endpoint of the market app: the feed's schedule and spend (what /metrics should include)."""

from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors


class FeedView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request):
        return Response(selectors.feed_budget())
