"""Payload shapes of the market:* events."""

import re

from rest_framework import serializers

from realtime.api import StrictCharField

# Accepted as XLM_USDC or XLM/USDC; stored and used as XLM_USDC (the room name's form).
PAIR_PATTERN = re.compile(r"[A-Z0-9]{1,12}[_/][A-Z0-9]{1,12}")


class PairField(StrictCharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=25, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data).upper()
        if not PAIR_PATTERN.fullmatch(value):
            raise serializers.ValidationError("a pair is BASE_COUNTER, e.g. XLM_USDC")
        return value.replace("/", "_")


class PairsSerializer(serializers.Serializer):
    # The seed's pairs are three; 50 bounds how many rooms one event can join.
    pairs = serializers.ListField(child=PairField(), min_length=1, max_length=50)


class PairSerializer(serializers.Serializer):
    pair = PairField()
