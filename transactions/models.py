"""Wallets (Stellar accounts owned by Supabase users) and the transactions tracked for them."""

import re
import uuid

from django.core.exceptions import ValidationError
from django.db import models
from stellar_sdk import StrKey

# A Stellar transaction hash: SHA-256, 64 lowercase hex digits (Horizon's form).
HASH_PATTERN = re.compile(r"[0-9a-f]{64}")


def validate_public_key(value: str) -> None:
    if not StrKey.is_valid_ed25519_public_key(value):
        raise ValidationError(f"{value!r} is not a Stellar public key (G..., 56 characters)")


def validate_hash(value: str) -> None:
    if not isinstance(value, str) or not HASH_PATTERN.fullmatch(value):
        raise ValidationError(f"{value!r} is not a transaction hash (64 lowercase hex digits)")


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
    # The watcher's place in the account's Horizon transaction history (a paging token): stored
    # with the rows it produced, so a restart neither repeats nor skips a transaction.
    cursor = models.CharField(max_length=64, blank=True, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["public_key", "network"], name="unique_wallet_per_network")]

    def __str__(self) -> str:
        return self.label or f"{self.public_key[:8]}… ({self.network})"

    def save(self, *args, **kwargs):
        validate_public_key(self.public_key)  # every path, not only forms
        super().save(*args, **kwargs)


class TrackedTransaction(models.Model):
    """One transaction as one wallet sees it (a payment between two of our wallets is two rows).

    Whose it is, is read from its wallet each time (`user_id` is not read): a wallet that changes
    hands takes its transactions with it, as it takes its room."""

    class Status(models.TextChoices):
        PENDING = "pending"
        CONFIRMED = "confirmed"
        FAILED = "failed"

    hash = models.CharField(max_length=64, validators=[validate_hash], db_index=True)
    wallet = models.ForeignKey(Wallet, on_delete=models.CASCADE, related_name="transactions")
    # Written, never read: the previous release's workers read it, and run beside this one during
    # a rolling deploy. The next release drops it (its migration: RemoveField).
    user_id = models.CharField(max_length=64, db_index=True, null=True, help_text="the owner when it was registered (unused)")
    from_address = models.CharField(max_length=56, blank=True)
    to_address = models.CharField(max_length=56, blank=True)
    amount = models.DecimalField(max_digits=26, decimal_places=7, default=0)
    asset = models.CharField(max_length=70, default="XLM", help_text='"XLM" or "CODE:ISSUER"')
    network = models.CharField(max_length=16, choices=Wallet.Network.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    # The status last emitted to the wallet's and user's rooms: an event is owed while it differs
    # from `status` (a crash between the update and the emit is made good on the next pass).
    announced = models.CharField(max_length=16, blank=True)
    # While a worker emits the owed event: until then nobody else claims it; a worker that died
    # before its emit went through leaves it owed, for the first pass after this time.
    announcing_until = models.DateTimeField(null=True, blank=True)
    ledger = models.BigIntegerField(null=True, blank=True)
    paging_token = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="failed as tx_timeout if still pending after this")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hash", "wallet"], name="one_tracked_transaction_per_wallet")]
        indexes = [models.Index(fields=["wallet", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.hash[:12]}… {self.status}"

    def save(self, *args, **kwargs):
        validate_hash(self.hash)
        super().save(*args, **kwargs)
