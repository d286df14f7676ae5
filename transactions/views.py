"""REST endpoints of the transactions app: register a submitted hash, submit a signed envelope."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers as drf, status
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime.api import RealtimeError
from realtime.api import UNAUTHENTICATED, ErrorSerializer

from . import services, tasks
from .serializers import RegisterSerializer, SubmitSerializer

# Our error codes as HTTP statuses (the body is the same {code, message} sockets get).
HTTP_STATUS = {"not_found": 404, "invalid_envelope": 400, "submission_rejected": 400, "horizon_unavailable": 503}


class TrackedSerializer(drf.Serializer):
    """services.status_of: a tracked transaction as `transaction:status` shows it."""

    hash = drf.CharField()
    userId = drf.CharField()
    walletId = drf.CharField()
    status = drf.ChoiceField(choices=["pending", "confirmed", "failed"])
    fromAddress = drf.CharField(allow_blank=True)
    toAddress = drf.CharField(allow_blank=True)
    amount = drf.FloatField()
    asset = drf.CharField()
    network = drf.CharField()
    createdAt = drf.IntegerField()
    source = drf.CharField()
    blockNumber = drf.IntegerField(required=False)
    confirmedAt = drf.IntegerField(required=False)
    error = drf.CharField(required=False, allow_null=True)
    errorCode = drf.CharField(required=False, allow_null=True)
    failedAt = drf.IntegerField(required=False)


RESPONSES = {
    201: OpenApiResponse(TrackedSerializer, description="tracked; `transaction:pending` emitted"),
    400: OpenApiResponse(description="DRF field errors `{field: [messages]}`, or `{code, message, details?}` "
                         "(`invalid_envelope`, `submission_rejected` with `details.errorCode`)"),
    401: UNAUTHENTICATED,
    404: OpenApiResponse(ErrorSerializer, description="`not_found`: no such wallet of the caller's"),
    503: OpenApiResponse(ErrorSerializer, description="`horizon_unavailable`"),
}


def error_response(exc: RealtimeError) -> Response:
    return Response(exc.body(), status=HTTP_STATUS.get(exc.code, 400))


def created(tracked) -> Response:
    tasks.announce_now_sync(tracked)
    return Response(services.status_of(tracked), status=status.HTTP_201_CREATED)


class RegisterView(APIView):
    """POST /api/transactions/ {walletId, hash, toAddress?, amount?, asset?} -> 201 and transaction:pending."""

    @extend_schema(summary="Track a transaction the caller submitted", request=RegisterSerializer, responses=RESPONSES)
    def post(self, request):
        body = RegisterSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            tracked = services.transaction_register(user_id=request.user.user_id, wallet_id=data["walletId"], tx_hash=data["hash"],
                                                    to_address=data["toAddress"], amount=data["amount"], asset=data["asset"])
        except RealtimeError as exc:
            return error_response(exc)
        return created(tracked)


class SubmitView(APIView):
    """POST /api/transactions/submit {walletId, envelope} -> Horizon's transactions_async, 201, pending."""

    @extend_schema(summary="Submit a signed envelope to Horizon and track it", request=SubmitSerializer, responses=RESPONSES)
    def post(self, request):
        body = SubmitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            tracked = services.transaction_submit(user_id=request.user.user_id, wallet_id=body.validated_data["walletId"],
                                                  envelope_xdr=body.validated_data["envelope"])
        except RealtimeError as exc:
            return error_response(exc)
        return created(tracked)
