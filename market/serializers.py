"""Payload shapes of the market:* events, and of the feed's REST answer."""

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


class FeedBudgetSerializer(serializers.Serializer):
    """GET /api/market/feed (and /metrics' `market` block): what selectors.feed_budget returns."""

    mode = serializers.ChoiceField(choices=["poll", "stream"])
    runner = serializers.ChoiceField(choices=["in-process", "celery"])
    horizon = serializers.CharField()
    network = serializers.CharField()
    requestsPerHour = serializers.IntegerField()
    budgetShare = serializers.FloatField(help_text="of requestsPerHour, what this deployment's pollers plan to spend together")
    sharersWantedPerHour = serializers.FloatField(help_text="Horizon requests per hour the other pollers (the transaction watcher) ask for")
    sharersGrantedPerHour = serializers.FloatField(help_text="what they get (at most half the plan); the feed plans with the rest")
    requestsPerPoll = serializers.IntegerField()
    activePairs = serializers.ListField(child=serializers.CharField())
    pollIntervalSeconds = serializers.FloatField()
    spentThisHour = serializers.IntegerField()
    spentLastHour = serializers.IntegerField()
    rateLimit = serializers.DictField(allow_null=True, help_text="Horizon's last X-RateLimit-* headers")
    pausedUntil = serializers.FloatField(allow_null=True, help_text="epoch seconds, while a 429 pauses the feed")
    pauseReason = serializers.CharField(allow_null=True)
    pairs = serializers.DictField(child=serializers.DictField(), help_text="per active pair: poll state, subscribers, sequence")
