"""SystemNotification: one message an operator sent to `system:notifications` (the audit log)."""

import uuid

from django.db import models

# The REST serializer, the admin form and the model share this cap: a banner, not a document.
MESSAGE_MAX_LENGTH = 1000
TITLE_MAX_LENGTH = 200


class SystemNotification(models.Model):
    class Level(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        CRITICAL = "critical"

    class Via(models.TextChoices):
        REST = "rest", "REST API"
        ADMIN = "admin", "Django admin"

    # A UUID, not a row number: it is sent to every client and says nothing about volume.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    title = models.CharField(max_length=TITLE_MAX_LENGTH, blank=True)
    message = models.TextField(max_length=MESSAGE_MAX_LENGTH)
    sender = models.CharField(max_length=200, editable=False, help_text="who sent it: the Supabase user id or the admin username")
    via = models.CharField(max_length=10, choices=Via.choices, editable=False)
    delivered = models.BooleanField(default=False, editable=False,
                                    help_text="reached the channel layer (false: emit failed, nobody was told)")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.level}: {self.title or self.message[:60]}"

    @property
    def timestamp_ms(self) -> int:
        return int(self.created_at.timestamp() * 1000)
