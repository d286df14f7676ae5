"""Executing a fired run: its action, and how the run ends (its automation:executed / error owed).

One attempt at a time (run_execute); the caller retries a Retryable with backoff (run_defer)
and, out of attempts, ends the run with run_give_up. An attempt claims the run by its attempt
number under the row lock, so a late or duplicate delivery of an attempt does nothing; one that
finds the run out of attempts or past EXECUTION_WINDOW_SECONDS ends it instead (run_expire),
which is how the sweep (automation.recovery) ends runs whose worker died. A payment's run waits
in `submitted` until the
transactions app settles its transaction (run_settle, from transactions' transaction_settled):
- in a ledger and successful: automation:executed {result: "success", transactionHash};
- in a ledger and failed: automation:executed {result: "failed", transactionHash, error};
- anything before the ledger (no custody, Horizon down after the retries, refused at
  submission, a bad destination, timed out unsubmitted): automation:error {error, errorCode}.
Every ending is a conditional update of the run's status, so it happens once; each function
returns the runs it ended, whose events the caller announces (automation.announcements derives
them from the rows, so one left owed by a fault is still emitted by the sweep).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from transactions.models import TrackedTransaction

from . import payments
from .custody import CustodyError
from .models import Automation, AutomationRun

logger = logging.getLogger(__name__)

Status = AutomationRun.Status
OPEN = (Status.PENDING, Status.SUBMITTED)
Ended = list[str]  # the ids of the runs a call ended
# The first attempt and four retries (tasks.backoff_seconds: 1, 2, 4, 8 s apart).
EXECUTION_ATTEMPTS = 5
# A run not done within a minute of its trigger is not attempted again: the retries take 15 s
# plus their attempts, so only a lost worker or a long outage gets here, and a payment that
# late is not what the trigger asked. It is also well inside the envelope's 120 s validity
# (payments.TIMEOUT_SECONDS), so every resubmission in the window is of a still-valid envelope.
EXECUTION_WINDOW_SECONDS = 60


def attempt_seconds() -> float:
    """The longest an attempt holds its run: two Horizon requests (the account, the submission),
    each bounded by HORIZON_REQUEST_TIMEOUT, plus the stale grace for the database and the rest."""
    return 2 * settings.HORIZON_REQUEST_TIMEOUT + settings.AUTOMATION_STALE_GRACE


def stale_after(seconds: float) -> datetime:
    return timezone.now() + timedelta(seconds=seconds)


class Retryable(Exception):
    """This attempt failed for a passing reason (Horizon unavailable): try again later."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts  # the run's attempts so far, this one included


def _close(run: AutomationRun, *, status: str, from_statuses=OPEN, **fields) -> bool:
    """Move the run to `status` if nobody has ended it yet; whether this call did."""
    return bool(AutomationRun.objects.filter(pk=run.pk, status__in=from_statuses).update(status=status, finished_at=timezone.now(), **fields))


def _executed(run: AutomationRun, *, at: datetime, success: bool, tx_hash: str = "", error: str = "", error_code: str = "") -> Ended:
    result = {**run.result, "result": "success" if success else "failed"}
    if not _close(run, status=Status.EXECUTED if success else Status.FAILED, executed_at=at, result=result,
                  error=error, error_code=error_code, **({"transaction_hash": tx_hash} if tx_hash else {})):
        return []
    counter = "execution_count" if success else "failure_count"
    Automation.objects.filter(pk=run.automation_id).update(**{counter: F(counter) + 1}, last_executed_at=at)
    return [str(run.pk)]


def _error(run: AutomationRun, *, error: str, code: str) -> Ended:
    if not _close(run, status=Status.FAILED, error=error, error_code=code):
        return []
    Automation.objects.filter(pk=run.automation_id).update(failure_count=F("failure_count") + 1)
    logger.warning("automation %s run %s failed before execution: %s (%s)", run.automation_id, run.pk, error, code)
    return [str(run.pk)]


