"""POST /api/system/notifications: an operator's message to every client in `system:notifications`."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime.auth import HasAdminPermission
from realtime.schema import FIELD_ERRORS, NOT_ADMIN, UNAUTHENTICATED, ErrorSerializer

from . import services
from .models import SystemNotification
from .serializers import NotificationInSerializer, NotificationOutSerializer


class NotificationView(APIView):
    permission_classes = [IsAuthenticated, HasAdminPermission]

    @extend_schema(
        summary="Send a system notification",
        description="Emits `system:notification {id, level, title, message, timestamp}` to the public room "
        "`system:notifications` and records who sent it. Requires a token with the `admin` permission.",
        request=NotificationInSerializer,
        responses={
            201: NotificationOutSerializer,
            400: FIELD_ERRORS,
            401: UNAUTHENTICATED,
            403: NOT_ADMIN,
            503: OpenApiResponse(ErrorSerializer, description="recorded, but the channel layer could not be reached (code emit_failed)"),
        },
    )
    def post(self, request):
        body = NotificationInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        sent = services.notification_send(**body.validated_data, sender=request.user.user_id, via=SystemNotification.Via.REST)
        if not sent.delivered:
            return Response({"code": "emit_failed", "message": "recorded, but the channel layer could not be reached: nobody was told"},
                            status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(services.notification_payload(sent), status=status.HTTP_201_CREATED)
