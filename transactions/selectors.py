"""Reads of the transactions app."""

from .models import Wallet


def wallet_owner(wallet_id: str) -> str | None:
    """The Supabase user id owning `wallet_id`, or None (named in REALTIME_ROOM_OWNERS)."""
    try:
        return Wallet.objects.filter(pk=wallet_id).values_list("owner_id", flat=True).first()
    except Exception:  # not a UUID: no such wallet
        return None
