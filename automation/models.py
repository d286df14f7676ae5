"""Automations owned by Supabase users; rules, actions and runs arrive with their issue."""

import uuid

from django.db import models

from transactions.models import Wallet


class Automation(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"
        COMPLETED = "completed"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_id = models.CharField(max_length=64, db_index=True, help_text="Supabase user id (auth.users.id)")
    wallet = models.ForeignKey(Wallet, on_delete=models.CASCADE, related_name="automations")
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PAUSED)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name