def run_execute(*, run_id: str, attempts: int = 0) -> Ended:
    """Attempt number `attempts + 1` of the run's action; the runs it ended. Raises Retryable."""
    with transaction.atomic():
        run = AutomationRun.objects.select_for_update().select_related("automation", "automation__wallet").filter(pk=run_id).first()
        if run is None or run.status != Status.PENDING or run.attempts != attempts:
            return []  # gone with its automation, ended, submitted, or this attempt was made already
        if run.attempts >= EXECUTION_ATTEMPTS or timezone.now() > run.triggered_at + timedelta(seconds=EXECUTION_WINDOW_SECONDS):
            expire = True
        else:
            expire = False
            AutomationRun.objects.filter(pk=run.pk).update(attempts=F("attempts") + 1, stale_at=stale_after(attempt_seconds()))
    if expire:
        return run_expire(run)
    if run.automation.action_type == Automation.ActionType.NOTIFY:
        return _executed(run, at=timezone.now(), success=True)
    if run.automation.action_type != Automation.ActionType.PAYMENT:
        return _error(run, error=f"unknown action {run.automation.action_type!r}", code="invalid_action")
    try:
        tx_hash = payments.payment_submit(run=run)
    except payments.PaymentRetryable as exc:
        raise Retryable(str(exc), attempts=attempts + 1) from None
    except payments.PaymentRefused as exc:
        return _error(run, error=str(exc), code=exc.code)
    except CustodyError as exc:
        return _error(run, error=exc.message, code=exc.code)
    return _submitted(run, tx_hash)


def _submitted(run: AutomationRun, tx_hash: str) -> Ended:
    """The run's payment is tracked: it waits for the transactions app to settle it."""
    AutomationRun.objects.filter(pk=run.pk, status=Status.PENDING).update(status=Status.SUBMITTED, transaction_hash=tx_hash)
    # The watcher may have settled it between submission and now: settle from the row then.
    tracked = TrackedTransaction.objects.filter(hash=tx_hash, wallet_id=run.automation.wallet_id).exclude(
        status=TrackedTransaction.Status.PENDING).first()
    return run_settle(tracked=tracked) if tracked is not None else []


def run_defer(*, run_id: str, attempts: int, seconds: float) -> None:
    """A retry is due in `seconds`: the run stays held until then (and the stale grace)."""
    AutomationRun.objects.filter(pk=run_id, status=Status.PENDING, attempts=attempts).update(
        stale_at=stale_after(seconds + settings.AUTOMATION_STALE_GRACE))


def run_expire(run: AutomationRun) -> Ended:
    """No more attempts (out of them, or past the window). A run whose payment was never built
    was never submitted: automation:error. One whose signed envelope exists may have reached
    Horizon (its worker died around the submission), so it is never submitted again nor said
    to have failed: its hash is tracked and the transactions app settles it from Horizon (in a
    ledger, or timed out), as any submitted run."""
    if run.transaction_hash:
        try:
            tx_hash = payments.payment_track(run=run)
        except Exception as exc:  # the wallet went away: nothing can settle it
            logger.exception("automation run %s: its payment %s cannot be tracked", run.pk, run.transaction_hash)
            return _error(run, error=f"the payment {run.transaction_hash} cannot be tracked: {type(exc).__name__}", code="tracking_failed")
        logger.warning("automation run %s: no attempt left; its payment %s is settled from Horizon", run.pk, tx_hash)
        return _submitted(run, tx_hash)
    if run.attempts >= EXECUTION_ATTEMPTS:
        return _error(run, error=f"Horizon unavailable after {run.attempts} attempts", code="horizon_unavailable")
    return _error(run, error=f"not executed within {EXECUTION_WINDOW_SECONDS} s of its trigger (its worker was lost)",
                  code="execution_timeout")


def run_give_up(*, run_id: str, error: str) -> Ended:
    """Out of attempts: the run ends in automation:error (Horizon stayed unavailable)."""
    run = AutomationRun.objects.select_related("automation").filter(pk=run_id).first()
    if run is None:
        return []
    return _error(run, error=f"Horizon unavailable after {run.attempts} attempts: {error}", code="horizon_unavailable")


def run_settle(*, tracked: TrackedTransaction) -> Ended:
    """A tracked transaction settled: end the runs that submitted it."""
    ended: Ended = []
    runs = AutomationRun.objects.select_related("automation").filter(
        transaction_hash=tracked.hash, automation__wallet_id=tracked.wallet_id, status__in=OPEN)
    for run in runs:
        if tracked.status == TrackedTransaction.Status.CONFIRMED:
            ended += _executed(run, at=tracked.confirmed_at or timezone.now(), success=True, tx_hash=tracked.hash)
        elif tracked.ledger is not None:  # in a ledger, failed there
            ended += _executed(run, at=tracked.failed_at or timezone.now(), success=False, tx_hash=tracked.hash,
                                error=tracked.error, error_code=tracked.error_code)
        else:  # timed out: it never reached a ledger
            ended += _error(run, error=tracked.error or "the payment never reached a ledger", code=tracked.error_code or "tx_timeout")
    return ended
