"""Payload shapes of the transaction:* events."""

from rest_framework import serializers


class WalletSerializer(serializers.Serializer):
    walletId = serializers.RegexField(r"^[A-Za-z0-9-]{1,64}$", max_length=64)
