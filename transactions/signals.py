"""Keep realtime's cached room owners true when a wallet changes hands or goes away."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from realtime.api import forget_room_owner

from .models import Wallet


@receiver([post_save, post_delete], sender=Wallet)
def forget_wallet_owner(sender, instance: Wallet, **kwargs) -> None:
    forget_room_owner("wallet", str(instance.pk))
