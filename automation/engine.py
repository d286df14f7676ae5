"""The rule engine: evaluate one price update of a pair against the active automations on it.

One indexed query (automation_pair_status) finds them; each is then evaluated in its own
database transaction holding its row lock, so two workers given the same update evaluate each
automation one after the other, and the second sees `last_sequence` already at this update and
skips it: every update is evaluated exactly once per automation. The run's unique (automation,
sequence, update time) is the last guard. The decisions themselves are automation.conditions'.

Returns the runs it fired and what else to emit; the caller (a Celery task, or the in-process
runner) announces the runs' automation:triggered (automation.announcements: owed from the row
until it went out) after this returns, i.e. after commit, emits the rest and queues the executions.

Price samples for price_change triggers live in the cache (Redis with REDIS_URL, shared by the
server and the workers; local memory on the embedded default, where one process does all):
per pair, one sample per SAMPLE_SPACING_SECONDS at most, kept for the longest window allowed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone as dj_timezone

from . import conditions
from .models import Automation, AutomationRun

logger = logging.getLogger(__name__)

Event = tuple[list[str], str, dict]
# The longest price_change window the API accepts (24 h): older samples are never a reference.
SAMPLE_RETENTION_SECONDS = 86_400
# Feeds update a pair about once a second at most; one sample per 10 s bounds a day's samples
# to 8,640 per pair while the shortest window (60 s) still spans six of them.
SAMPLE_SPACING_SECONDS = 10


@dataclass
class Evaluation:
    """What one price update did: the runs it fired (their triggered owed, their execution to
    queue), and events about automations themselves to emit (an unreadable trigger's error)."""

    events: list[Event] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)


def rooms_of(automation: Automation) -> list[str]:
    return [f"automation:{automation.pk}", f"user:{automation.owner_id}"]


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def watched_pairs() -> set[str]:
    """Pairs the market feed must poll for the engine (named in MARKET_FEED_PAIR_SOURCES)."""
    return set(Automation.objects.filter(status=Automation.Status.ACTIVE).values_list("pair", flat=True).distinct())


# -- price samples ----------------------------------------------------------------------------

def samples_key(pair: str) -> str:
    return f"automation:samples:{pair}"


def price_samples_record(*, pair: str, price: Decimal, sequence: int, at_ms: int) -> list[tuple[int, Decimal]]:
    """Keep this update as a sample (spaced, pruned); the samples from before it, oldest first.

    A read-modify-write: two workers recording two updates of one pair at the same instant may
    lose one sample, which only thins the history by one point.
    """
    stored = cache.get(samples_key(pair)) or []  # [[ms, "price", sequence], ...], oldest first
    before = [(moment, Decimal(value)) for moment, value, _ in stored if moment < at_ms]
    if stored and at_ms <= stored[-1][0]:
        return before  # recorded already (a second evaluation of this update, or a late one)
    horizon = at_ms - SAMPLE_RETENTION_SECONDS * 1000
    kept = [row for row in stored if row[0] >= horizon]
    if len(kept) >= 2 and at_ms - kept[-2][0] < SAMPLE_SPACING_SECONDS * 1000:
        kept[-1] = [at_ms, str(price), sequence]  # too close to the one before: the newest wins
    else:
        kept.append([at_ms, str(price), sequence])
    cache.set(samples_key(pair), kept, SAMPLE_RETENTION_SECONDS + 3600)
    return before


# -- evaluation -------------------------------------------------------------------------------

def automation_evaluate_price(*, pair: str, price, sequence: int, timestamp: int) -> Evaluation:
    """Evaluate one price update (`timestamp` in ms) against every active automation on `pair`."""
    price = Decimal(str(price))
    samples = price_samples_record(pair=pair, price=price, sequence=sequence, at_ms=timestamp)
    result = Evaluation()
    ids = list(Automation.objects.filter(pair=pair, status=Automation.Status.ACTIVE).values_list("pk", flat=True))
    for pk in ids:
        try:
            _evaluate_one(pk, price=price, sequence=sequence, timestamp=timestamp, samples=samples, into=result)
        except Exception:  # one broken row must not keep the others from their update
            logger.exception("automation %s: evaluation of %s #%s failed", pk, pair, sequence)
    return result


