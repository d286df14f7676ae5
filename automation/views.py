"""REST endpoints of automations under /api/automations/: list, create, retrieve, update, delete, enable, disable, runs.

A user sees only their own automations; the `admin` permission sees all. Another user's
automation answers 404 like an absent one (no probing for ids).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime.api import FIELD_ERRORS, UNAUTHENTICATED, DetailSerializer, ErrorSerializer, RealtimeError

from . import selectors, services
from .serializers import (MAX_PAGE_SIZE, PAGE_SIZE, AutomationCreateSerializer, AutomationFilterSerializer, AutomationPageSerializer,
                          AutomationRunPageSerializer, AutomationRunSerializer, AutomationSerializer, AutomationWriteSerializer, PageQuerySerializer)

TAG = ["automations"]
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="no automation of that id is yours: {code: not_found, message}")
TOO_LARGE = OpenApiResponse(DetailSerializer, description="the body is over DATA_UPLOAD_MAX_MEMORY_SIZE")
COMPLETED = OpenApiResponse(ErrorSerializer, description="enable: it fired maxExecutions times: {code: automation_completed, message}")
# What every operation here may answer besides its success (401: no token, or a bad one).
READ = {401: UNAUTHENTICATED, 404: NOT_FOUND}
WRITE = {400: FIELD_ERRORS, 401: UNAUTHENTICATED, 404: NOT_FOUND, 413: TOO_LARGE}


class Pages(PageNumberPagination):
    page_size = PAGE_SIZE
    page_size_query_param = "pageSize"
    max_page_size = MAX_PAGE_SIZE


def caller(request) -> dict:
    return {"user_id": request.user.user_id, "is_admin": request.user.is_admin}


def not_found(exc: RealtimeError) -> Response:
    return Response(exc.body(), status=status.HTTP_404_NOT_FOUND)


class AutomationListView(APIView):
    """GET: the caller's automations, newest first, paginated; POST: a new one."""

    @extend_schema(tags=TAG, operation_id="api_automations_list", parameters=[AutomationFilterSerializer],
                   responses={200: AutomationPageSerializer, 400: FIELD_ERRORS, 401: UNAUTHENTICATED})
    def get(self, request):
        filters = AutomationFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        query = selectors.automations_filtered(
            **caller(request), status=wanted.get("status"), pair=wanted.get("pair"), wallet_id=wanted.get("walletId"),
            trigger_type=wanted.get("triggerType"), owner_id=wanted.get("userId") if request.user.is_admin else None,
        )
        pages = Pages()
        page = pages.paginate_queryset(query, request, view=self)
        return pages.get_paginated_response(AutomationSerializer(page, many=True).data)

    @extend_schema(tags=TAG, request=AutomationCreateSerializer, responses={201: AutomationSerializer, 400: FIELD_ERRORS, 401: UNAUTHENTICATED, 413: TOO_LARGE})
    def post(self, request):
        body = AutomationCreateSerializer(data=request.data, context=caller(request))
        body.is_valid(raise_exception=True)
        automation = services.automation_create(**body.validated_data)
        return Response(services.status_of(automation), status=status.HTTP_201_CREATED)


class AutomationDetailView(APIView):
    """GET, PUT (every writable field), PATCH (some), DELETE one automation."""

    @extend_schema(tags=TAG, responses={200: AutomationSerializer, **READ})
    def get(self, request, automation_id: str):
        try:
            automation = selectors.automation_of(automation_id=automation_id, **caller(request))
        except RealtimeError as exc:
            return not_found(exc)
        return Response(services.status_of(automation))

    @extend_schema(tags=TAG, request=AutomationWriteSerializer, responses={200: AutomationSerializer, **WRITE})
    def put(self, request, automation_id: str):
        return self.update(request, automation_id, partial=False)

    @extend_schema(tags=TAG, request=AutomationWriteSerializer, responses={200: AutomationSerializer, **WRITE})
    def patch(self, request, automation_id: str):
        return self.update(request, automation_id, partial=True)

    def update(self, request, automation_id: str, *, partial: bool) -> Response:
        try:
            automation = selectors.automation_of(automation_id=automation_id, **caller(request))
        except RealtimeError as exc:
            return not_found(exc)
        body = AutomationWriteSerializer(automation, data=request.data, partial=partial, context=caller(request))
        body.is_valid(raise_exception=True)
        automation = services.automation_update(automation=automation, changes=body.validated_data)
        return Response(services.status_of(automation))

    @extend_schema(tags=TAG, responses={204: None, **READ})
    def delete(self, request, automation_id: str):
        try:
            automation = selectors.automation_of(automation_id=automation_id, **caller(request))
        except RealtimeError as exc:
            return not_found(exc)
        services.automation_delete(automation=automation)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AutomationEnableView(APIView):
    """POST {id}/enable: active from the next price update; `automation:status` goes out."""

    change = staticmethod(services.automation_enable)

    @extend_schema(tags=TAG, request=None, responses={200: AutomationSerializer, **READ, 409: COMPLETED})
    def post(self, request, automation_id: str):
        try:
            automation = selectors.automation_of(automation_id=automation_id, **caller(request))
        except RealtimeError as exc:
            return not_found(exc)
        try:
            return Response(services.status_of(self.change(automation=automation)))
        except services.AutomationCompleted as exc:
            return Response(exc.body(), status=status.HTTP_409_CONFLICT)


class AutomationDisableView(AutomationEnableView):
    """POST {id}/disable: paused from the next price update; `automation:status` goes out."""

    change = staticmethod(services.automation_disable)


class AutomationRunsView(APIView):
    """GET {id}/runs: the automation's runs, newest first, paginated."""

    @extend_schema(tags=TAG, parameters=[PageQuerySerializer],
                   responses={200: AutomationRunPageSerializer, 400: FIELD_ERRORS, **READ})
    def get(self, request, automation_id: str):
        try:
            automation = selectors.automation_of(automation_id=automation_id, **caller(request))
        except RealtimeError as exc:
            return not_found(exc)
        PageQuerySerializer(data=request.query_params).is_valid(raise_exception=True)
        pages = Pages()
        page = pages.paginate_queryset(selectors.automation_runs(automation=automation), request, view=self)
        return pages.get_paginated_response(AutomationRunSerializer(page, many=True).data)

