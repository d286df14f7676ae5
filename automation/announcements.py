"""What fired runs owe their rooms: automation:triggered, then automation:executed or error, from the rows.

A run owes `triggered` from its firing and its ending once it is closed (`executed`; `error`
for a run that ended before the ledger); AutomationRun.announced says how far they went out,
trailing the status. Whoever emits claims them first: a conditional update that sets a lease
(`announcing_until`, AUTOMATION_ANNOUNCE_LEASE_SECONDS) and commits before the emit, so two
emitters never hold one run's events and no row lock is held over the network. Each event is
marked announced once it went out; a failed emit gives the claim back. The task that changed a
run claims at once (the normal path: each event once); the sweep (tasks.sweep_runs, or its
loop in the server) claims whatever a Redis outage or a dead worker left owed, so an event
goes out at least once after a fault. An emit repeated (its emitter died between the emit and
the mark, or Redis did the emit and its answer was lost) is the same event (event_id_of): not
sent again with Redis, dropped by the server in memory (realtime.emit). A run's events go out in
order: a claim holds all it owes, triggered first.
A claim may be limited to the runs someone would hear (an audience of occupied rooms): a server
process just started on the embedded default waits for the sockets of the one that died.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .engine import Event, ms, rooms_of
from .models import AutomationRun

Status = AutomationRun.Status
Announced = AutomationRun.Announced
CLOSED = (Status.EXECUTED, Status.FAILED)
# Runs claimed per pass: owed events pile up only in an outage; a backlog drains over a few
# sweeps (each a few seconds apart) instead of one pass emitting for minutes.
ANNOUNCE_LIMIT = 200


@dataclass(frozen=True)
class Claim:
    """A claimed run, its lease (which also tells this claim from a later one of the same run,
    once this one lapsed), and how far its last claimed event announces."""

    pk: str
    until: datetime
    last: int


def owed_of(run: AutomationRun) -> int:
    """How far the run's events are owed: its ending once closed, else its firing."""
    return Announced.ENDED if run.status in CLOSED else Announced.TRIGGERED


def event_of(run: AutomationRun, stage: int) -> Event:
    """The event announcing `stage` of the run, from the row (and its automation's owner now)."""
    automation = run.automation
    base = {"automationId": str(automation.pk), "userId": automation.owner_id, "walletId": str(automation.wallet_id)}
    rooms = rooms_of(automation)
    if stage == Announced.TRIGGERED:
        return rooms, "automation:triggered", {**base, "triggerCondition": run.trigger_condition, "triggerData": run.trigger_data}
    if run.executed_at is None:  # ended before the ledger (execution._error)
        return rooms, "automation:error", {**base, "error": run.error, "errorCode": run.error_code,
                                           "errorAt": ms(run.finished_at or run.triggered_at)}
    data = {**base, "result": "success" if run.status == Status.EXECUTED else "failed", "executedAt": ms(run.executed_at)}
    if run.transaction_hash:
        data["transactionHash"] = run.transaction_hash
    if run.error:
        data["error"] = run.error
    return rooms, "automation:executed", data


def event_id_of(claim: Claim, stage: int, rooms: list[str]) -> str:
    """The id in realtime's log of the event announcing `stage` of the claimed run to `rooms`:
    each stage of a run is announced once (a closed run stays closed), so every emit of it,
    whoever claims it and however often it is given back, is one event there (realtime's append
    is once per id, for recovery.APPENDED_MS): one logged before its publish failed, delivered
    from the log, is not sent again as a second copy by the sweep. The rooms are in it because a
    repeat after the automation changed owner goes to the new owner's: under the first emit's
    offset, a server that delivered that offset would drop it (transactions.event_id_of too)."""
    return f"automation:{claim.pk}:{stage}:{','.join(rooms)}"


def _owing(now: datetime):
    """Runs owing an event that no live claim holds."""
    return (AutomationRun.objects.filter(Q(announced__lt=Announced.TRIGGERED) | Q(announced__lt=Announced.ENDED, status__in=CLOSED))
            .filter(Q(announcing_until__isnull=True) | Q(announcing_until__lte=now)))


def _heard(runs, audience: set[str] | None):
    """Those of `runs` someone would hear: a member in the automation's room or its owner's user
    room (`audience`: the rooms with members; None: anyone may listen, so all of them)."""
    if audience is None:
        return runs
    automations, users = [], []
    for room in audience:
        kind, _, key = room.partition(":")
        if kind == "user":
            users.append(key)
        elif kind == "automation":
            try:
                automations.append(uuid.UUID(key))
            except ValueError:
                continue
    return runs.filter(Q(automation_id__in=automations) | Q(automation__owner_id__in=users))


def _claim(run: AutomationRun, now: datetime) -> list[tuple[Claim, int, Event]]:
    """Claim what the run owes as read (its status and announced unchanged since): a claim per
    run, its events in order. It lapses after the lease if its holder dies before marking them."""
    owed = owed_of(run)
    if run.announced >= owed:
        return []
    until = now + timedelta(seconds=settings.AUTOMATION_ANNOUNCE_LEASE_SECONDS)
    if not _owing(now).filter(pk=run.pk, status=run.status, announced=run.announced).update(announcing_until=until):
        return []
    claim = Claim(str(run.pk), until, owed)
    return [(claim, stage, event_of(run, stage)) for stage in range(run.announced + 1, owed + 1)]


def _claim_all(runs, now: datetime) -> list[tuple[Claim, int, Event]]:
    return [claimed for run in runs for claimed in _claim(run, now)]


def runs_announce_now(*, run_ids, audience: set[str] | None = None) -> list[tuple[Claim, int, Event]]:
    """Claim what these runs owe (the task that fired or ended them emits at once):
    [(claim, stage, event)], in order. The caller emits each, then calls announcement_done
    (or announcement_release when an emit failed). With `audience` (the rooms someone is in),
    only the runs someone would hear; the others stay owed."""
    if not run_ids:
        return []
    now = timezone.now()
    runs = _heard(_owing(now).filter(pk__in=list(run_ids)), audience)
    return _claim_all(runs.select_related("automation").order_by("triggered_at"), now)


def announcements_claim(*, limit: int = ANNOUNCE_LIMIT, audience: set[str] | None = None) -> list[tuple[Claim, int, Event]]:
    """Claim the events owed by any run (the sweep's pass), oldest firing first, as runs_announce_now."""
    now = timezone.now()
    return _claim_all(_heard(_owing(now), audience).select_related("automation").order_by("triggered_at")[:limit], now)


def announcement_done(claim: Claim, stage: int) -> None:
    """The claimed event of `stage` went out; after the claim's last, the claim ends. (A claim
    that lapsed meanwhile and was taken again is the new holder's: its event was emitted twice,
    under one offset.)"""
    ended = {"announcing_until": None} if stage == claim.last else {}
    AutomationRun.objects.filter(pk=claim.pk, announcing_until=claim.until).update(announced=stage, **ended)


def announcement_release(claim: Claim) -> None:
    """Give a claim back after an emit failed, so the next pass emits what is left (not another's claim)."""
    AutomationRun.objects.filter(pk=claim.pk, announcing_until=claim.until).update(announcing_until=None)
