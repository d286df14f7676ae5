"""The rule engine's pure decisions: does a trigger's condition hold, and does this update fire it.

No Django, no I/O: automation.engine feeds these with the row's state and one price update.

- price_above holds when price >= threshold; price_below when price <= threshold.
- price_change holds when |price - reference| / reference * 100 >= percent, where the reference
  is the newest price sample at or before (update time - windowSeconds), or, while the samples
  do not reach that far back (a pair just started being fed), the oldest one within the window.
- A rule fires on crossing: the condition was not true at the previous evaluated update and is
  now. "Not true" includes unknown (None: never evaluated, or reset by enabling or editing), so
  an automation enabled while the price is already past its threshold fires on the first update.
- A crossing within cooldown_seconds of the last firing does not fire, and is not remembered:
  the condition must become false and cross again after the cooldown.
- A rule that has fired max_executions times fires no more (the engine marks it completed).
- An update is evaluated once: one whose sequence is not above the last evaluated one is a
  repeat or a late copy, unless it was produced well after that one (is_new_update).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

PRICE_ABOVE, PRICE_BELOW, PRICE_CHANGE = "price_above", "price_below", "price_change"
# A pair's sequence restarts at 1 when the market's cached snapshot is lost (Redis flushed):
# an update with a lower sequence but produced more than this long after the last evaluated
# one is a new update after such a reset. Shorter margins would let clock skew between the
# workers producing updates, or a late copy, pass for a reset; the cost of this one is at
# most a minute without evaluation after a reset.
SEQUENCE_RESET_MARGIN_MS = 60_000


@dataclass(frozen=True)
class Decision:
    condition_met: bool
    fire: bool
    reason: str  # why it fires or not: "crossed", "holds", "not_met", "cooldown", "max_executions"


def change_reference(samples: list[tuple[int, Decimal]], *, at_ms: int, window_seconds: int) -> Decimal | None:
    """The price the change is measured from: samples are (time ms, price), oldest first."""
    start = at_ms - window_seconds * 1000
    before = [price for moment, price in samples if moment <= start]
    if before:
        return before[-1]
    within = [price for moment, price in samples if start < moment < at_ms]
    return within[0] if within else None


def change_percent(price: Decimal, reference: Decimal | None) -> Decimal | None:
    if reference is None or reference <= 0:
        return None
    return abs(price - reference) / reference * 100


def condition_holds(trigger_type: str, params: dict, price: Decimal, reference: Decimal | None = None) -> bool:
    if trigger_type == PRICE_ABOVE:
        return price >= Decimal(str(params["threshold"]))
    if trigger_type == PRICE_BELOW:
        return price <= Decimal(str(params["threshold"]))
    if trigger_type == PRICE_CHANGE:
        change = change_percent(price, reference)
        return change is not None and change >= Decimal(str(params["percent"]))
    raise ValueError(f"unknown trigger type {trigger_type!r}")


def decide(*, previous: bool | None, met: bool, now: float, last_triggered_at: float | None,
           cooldown_seconds: int, trigger_count: int, max_executions: int | None) -> Decision:
    """Whether this update fires the rule (times in seconds since the epoch)."""
    if not met:
        return Decision(False, False, "not_met")
    if previous is True:
        return Decision(True, False, "holds")
    if max_executions is not None and trigger_count >= max_executions:
        return Decision(True, False, "max_executions")
    if last_triggered_at is not None and now - last_triggered_at < cooldown_seconds:
        return Decision(True, False, "cooldown")
    return Decision(True, True, "crossed")


def is_new_update(*, sequence: int, timestamp: int, last_sequence: int, last_timestamp: int) -> bool:
    """Whether a price update (its per-pair sequence, its time in ms) has not been evaluated yet."""
    if sequence > last_sequence:
        return True
    return last_timestamp > 0 and timestamp > last_timestamp + SEQUENCE_RESET_MARGIN_MS


def describe(trigger_type: str, params: dict, pair: str) -> str:
    """The triggerCondition clients see, e.g. "XLM_USDC price >= 0.12"."""
    if trigger_type == PRICE_ABOVE:
        return f"{pair} price >= {params['threshold']}"
    if trigger_type == PRICE_BELOW:
        return f"{pair} price <= {params['threshold']}"
    return f"{pair} price moved >= {params['percent']}% within {params['windowSeconds']} s"
