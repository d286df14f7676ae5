"""Payload shapes of the transaction:* events and the REST endpoints (the same fields for both)."""

from rest_framework import serializers

from realtime.api import StrictCharField, StrictRegexField

from .models import HASH_PATTERN, validate_public_key

# The seed's default page of history, and Horizon's own page cap (one request answers it).
HISTORY_DEFAULT_LIMIT = 50
HISTORY_MAX_LIMIT = 200
# Stellar amounts: at most 922337203685.4775807 (int64 stroops), 7 decimals.
MAX_AMOUNT = 922337203685


class StrictIntegerField(serializers.IntegerField):
    """An IntegerField that refuses "5", 5.0 and true: a limit is a JSON integer."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class HashField(StrictRegexField):
    def __init__(self, **kwargs):
        super().__init__(HASH_PATTERN.pattern, max_length=64, **kwargs)
        self.error_messages["invalid"] = "a transaction hash is 64 lowercase hex digits"


class PublicKeyField(StrictCharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=56, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            validate_public_key(value)
        except Exception:
            raise serializers.ValidationError("not a Stellar public key (G..., 56 characters)") from None
        return value


class WalletSerializer(serializers.Serializer):
    walletId = StrictRegexField(r"^[A-Za-z0-9-]{1,64}$", max_length=64)


class StatusSerializer(serializers.Serializer):
    hash = HashField()


class HistorySerializer(WalletSerializer):
    # Above the cap is refused rather than cut, so a client asking for 10,000 learns it gets 200.
    limit = StrictIntegerField(min_value=1, max_value=HISTORY_MAX_LIMIT, default=HISTORY_DEFAULT_LIMIT)


class RegisterSerializer(WalletSerializer):
    """POST /api/transactions/: a hash the client submitted itself, and what it pays (optional)."""

    hash = HashField()
    toAddress = PublicKeyField(required=False, default="")
    amount = serializers.DecimalField(max_digits=19, decimal_places=7, min_value=0, max_value=MAX_AMOUNT, required=False, default=0)
    asset = StrictRegexField(r"^(XLM|[A-Za-z0-9]{1,12}:G[A-Z2-7]{55})$", max_length=70, required=False, default="XLM")


class SubmitSerializer(WalletSerializer):
    """POST /api/transactions/submit: a signed transaction envelope, base64 XDR."""

    # Horizon refuses envelopes over 100 KB of XDR; base64 makes that a third larger.
    envelope = StrictCharField(max_length=140_000, trim_whitespace=True)
