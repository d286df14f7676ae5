"""Trigger and action parameters checked and normalised per type: the contract between the API and the engine.

    price_above / price_below: {"threshold": "0.12"}                      positive decimal
    price_change:              {"percent": "5", "windowSeconds": 3600}    percent > 0, 60 <= windowSeconds <= 86400
    notify:                    {}
    payment:                   {"destination": "G...", "amount": "10.5", "asset": "XLM" | "CODE:ISSUER"}

Decimals travel as strings so no float rounding reaches a threshold or an amount. Errors are
Django ValidationErrors keyed by parameter name, so the model's clean(), the admin form and the
DRF serializers all report which parameter is wrong.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from stellar_sdk import StrKey

# A price is stored as DecimalField(max_digits=30, decimal_places=10); a threshold finer than the
# stored price could never be told apart from it.
PRICE_DECIMAL_PLACES = 10
PRICE_MAX = Decimal("1e19")  # 30 digits, 10 of them decimals
# A change above 10,000% in a day is not a rule anyone means; it bounds the number we store.
PERCENT_MAX = Decimal("10000")
# The engine compares against the price a window ago: below a minute is tick noise, above a day
# is more history than the feed keeps.
WINDOW_MIN_SECONDS, WINDOW_MAX_SECONDS = 60, 86400
# Stellar amounts are int64 stroops: at most 922337203685.4775807, seven decimals.
AMOUNT_DECIMAL_PLACES = 7
AMOUNT_MAX = Decimal("922337203685.4775807")
ASSET_CODE = re.compile(r"[A-Za-z0-9]{1,12}")

TRIGGER_KEYS = {"price_above": {"threshold"}, "price_below": {"threshold"}, "price_change": {"percent", "windowSeconds"}}
ACTION_KEYS = {"notify": set(), "payment": {"destination", "amount", "asset"}}


def decimal_text(value, *, field: str, places: int, maximum: Decimal) -> str:
    """A positive decimal given as a string (or a JSON integer), in plain notation."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationError({field: f"{field} must be a decimal string such as \"0.12\""})
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationError({field: f"{field} must be a decimal string such as \"0.12\", not {value!r}"}) from None
    if not number.is_finite():
        raise ValidationError({field: f"{field} must be a finite decimal"})
    if number <= 0:
        raise ValidationError({field: f"{field} must be greater than 0"})
    if number > maximum:
        raise ValidationError({field: f"{field} must be at most {maximum:f}"})
    if -number.as_tuple().exponent > places:
        raise ValidationError({field: f"{field} has at most {places} decimal places"})
    return format(number.normalize(), "f")


def check_keys(params, allowed: set[str], kind: str) -> dict:
    if not isinstance(params, dict):
        raise ValidationError(f"{kind} parameters must be a JSON object")
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValidationError({key: f"unknown parameter for {kind}" for key in unknown})
    missing = sorted(allowed - set(params))
    if missing:
        raise ValidationError({key: "this parameter is required" for key in missing})
    return params


def error_detail(exc: ValidationError) -> dict | list:
    """A ValidationError as {parameter: [messages]} or [messages], for a form or a serializer."""
    return exc.message_dict if hasattr(exc, "error_dict") else exc.messages


def validate_trigger(trigger_type: str, params) -> dict:
    """The normalised parameters of a `trigger_type` trigger, or ValidationError naming the parameter."""
    if trigger_type not in TRIGGER_KEYS:
        raise ValidationError(f"unknown trigger type {trigger_type!r}: one of {', '.join(TRIGGER_KEYS)}")
    params = check_keys(params, TRIGGER_KEYS[trigger_type], trigger_type)
    if trigger_type in ("price_above", "price_below"):
        return {"threshold": decimal_text(params["threshold"], field="threshold", places=PRICE_DECIMAL_PLACES, maximum=PRICE_MAX)}
    window = params["windowSeconds"]
    if isinstance(window, bool) or not isinstance(window, int) or not WINDOW_MIN_SECONDS <= window <= WINDOW_MAX_SECONDS:
        raise ValidationError({"windowSeconds": f"windowSeconds must be an integer from {WINDOW_MIN_SECONDS} to {WINDOW_MAX_SECONDS}"})
    return {"percent": decimal_text(params["percent"], field="percent", places=4, maximum=PERCENT_MAX), "windowSeconds": window}


def validate_asset(value) -> str:
    if not isinstance(value, str):
        raise ValidationError({"asset": 'asset must be "XLM" or "CODE:ISSUER"'})
    if value.upper() in ("XLM", "NATIVE"):
        return "XLM"
    code, _, issuer = value.partition(":")
    if not ASSET_CODE.fullmatch(code) or not StrKey.is_valid_ed25519_public_key(issuer):
        raise ValidationError({"asset": f'asset must be "XLM" or "CODE:ISSUER" (code 1-12 letters or digits, issuer G...), not {value!r}'})
    return f"{code}:{issuer}"


def validate_action(action_type: str, params) -> dict:
    """The normalised parameters of an `action_type` action, or ValidationError naming the parameter."""
    if action_type not in ACTION_KEYS:
        raise ValidationError(f"unknown action type {action_type!r}: one of {', '.join(ACTION_KEYS)}")
    params = check_keys(params, ACTION_KEYS[action_type], action_type)
    if action_type == "notify":
        return {}
    destination = params["destination"]
    if not isinstance(destination, str) or not StrKey.is_valid_ed25519_public_key(destination):
        raise ValidationError({"destination": "destination must be a Stellar public key (G..., 56 characters)"})
    amount = decimal_text(params["amount"], field="amount", places=AMOUNT_DECIMAL_PLACES, maximum=AMOUNT_MAX)
    return {"destination": destination, "amount": amount, "asset": validate_asset(params["asset"])}
