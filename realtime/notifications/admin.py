"""Django admin: staff send a system notification with the add form; the list is the read-only log."""

from django.contrib import admin, messages

from . import services
from .models import SystemNotification


@admin.register(SystemNotification)
class SystemNotificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "level", "title", "short_message", "sender", "via", "delivered")
    list_filter = ("level", "via", "delivered")
    search_fields = ("title", "message", "sender")
    fields = ("level", "title", "message")

    @admin.display(description="message")
    def short_message(self, notification: SystemNotification) -> str:
        return notification.message if len(notification.message) <= 80 else notification.message[:79] + "…"

    def get_fields(self, request, obj=None):
        # The add form asks for what to send; a sent one also shows who sent it, how, and whether it went out.
        return self.fields if obj is None else (*self.fields, "sender", "via", "delivered", "created_at")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        """Adding one sends it (through the service, which records and emits it)."""
        sent = services.notification_send(message=obj.message, level=obj.level, title=obj.title,
                                          sender=request.user.get_username(), via=SystemNotification.Via.ADMIN)
        obj.pk, obj.sender, obj.via, obj.delivered, obj.created_at = sent.pk, sent.sender, sent.via, sent.delivered, sent.created_at
        obj._state.adding = False
        if sent.delivered:
            self.message_user(request, f"Sent to {services.ROOM}.", messages.SUCCESS)
        else:
            self.message_user(request, "Recorded, but the channel layer could not be reached: nobody was told.", messages.ERROR)

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a log: what was sent stays as it was sent

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