def _evaluate_one(pk, *, price: Decimal, sequence: int, timestamp: int, samples, into: Evaluation) -> None:
    at = datetime.fromtimestamp(timestamp / 1000, timezone.utc)
    with transaction.atomic():
        automation = Automation.objects.select_for_update().filter(pk=pk, status=Automation.Status.ACTIVE).first()
        if automation is None or not conditions.is_new_update(
            sequence=sequence, timestamp=timestamp, last_sequence=automation.last_sequence, last_timestamp=automation.last_update_at,
        ):
            return  # disabled meanwhile, or this update was evaluated already
        params = automation.trigger_params or {}
        reference = None
        try:
            if automation.trigger_type == conditions.PRICE_CHANGE:
                reference = conditions.change_reference(samples, at_ms=timestamp, window_seconds=int(params["windowSeconds"]))
            met = conditions.condition_holds(automation.trigger_type, params, price, reference)
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            into.events.append(_broken(automation, exc, at))
            return
        decision = conditions.decide(
            previous=automation.condition_met, met=met, now=timestamp / 1000,
            last_triggered_at=automation.last_triggered_at.timestamp() if automation.last_triggered_at else None,
            cooldown_seconds=automation.cooldown_seconds, trigger_count=automation.trigger_count,
            max_executions=automation.max_executions,
        )
        automation.condition_met, automation.last_sequence, automation.last_price = decision.condition_met, sequence, price
        automation.last_update_at = timestamp
        fields = ["condition_met", "last_sequence", "last_update_at", "last_price", "updated_at"]
        if decision.fire:
            run = _fire(automation, price=price, sequence=sequence, timestamp=timestamp, reference=reference)
            if run is not None:
                automation.trigger_count += 1
                automation.last_triggered_at = at
                fields += ["trigger_count", "last_triggered_at"]
                if automation.max_executions is not None and automation.trigger_count >= automation.max_executions:
                    automation.status = Automation.Status.COMPLETED
                    fields.append("status")
                into.runs.append(str(run.pk))
        automation.save(update_fields=fields)


def _fire(automation: Automation, *, price: Decimal, sequence: int, timestamp: int, reference: Decimal | None) -> AutomationRun | None:
    data = {"pair": automation.pair, "price": float(price), "sequence": sequence, "timestamp": timestamp,
            "triggerType": automation.trigger_type, **{k: automation.trigger_params[k] for k in automation.trigger_params}}
    if reference is not None:
        data.update(referencePrice=float(reference), changePercent=float(round(conditions.change_percent(price, reference), 4)))
    try:
        with transaction.atomic():  # a savepoint: the unique run per update may already exist
            return AutomationRun.objects.create(
                automation=automation, sequence=sequence, price_at=timestamp, trigger_data=data,
                trigger_condition=conditions.describe(automation.trigger_type, automation.trigger_params, automation.pair)[:200],
                # Its execution is queued once this commits; not started by then, the sweep takes it.
                stale_at=dj_timezone.now() + timedelta(seconds=settings.AUTOMATION_STALE_GRACE),
            )
    except IntegrityError:
        logger.info("automation %s: update #%s already fired it", automation.pk, sequence)
        return None


def _broken(automation: Automation, exc: Exception, at: datetime) -> Event:
    """A trigger the engine cannot read (saved around validation): the automation fails, loudly."""
    automation.status = Automation.Status.FAILED
    automation.failure_count += 1
    automation.save(update_fields=["status", "failure_count", "updated_at"])
    logger.error("automation %s: unreadable trigger %s %r (%r); marked failed", automation.pk, automation.trigger_type,
                 automation.trigger_params, exc)
    return (rooms_of(automation), "automation:error", {
        "automationId": str(automation.pk), "userId": automation.owner_id, "walletId": str(automation.wallet_id),
        "error": f"the trigger's parameters cannot be evaluated: {type(exc).__name__}", "errorCode": "invalid_trigger",
        "errorAt": ms(at),
    })
