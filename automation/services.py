"""Changes to automations (create, update, enable, disable, delete), each announced as `automation:status`.

Callers check ownership first (selectors.automation_of). Every change is saved with only the
fields it touches, so it never overwrites the engine's state (condition_met, last_sequence,
counters) written concurrently by a worker; the engine reads the database on every price update,
so a change counts from the next update. The status event goes to `automation:{id}` and
`user:{owner}` once the change is committed (never for a change that was rolled back).
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.db import transaction

from realtime.api import RealtimeError, emit_in_background

from .engine import rooms_of
from .models import Automation
from .serializers import AutomationSerializer
from .validation import validate_action, validate_trigger

STATUS_EVENT = "automation:status"
DELETED = "deleted"
# A status event is retried this long, in the background, when the channel layer is unreachable
# (a Redis restart or failover); past it the change stands (it is committed) and is logged:
# get_status and the REST API still tell the truth.
EMIT_RETRY_SECONDS = 60.0
# Editing any of these changes what the condition means: the engine re-establishes it from the
# next price update instead of comparing against a stale value (no firing on the edit itself).
CONDITION_FIELDS = {"pair", "trigger_type", "trigger_params"}
EDITABLE_FIELDS = {"name", "wallet", "pair", "trigger_type", "trigger_params", "action_type", "action_params",
                   "cooldown_seconds", "max_executions"}


def status_of(automation: Automation) -> dict[str, Any]:
    """The payload of `automation:status`: the automation as REST shows it."""
    return dict(AutomationSerializer(automation).data)


def announce(automation: Automation, status: dict[str, Any] | None = None) -> None:
    """Emit `automation:status` after the surrounding transaction commits."""
    payload = status if status is not None else status_of(automation)
    rooms = rooms_of(automation)

    transaction.on_commit(lambda: emit_in_background(rooms, STATUS_EVENT, payload, retry_for=EMIT_RETRY_SECONDS))


def automation_create(*, wallet, name: str, pair: str, trigger_type: str, trigger_params: dict,
                      action_type: str = Automation.ActionType.NOTIFY, action_params: dict | None = None,
                      cooldown_seconds: int = 0, max_executions: int | None = None,
                      status: str = Automation.Status.ACTIVE) -> Automation:
    """A new automation of the wallet's owner."""
    automation = Automation(
        owner_id=wallet.owner_id, wallet=wallet, name=name, status=status, pair=pair,
        trigger_type=trigger_type, trigger_params=validate_trigger(trigger_type, trigger_params),
        action_type=action_type, action_params=validate_action(action_type, action_params or {}),
        cooldown_seconds=cooldown_seconds, max_executions=max_executions,
    )
    with transaction.atomic():
        automation.save()
        announce(automation)
    return automation


def automation_update(*, automation: Automation, changes: dict[str, Any]) -> Automation:
    """Apply `changes` (model field names, already validated) and announce the new status."""
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    changed = [field for field, value in changes.items() if getattr(automation, field) != value]
    for field in changed:
        setattr(automation, field, changes[field])
    automation.trigger_params = validate_trigger(automation.trigger_type, automation.trigger_params)
    automation.action_params = validate_action(automation.action_type, automation.action_params)
    if "wallet" in changed:
        automation.owner_id = automation.wallet.owner_id  # an admin may move it to another's wallet
        changed.append("owner_id")
    if CONDITION_FIELDS & set(changed):
        automation.condition_met = None
        changed.append("condition_met")
    with transaction.atomic():
        automation.save(update_fields=[*changed, "updated_at"])
        announce(automation)
    return automation


class AutomationCompleted(RealtimeError):
    code = "automation_completed"
    default_message = "it has fired maxExecutions times: raise maxExecutions to enable it again"


def automation_enable(*, automation: Automation) -> Automation:
    """Active from the next price update; the condition is re-established there, so a price that
    already stands past the threshold does not fire until it crosses again. One that has fired
    maxExecutions times is refused: active, it would never fire (the engine completes it)."""
    if automation.max_executions is not None and automation.trigger_count >= automation.max_executions:
        raise AutomationCompleted()
    automation.status = Automation.Status.ACTIVE
    automation.condition_met = None
    with transaction.atomic():
        automation.save(update_fields=["status", "condition_met", "updated_at"])
        announce(automation)
    return automation


def automation_disable(*, automation: Automation) -> Automation:
    """Paused: the engine skips it from the next price update (runs already queued finish)."""
    automation.status = Automation.Status.PAUSED
    with transaction.atomic():
        automation.save(update_fields=["status", "updated_at"])
        announce(automation)
    return automation


def automation_delete(*, automation: Automation) -> None:
    """Gone with its runs; its rooms hear a last status with status "deleted"."""
    last = {**status_of(automation), "status": DELETED}
    with transaction.atomic():
        announce(automation, last)
        automation.delete()


# The socket handlers' entry points: the same services, run off the event loop.
automation_aenable = database_sync_to_async(automation_enable)
automation_adisable = database_sync_to_async(automation_disable)
