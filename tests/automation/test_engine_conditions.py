"""The rule engine's pure decisions (automation.conditions): conditions, crossing, cooldown, limits."""

from decimal import Decimal as D

import pytest

from automation.conditions import SEQUENCE_RESET_MARGIN_MS, change_reference, condition_holds, decide, describe, is_new_update

BASE = dict(now=1000.0, last_triggered_at=None, cooldown_seconds=0, trigger_count=0, max_executions=None)


@pytest.mark.parametrize("kind, price, holds", [
    ("price_above", "0.12", True), ("price_above", "0.1199999", False), ("price_above", "5", True),
    ("price_below", "0.12", True), ("price_below", "0.1200001", False), ("price_below", "0", True),
])
def test_threshold_conditions_include_the_threshold(kind, price, holds):
    assert condition_holds(kind, {"threshold": "0.12"}, D(price)) is holds


def test_price_change_is_the_absolute_change_over_the_window_in_percent():
    params = {"percent": "5", "windowSeconds": 60}
    assert condition_holds("price_change", params, D("105"), D("100")) is True
    assert condition_holds("price_change", params, D("95"), D("100")) is True  # down counts too
    assert condition_holds("price_change", params, D("104.99"), D("100")) is False
    assert condition_holds("price_change", params, D("200"), None) is False  # no history: no change


def test_the_reference_is_the_newest_sample_at_or_before_the_window_start_else_the_oldest_within():
    samples = [(0, D("1")), (30_000, D("2")), (60_000, D("3")), (90_000, D("4"))]
    assert change_reference(samples, at_ms=100_000, window_seconds=60) == D("2")  # start 40 s: 30 s is newest before
    assert change_reference(samples, at_ms=90_000, window_seconds=30) == D("3")  # exactly at the start
    assert change_reference(samples[2:], at_ms=100_000, window_seconds=60) == D("3")  # not that old yet
    assert change_reference([], at_ms=100_000, window_seconds=60) is None
    assert change_reference([(100_000, D("9"))], at_ms=100_000, window_seconds=60) is None  # itself is no reference


def test_fires_on_crossing_only_and_unknown_counts_as_not_met():
    assert decide(previous=False, met=True, **BASE).fire is True
    assert decide(previous=None, met=True, **BASE).fire is True  # created while already past: first update fires
    held = decide(previous=True, met=True, **BASE)
    assert (held.fire, held.reason, held.condition_met) == (False, "holds", True)
    below = decide(previous=True, met=False, **BASE)
    assert (below.fire, below.condition_met) == (False, False)


def test_a_crossing_within_the_cooldown_does_not_fire_and_is_not_remembered():
    args = {**BASE, "cooldown_seconds": 60, "last_triggered_at": 1000.0}
    within = decide(previous=False, met=True, **{**args, "now": 1059.0})
    assert (within.fire, within.reason, within.condition_met) == (False, "cooldown", True)
    # Still true at the next update, now past the cooldown: no new crossing, no firing.
    assert decide(previous=within.condition_met, met=True, **{**args, "now": 1070.0}).fire is False
    assert decide(previous=False, met=True, **{**args, "now": 1060.0}).fire is True


def test_max_executions_stops_firing():
    assert decide(previous=False, met=True, **{**BASE, "max_executions": 2, "trigger_count": 1}).fire is True
    done = decide(previous=False, met=True, **{**BASE, "max_executions": 2, "trigger_count": 2})
    assert (done.fire, done.reason) == (False, "max_executions")


def test_trigger_conditions_read_as_text():
    assert describe("price_above", {"threshold": "0.12"}, "XLM_USDC") == "XLM_USDC price >= 0.12"
    assert describe("price_below", {"threshold": "0.1"}, "XLM_USDC") == "XLM_USDC price <= 0.1"
    assert describe("price_change", {"percent": "5", "windowSeconds": 3600}, "XLM_USDC") == "XLM_USDC price moved >= 5% within 3600 s"


def test_an_unknown_trigger_type_is_an_error():
    with pytest.raises(ValueError):
        condition_holds("price_sideways", {}, D("1"))


def test_an_update_is_new_once_by_its_sequence():
    last = dict(last_sequence=41, last_timestamp=1_000_000)
    assert is_new_update(sequence=42, timestamp=1_000_500, **last) is True
    assert is_new_update(sequence=41, timestamp=1_000_000, **last) is False  # the same update again
    assert is_new_update(sequence=40, timestamp=999_000, **last) is False  # a late copy of an older one
    assert is_new_update(sequence=1, timestamp=1_000, last_sequence=0, last_timestamp=0) is True  # never evaluated


def test_a_reset_sequence_is_new_once_well_after_the_last_update():
    """The market's snapshot was lost: the pair's sequence starts again at 1."""
    last = dict(last_sequence=5_000, last_timestamp=1_000_000)
    assert is_new_update(sequence=1, timestamp=1_000_000 + SEQUENCE_RESET_MARGIN_MS + 1, **last) is True
    # Within the margin a lower sequence may be clock skew between workers or a late copy.
    assert is_new_update(sequence=1, timestamp=1_000_000 + SEQUENCE_RESET_MARGIN_MS, **last) is False
