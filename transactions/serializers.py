"""Payload shapes of the transaction:* events."""

from rest_framework import serializers

from realtime.api import StrictRegexField


class WalletSerializer(serializers.Serializer):
    walletId = StrictRegexField(r"^[A-Za-z0-9-]{1,64}$", max_length=64)
