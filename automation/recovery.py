"""The sweep's decisions: which open runs nobody holds any more, taken back so they end.

A run is held while something will touch it again: its queued execution, its attempt, its
retry's countdown (each moves AutomationRun.stale_at past when it will be done). A SIGKILLed
worker, a retry message parked in the broker's unacked set, a firing whose execution was never
queued (the triggered emit or the broker failed through a Redis outage): the run stays pending
past stale_at, and the sweep takes it and queues its next attempt. That attempt ends it if it
is out of attempts or past the window (execution.run_expire: automation:error, or a payment
that may be out settled from Horizon by its hash); otherwise it is attempted again, which for
a payment resubmits the same signed envelope (never a second payment).

A submitted run waits for transaction_settled; a worker dying between the settlement's commit
and that receiver would leave it submitted, so the sweep also settles submitted runs whose
tracked transaction has settled. Events the runs owe (automation.announcements) go out in the
same sweep, after these.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from transactions.models import TrackedTransaction

from .execution import Ended, run_settle
from .models import AutomationRun

Status = AutomationRun.Status
# Runs taken per sweep: stranded runs are rare; a backlog (after a long outage) drains over a
# few sweeps instead of flooding the queue at once.
SWEEP_LIMIT = 200


def runs_stale_take(*, limit: int = SWEEP_LIMIT) -> list[tuple[str, int]]:
    """Take the pending runs nobody holds: [(run id, attempts made)], each to be executed again.

    A take is a conditional update of stale_at from the value read, so two sweeps never take
    one run, and the run is held again (for the queued attempt) from then on.
    """
    now = timezone.now()
    held_until = now + timedelta(seconds=settings.AUTOMATION_STALE_GRACE)
    stale = (AutomationRun.objects.filter(status=Status.PENDING, stale_at__lte=now)
             | AutomationRun.objects.filter(status=Status.PENDING, stale_at=None))  # runs from before stale_at
    taken = []
    for pk, attempts, stale_at in stale.order_by("triggered_at").values_list("pk", "attempts", "stale_at")[:limit]:
        if AutomationRun.objects.filter(pk=pk, status=Status.PENDING, attempts=attempts, stale_at=stale_at).update(stale_at=held_until):
            taken.append((str(pk), attempts))
    return taken


def runs_settle_missed(*, limit: int = SWEEP_LIMIT) -> Ended:
    """End the submitted runs whose transaction settled without them hearing it; those runs."""
    hashes = AutomationRun.objects.filter(status=Status.SUBMITTED).values("transaction_hash")
    ended: Ended = []
    settled = TrackedTransaction.objects.filter(hash__in=hashes).exclude(status=TrackedTransaction.Status.PENDING)
    for tracked in settled[:limit]:
        ended += run_settle(tracked=tracked)  # conditional: the receiver, if late, ends nothing
    return ended
