"""The REST payload of a system notification, in and out."""

from rest_framework import serializers

from realtime.serializers import StrictCharField

from .models import MESSAGE_MAX_LENGTH, TITLE_MAX_LENGTH, SystemNotification


class NotificationInSerializer(serializers.Serializer):
    message = StrictCharField(max_length=MESSAGE_MAX_LENGTH)
    level = serializers.ChoiceField(choices=SystemNotification.Level.choices)
    title = StrictCharField(max_length=TITLE_MAX_LENGTH, required=False, allow_blank=True)


class NotificationOutSerializer(serializers.Serializer):
    """What `system:notification` carries, and what the REST call answers."""

    id = serializers.UUIDField()
    level = serializers.ChoiceField(choices=SystemNotification.Level.choices)
    title = serializers.CharField(allow_null=True)
    message = serializers.CharField()
    timestamp = serializers.IntegerField(help_text="milliseconds since the epoch")
