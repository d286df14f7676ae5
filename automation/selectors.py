"""Reads of the automation app: one automation as its owner (or an admin) sees it, lists, runs."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from transactions.selectors import wallet_of

from .errors import AutomationNotFound
from .models import Automation, AutomationRun


def automation_owner(automation_id: str) -> str | None:
    """The Supabase user id owning `automation_id`, or None (named in REALTIME_ROOM_OWNERS)."""
    try:
        return Automation.objects.filter(pk=automation_id).values_list("owner_id", flat=True).first()
    except (ValidationError, ValueError):  # not a UUID: no such automation
        return None


def automations_visible(*, user_id: str, is_admin: bool) -> QuerySet[Automation]:
    """Every automation the caller may see: their own, or all with the `admin` permission."""
    query = Automation.objects.all() if is_admin else Automation.objects.filter(owner_id=user_id)
    return query.order_by("-created_at", "id")


def automation_of(*, automation_id: str, user_id: str, is_admin: bool) -> Automation:
    """The automation if the caller may see it, else AutomationNotFound (also for a malformed id)."""
    try:
        automation = automations_visible(user_id=user_id, is_admin=is_admin).filter(pk=automation_id).first()
    except (ValidationError, ValueError):
        automation = None
    if automation is None:
        raise AutomationNotFound(f"no automation {automation_id} of yours")
    return automation


def automations_filtered(*, user_id: str, is_admin: bool, status: str | None = None, pair: str | None = None,
                         wallet_id: str | None = None, trigger_type: str | None = None,
                         owner_id: str | None = None) -> QuerySet[Automation]:
    """The caller's visible automations narrowed by each filter given (None: not filtered)."""
    query = automations_visible(user_id=user_id, is_admin=is_admin)
    for field, value in (("status", status), ("pair", pair), ("wallet_id", wallet_id),
                         ("trigger_type", trigger_type), ("owner_id", owner_id)):
        if value is not None:
            query = query.filter(**{field: value})
    return query


def automation_runs(*, automation: Automation) -> QuerySet[AutomationRun]:
    return automation.runs.order_by("-triggered_at", "-sequence")


def automations_listed(*, user_id: str, is_admin: bool, wallet_id: str | None = None) -> QuerySet[Automation]:
    """automation:list: the caller's own automations, or those of one wallet they own (an admin:
    any wallet's); a wallet not theirs is WalletNotFound, as an absent one."""
    if wallet_id is None:
        return automations_visible(user_id=user_id, is_admin=False)
    wallet = wallet_of(wallet_id=wallet_id, user_id=None if is_admin else user_id)
    return automations_visible(user_id=user_id, is_admin=is_admin).filter(wallet=wallet)
