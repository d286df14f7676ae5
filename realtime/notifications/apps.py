"""The system-notifications app: a sub-app of realtime, as domain-free as the room it serves."""

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "realtime.notifications"
    label = "notifications"
    verbose_name = "System notifications"
    default_auto_field = "django.db.models.BigAutoField"
