"""Wallets (Stellar accounts owned by Supabase users); tracked transactions arrive with their issue."""

import uuid

from django.core.exceptions import ValidationError
from django.db import models
from stellar_sdk import StrKey


def validate_public_key(value: str) -> None:
    if not StrKey.is_valid_ed25519_public_key(value):
        raise ValidationError(f"{value!r} is not a Stellar public key (G..., 56 characters)")


class Wallet(models.Model):
    class Network(models.TextChoices):
        TESTNET = "testnet"
        PUBLIC = "public"

    class Status(models.TextChoices):
        ACTIVE = "active"
        DISABLED = "disabled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_id = models.CharField(max_length=64, db_index=True, help_text="Supabase user id (auth.users.id)")
    public_key = models.CharField(max_length=56, validators=[validate_public_key])
    network = models.CharField(max_length=16, choices=Network.choices, default=Network.TESTNET)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["public_key", "network"], name="unique_wallet_per_network")]

    def __str__(self) -> str:
        return self.label or f"{self.public_key[:8]}… ({self.network})"
