"""HTTP endpoint of the market app: the feed's schedule and spend (what /metrics should include)."""

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors
from .serializers import FeedBudgetSerializer


class FeedView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(summary="The market feed's schedule and Horizon request spend", responses={200: FeedBudgetSerializer})
    def get(self, request):
        return Response(selectors.feed_budget())
