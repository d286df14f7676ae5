"""Keep realtime's cached room owners true when an automation changes hands or goes away."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from realtime.api import forget_room_owner

from .models import Automation


@receiver([post_save, post_delete], sender=Automation)
def forget_automation_owner(sender, instance: Automation, **kwargs) -> None:
    forget_room_owner("automation", str(instance.pk))
