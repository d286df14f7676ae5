"""Payload shapes of the automation:* events."""

from rest_framework import serializers

from realtime.api import StrictRegexField

AUTOMATION_ID = StrictRegexField(r"^[A-Za-z0-9-]{1,64}$", max_length=64)


class AutomationIdsSerializer(serializers.Serializer):
    automationIds = serializers.ListField(child=AUTOMATION_ID, min_length=1, max_length=100)
