"""Keep realtime's cached room owners true when a wallet changes hands or goes away; and the
signal other apps hear a tracked transaction settle by."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal, receiver

from realtime.api import forget_room_owner

from .models import Wallet

# Sent after commit when a tracked transaction leaves `pending` (confirmed, failed on the
# ledger, or timed out): argument `tracked`, the TrackedTransaction row as saved.
transaction_settled = Signal()


@receiver([post_save, post_delete], sender=Wallet)
def forget_wallet_owner(sender, instance: Wallet, **kwargs) -> None:
    forget_room_owner("wallet", str(instance.pk))
