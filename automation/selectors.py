"""Reads of the automation app."""

from .models import Automation


def automation_owner(automation_id: str) -> str | None:
    """The Supabase user id owning `automation_id`, or None (named in REALTIME_ROOM_OWNERS)."""
    try:
        return Automation.objects.filter(pk=automation_id).values_list("owner_id", flat=True).first()
    except Exception:  # not a UUID: no such automation
        return None
