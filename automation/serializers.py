"""Shapes of automations for REST and the automation:* events (one set for both): output, input, filters."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from market.selectors import pair_enabled
from market.serializers import PairField
from realtime.api import RealtimeError, StrictCharField, StrictRegexField
from transactions.selectors import wallet_of
from transactions.serializers import StrictIntegerField

from .models import Automation, AutomationRun
from .validation import error_detail, validate_action, validate_trigger

ID_PATTERN = r"^[A-Za-z0-9-]{1,64}$"
AUTOMATION_ID = StrictRegexField(ID_PATTERN, max_length=64)
# A cooldown beyond 30 days is a disabled rule in disguise; the bound keeps the number sane.
MAX_COOLDOWN_SECONDS = 30 * 86400
# What a PositiveIntegerField holds on every database Django supports (PostgreSQL's integer).
MAX_EXECUTIONS = 2**31 - 1
# 50 fits a dashboard page; 200 caps one response's rows (and its query).
PAGE_SIZE, MAX_PAGE_SIZE = 50, 200
# The socket list answers in one message; past this many, REST's paginated list is the way.
SOCKET_LIST_LIMIT = 200


@extend_schema_field(OpenApiTypes.INT)
class MillisecondsField(serializers.Field):
    """A datetime as epoch milliseconds (the seed's executedAt, errorAt, ...), or null."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: datetime | None) -> int | None:
        return None if value is None else int(value.timestamp() * 1000)


class AutomationIdsSerializer(serializers.Serializer):
    automationIds = serializers.ListField(child=AUTOMATION_ID, min_length=1, max_length=100)


class AutomationIdSerializer(serializers.Serializer):
    automationId = StrictRegexField(ID_PATTERN, max_length=64)


class AutomationListRequestSerializer(serializers.Serializer):
    """automation:list {walletId?}."""

    walletId = StrictRegexField(ID_PATTERN, max_length=64, required=False)


class AutomationSerializer(serializers.ModelSerializer):
    """An automation as REST returns it and `automation:status` carries it. Nothing about keys."""

    automationId = serializers.CharField(source="id", read_only=True)
    userId = serializers.CharField(source="owner_id", read_only=True)
    walletId = serializers.CharField(source="wallet_id", read_only=True)
    triggerType = serializers.CharField(source="trigger_type", read_only=True)
    triggerParams = serializers.JSONField(source="trigger_params", read_only=True)
    actionType = serializers.CharField(source="action_type", read_only=True)
    actionParams = serializers.JSONField(source="action_params", read_only=True)
    cooldownSeconds = serializers.IntegerField(source="cooldown_seconds", read_only=True)
    maxExecutions = serializers.IntegerField(source="max_executions", read_only=True, allow_null=True)
    triggerCount = serializers.IntegerField(source="trigger_count", read_only=True)
    executionCount = serializers.IntegerField(source="execution_count", read_only=True)
    failureCount = serializers.IntegerField(source="failure_count", read_only=True)
    lastTriggeredAt = MillisecondsField(source="last_triggered_at", allow_null=True)
    lastExecutedAt = MillisecondsField(source="last_executed_at", allow_null=True)
    createdAt = MillisecondsField(source="created_at")
    updatedAt = MillisecondsField(source="updated_at")

    class Meta:
        model = Automation
        fields = ["automationId", "userId", "walletId", "name", "status", "pair", "triggerType", "triggerParams",
                  "actionType", "actionParams", "cooldownSeconds", "maxExecutions", "triggerCount", "executionCount",
                  "failureCount", "lastTriggeredAt", "lastExecutedAt", "createdAt", "updatedAt"]
        read_only_fields = fields


class AutomationRunSerializer(serializers.ModelSerializer):
    runId = serializers.CharField(source="id", read_only=True)
    automationId = serializers.CharField(source="automation_id", read_only=True)
    triggerCondition = serializers.CharField(source="trigger_condition", read_only=True)
    triggerData = serializers.JSONField(source="trigger_data", read_only=True)
    transactionHash = serializers.CharField(source="transaction_hash", read_only=True)
    errorCode = serializers.CharField(source="error_code", read_only=True)
    triggeredAt = MillisecondsField(source="triggered_at")
    executedAt = MillisecondsField(source="executed_at", allow_null=True)
    finishedAt = MillisecondsField(source="finished_at", allow_null=True)

    class Meta:
        model = AutomationRun
        fields = ["runId", "automationId", "sequence", "status", "triggerCondition", "triggerData", "result",
                  "transactionHash", "error", "errorCode", "attempts", "triggeredAt", "executedAt", "finishedAt"]
        read_only_fields = fields


class AutomationWriteSerializer(serializers.Serializer):
    """POST (all required but the defaulted) and PUT/PATCH bodies. The context carries `user_id`
    and `is_admin`; `self.instance` is the automation being edited, if any.

    Validated data uses the model's field names, and `wallet` is the Wallet object itself."""

    name = StrictCharField(max_length=100)
    walletId = StrictRegexField(ID_PATTERN, max_length=64)
    pair = PairField()
    triggerType = serializers.ChoiceField(choices=Automation.TriggerType.choices)
    triggerParams = serializers.JSONField()
    actionType = serializers.ChoiceField(choices=Automation.ActionType.choices, default=Automation.ActionType.NOTIFY)
    actionParams = serializers.JSONField(default=dict)
    cooldownSeconds = StrictIntegerField(min_value=0, max_value=MAX_COOLDOWN_SECONDS, default=0)
    maxExecutions = StrictIntegerField(min_value=1, max_value=MAX_EXECUTIONS, allow_null=True, default=None)

    FIELDS = {"name": "name", "walletId": "wallet", "pair": "pair", "triggerType": "trigger_type",
              "triggerParams": "trigger_params", "actionType": "action_type", "actionParams": "action_params",
              "cooldownSeconds": "cooldown_seconds", "maxExecutions": "max_executions"}

    def validate_walletId(self, value: str):
        """The caller's own wallet (an admin may name anyone's): its owner owns the automation."""
        admin = self.context.get("is_admin", False)
        try:
            return wallet_of(wallet_id=value, user_id=None if admin else self.context["user_id"])
        except RealtimeError as exc:
            raise serializers.ValidationError(exc.message) from None

    def validate_pair(self, value: str) -> str:
        try:
            return pair_enabled(value).name
        except RealtimeError as exc:  # unknown, or not enabled on this server
            raise serializers.ValidationError(exc.message) from None

    def validate(self, attrs: dict) -> dict:
        """Parameters checked against their type, the stored one when only the other half changes."""
        data = {self.FIELDS[key]: value for key, value in attrs.items()}
        current = self.instance
        errors = {}
        for type_field, params_field, check, type_key, params_key in (
            ("trigger_type", "trigger_params", validate_trigger, "triggerType", "triggerParams"),
            ("action_type", "action_params", validate_action, "actionType", "actionParams"),
        ):
            if type_field not in data and params_field not in data:
                continue
            kind = data.get(type_field, getattr(current, type_field, None))
            params = data.get(params_field, getattr(current, params_field, None))
            try:
                data[params_field] = check(kind, params)
            except DjangoValidationError as exc:
                errors[params_key] = error_detail(exc)
        if errors:
            raise serializers.ValidationError(errors)
        return data


class AutomationCreateSerializer(AutomationWriteSerializer):
    status = serializers.ChoiceField(choices=[Automation.Status.ACTIVE, Automation.Status.PAUSED],
                                     default=Automation.Status.ACTIVE,
                                     help_text="active (the default: evaluated from the next price update) or paused")
    FIELDS = {**AutomationWriteSerializer.FIELDS, "status": "status"}


class PageQuerySerializer(serializers.Serializer):
    """?page=&pageSize= checked, so a bad one is an error rather than silently the default."""

    page = serializers.IntegerField(min_value=1, required=False)
    pageSize = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, required=False,
                                        help_text=f"default {PAGE_SIZE}, at most {MAX_PAGE_SIZE}")


class AutomationFilterSerializer(PageQuerySerializer):
    """GET /api/automations/ query parameters; userId is honoured for the `admin` permission only."""

    status = serializers.ChoiceField(choices=Automation.Status.choices, required=False)
    pair = PairField(required=False)
    walletId = StrictRegexField(ID_PATTERN, max_length=64, required=False)
    triggerType = serializers.ChoiceField(choices=Automation.TriggerType.choices, required=False)
    userId = StrictRegexField(ID_PATTERN, max_length=64, required=False)


class AutomationListSerializer(serializers.Serializer):
    """The reply of automation:list (and its ack)."""

    automations = AutomationSerializer(many=True)
    count = serializers.IntegerField(help_text=f"how many match; at most {SOCKET_LIST_LIMIT} are listed")
    walletId = serializers.CharField(allow_null=True)


class AutomationPageSerializer(serializers.Serializer):
    """One page of GET /api/automations/ (DRF's page-number pagination)."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = AutomationSerializer(many=True)


class AutomationRunPageSerializer(AutomationPageSerializer):
    """One page of GET /api/automations/{id}/runs."""

    results = AutomationRunSerializer(many=True)
