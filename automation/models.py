"""Automations owned by Supabase users: a trigger on a market pair's price, an action, and runs.

Trigger and action parameters are JSON validated per type by `automation.validation` (one place,
used by the model's clean(), the admin and the REST/WebSocket serializers).
"""

import uuid

from django.core.exceptions import ValidationError
from django.db import models

from transactions.models import Wallet

from .validation import error_detail, validate_action, validate_trigger


class Automation(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"
        COMPLETED = "completed"  # reached max executions
        FAILED = "failed"

    class TriggerType(models.TextChoices):
        PRICE_ABOVE = "price_above"  # {"threshold": "0.12"}: fires when the price crosses up through it
        PRICE_BELOW = "price_below"  # {"threshold": "0.10"}: fires when the price crosses down through it
        PRICE_CHANGE = "price_change"  # {"percent": "5", "windowSeconds": 3600}: |change over window| crosses percent

    class ActionType(models.TextChoices):
        NOTIFY = "notify"  # events only
        PAYMENT = "payment"  # {"destination": "G...", "amount": "10", "asset": "XLM" | "CODE:ISSUER"}

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_id = models.CharField(max_length=64, db_index=True, help_text="Supabase user id (auth.users.id)")
    wallet = models.ForeignKey(Wallet, on_delete=models.CASCADE, related_name="automations")
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PAUSED)

    pair = models.CharField(max_length=32, help_text="market pair the trigger watches, e.g. XLM_USDC")
    trigger_type = models.CharField(max_length=32, choices=TriggerType.choices)
    trigger_params = models.JSONField(default=dict, blank=True)
    action_type = models.CharField(max_length=32, choices=ActionType.choices, default=ActionType.NOTIFY)
    action_params = models.JSONField(default=dict, blank=True)
    cooldown_seconds = models.PositiveIntegerField(default=0, help_text="no firing again within this many seconds")
    max_executions = models.PositiveIntegerField(null=True, blank=True, help_text="completed after this many; empty: no limit")

    # The engine's state. `condition_met` is the condition's value at the last evaluated price
    # update, so a rule fires on crossing (False -> True), not on every tick while it holds;
    # `last_sequence` and `last_update_at` are that update's per-pair sequence and time: an
    # update at or below it is not evaluated again (exactly once per price update, whatever the
    # number of workers), unless it is much newer (the sequence was reset: conditions.py).
    condition_met = models.BooleanField(null=True, blank=True, editable=False)
    last_sequence = models.BigIntegerField(default=0, editable=False)
    last_update_at = models.BigIntegerField(default=0, editable=False, help_text="ms time of the last evaluated price update")
    last_price = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True, editable=False)
    last_triggered_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_executed_at = models.DateTimeField(null=True, blank=True, editable=False)
    trigger_count = models.PositiveIntegerField(default=0, editable=False)
    execution_count = models.PositiveIntegerField(default=0, editable=False)
    failure_count = models.PositiveIntegerField(default=0, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # The engine's one query per price update: the active automations on that pair.
            models.Index(fields=["pair", "status"], name="automation_pair_status"),
            models.Index(fields=["owner_id", "-created_at"], name="automation_owner_created"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Normalise the trigger and action parameters for their types (admin forms call this)."""
        errors = {}
        for field, check, kind in (("trigger_params", validate_trigger, self.trigger_type),
                                   ("action_params", validate_action, self.action_type)):
            try:
                setattr(self, field, check(kind, getattr(self, field)))
            except ValidationError as exc:
                detail = error_detail(exc)
                errors[field] = [f"{k}: {' '.join(v)}" for k, v in detail.items()] if isinstance(detail, dict) else detail
        if errors:
            raise ValidationError(errors)


class AutomationRun(models.Model):
    """One firing of an automation: what triggered it, and how its action ended."""

    class Status(models.TextChoices):
        PENDING = "pending"  # triggered, action queued or running
        SUBMITTED = "submitted"  # payment sent to Horizon, waiting for the ledger
        EXECUTED = "executed"
        FAILED = "failed"

    class Announced(models.IntegerChoices):
        """How far the run's events went out (automation.announcements): it trails the status."""

        NOTHING = 0
        TRIGGERED = 1  # automation:triggered
        ENDED = 2  # automation:executed or automation:error

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="runs")
    sequence = models.BigIntegerField(help_text="the per-pair sequence of the price update that fired it")
    price_at = models.BigIntegerField(default=0, help_text="that update's time, ms (a reset sequence repeats numbers)")
    trigger_condition = models.CharField(max_length=200)
    trigger_data = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    result = models.JSONField(default=dict, blank=True)
    transaction_hash = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    # Attempts started; also the version an execution claims (execution.run_execute), so two
    # deliveries of one attempt (a late retry and the sweep's) never both run it.
    attempts = models.PositiveIntegerField(default=0)
    # While pending, the moment by which whoever holds the run will have touched it again (its
    # queued execution started, its attempt finished, its retry's countdown ended). Past it
    # nobody holds it (a worker died, a message was lost): the sweep takes it (automation.recovery).
    stale_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The events owed are derived from the row: triggered from the firing, the ending once the
    # run is closed; `announced` is how far they went out. A claim to emit them holds the row
    # until `announcing_until` (a lease: its holder died, the next pass emits them).
    announced = models.PositiveSmallIntegerField(choices=Announced.choices, default=Announced.NOTHING, editable=False)
    announcing_until = models.DateTimeField(null=True, blank=True, editable=False)
    triggered_at = models.DateTimeField(auto_now_add=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # A price update fires an automation at most once, even if two workers race.
            models.UniqueConstraint(fields=["automation", "sequence", "price_at"], name="one_run_per_price_update"),
        ]
        indexes = [
            # The sweep's query: open runs nobody has touched in time.
            models.Index(fields=["status", "stale_at"], name="automation_run_open_stale"),
            # The sweep's other query: runs whose events did not all go out (open ones, and the
            # few an outage left owed); announced runs, nearly all of them, are not in it.
            models.Index(fields=["triggered_at"], name="automation_run_unannounced",
                         condition=models.Q(announced__lt=2)),
        ]
        ordering = ["-triggered_at"]

    def __str__(self) -> str:
        return f"{self.automation_id} #{self.sequence} {self.status}"


class CustodialKey(models.Model):
    """A wallet's Stellar secret seed, for operators who choose custodial signing of payments.

    Stored only as ciphertext under WALLET_ENCRYPTION_KEY (Fernet); never logged, never returned
    by an API or admin page. Without the key configured, payments are refused.
    """

    wallet = models.OneToOneField(Wallet, on_delete=models.CASCADE, primary_key=True, related_name="custodial_key")
    ciphertext = models.BinaryField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"custodial key of {self.wallet}"
