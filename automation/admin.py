"""Django admin of automations and their runs; every change goes through the services, so it is announced.

An automation's status changes only through the "enable" / "disable" actions (which reset the
engine's condition as REST does); its owner is its wallet's owner; the engine's state and the
runs are read-only. No page here shows a wallet's custodial key, not even its ciphertext.
"""

from django import forms
from django.contrib import admin, messages
from django.db import transaction

from market.selectors import pair_enabled
from realtime.api import RealtimeError

from . import services
from .custody import CustodyError, custodial_ciphertext
from .models import Automation, AutomationRun, CustodialKey

ENGINE_STATE = ("condition_met", "last_sequence", "last_update_at", "last_price", "last_triggered_at", "last_executed_at",
                "trigger_count", "execution_count", "failure_count")


class AutomationForm(forms.ModelForm):
    class Meta:
        model = Automation
        exclude = ("owner_id",)

    def clean_pair(self) -> str:
        name = self.cleaned_data["pair"].upper().replace("/", "_")
        try:
            return pair_enabled(name).name
        except RealtimeError as exc:  # unknown, or not enabled on this server
            raise forms.ValidationError(exc.message) from None


class AutomationRunInline(admin.TabularInline):
    model = AutomationRun
    fields = ("sequence", "status", "trigger_condition", "transaction_hash", "error_code", "error", "attempts",
              "triggered_at", "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("-triggered_at",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Automation)
class AutomationAdmin(admin.ModelAdmin):
    form = AutomationForm
    list_display = ("name", "status", "pair", "trigger_type", "action_type", "owner_id", "wallet", "trigger_count",
                    "execution_count", "last_triggered_at", "created_at")
    list_filter = ("status", "trigger_type", "action_type", "pair", "owner_id")
    search_fields = ("=id", "name", "=owner_id", "=wallet__public_key", "pair")
    list_select_related = ("wallet",)
    inlines = [AutomationRunInline]
    actions = ["enable_selected", "disable_selected"]

    def get_readonly_fields(self, request, obj=None):
        # status is chosen on creation; afterwards the actions change it (and reset the engine).
        return ("id", "owner_id", "status", *ENGINE_STATE) if obj else ("id", "owner_id", *ENGINE_STATE)

    def save_model(self, request, obj: Automation, form, change: bool) -> None:
        if not change:
            created = services.automation_create(
                wallet=obj.wallet, name=obj.name, pair=obj.pair, trigger_type=obj.trigger_type,
                trigger_params=obj.trigger_params, action_type=obj.action_type, action_params=obj.action_params,
                cooldown_seconds=obj.cooldown_seconds, max_executions=obj.max_executions, status=obj.status)
            obj.pk, obj.owner_id, obj._state.adding = created.pk, created.owner_id, False  # the admin's redirect and log
            return
        changes = {field: getattr(obj, field) for field in form.changed_data if field in services.EDITABLE_FIELDS}
        if changes:  # from the stored row, so the service sees what changed
            services.automation_update(automation=Automation.objects.get(pk=obj.pk), changes=changes)

    def delete_model(self, request, obj: Automation) -> None:
        services.automation_delete(automation=obj)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            for automation in queryset:
                services.automation_delete(automation=automation)

    @admin.action(description="Enable selected automations", permissions=["change"])
    def enable_selected(self, request, queryset) -> None:
        self.switch(request, queryset, services.automation_enable, "enabled")

    @admin.action(description="Disable selected automations", permissions=["change"])
    def disable_selected(self, request, queryset) -> None:
        self.switch(request, queryset, services.automation_disable, "disabled")

    def switch(self, request, queryset, change, done: str) -> None:
        count, refused = 0, []
        with transaction.atomic():
            for automation in queryset:
                try:
                    change(automation=automation)
                    count += 1
                except RealtimeError as exc:  # one that fired maxExecutions times
                    refused.append(f"{automation.name}: {exc.message}")
        self.message_user(request, f"{count} automation(s) {done}.", messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.WARNING)


@admin.register(AutomationRun)
class AutomationRunAdmin(admin.ModelAdmin):
    """Runs are the engine's record: read-only here."""

    list_display = ("automation", "sequence", "status", "trigger_condition", "transaction_hash", "error_code", "triggered_at")
    list_filter = ("status",)
    search_fields = ("=automation__id", "=transaction_hash", "automation__name")
    list_select_related = ("automation",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# -- custodial keys ----------------------------------------------------------------------------

class CustodialKeyForm(forms.ModelForm):
    """A write-only secret: typed in, checked, encrypted; never rendered back (not even masked)."""

    secret = forms.CharField(
        label="Secret seed", strip=True, widget=forms.PasswordInput(render_value=False),
        help_text="The wallet's Stellar secret seed (S...). Stored encrypted under WALLET_ENCRYPTION_KEY; "
                  "it cannot be displayed again. Enter a new one to replace it.",
    )

    class Meta:
        model = CustodialKey
        fields = ["wallet"]

    def clean(self):
        cleaned = super().clean()
        wallet = cleaned.get("wallet") or (self.instance.wallet if self.instance.wallet_id else None)
        if wallet is not None and cleaned.get("secret"):
            try:
                self.instance.ciphertext = custodial_ciphertext(wallet=wallet, secret=cleaned["secret"])
            except CustodyError as exc:
                self.add_error("secret", exc.message)
        return cleaned


@admin.register(CustodialKey)
class CustodialKeyAdmin(admin.ModelAdmin):
    form = CustodialKeyForm
    list_display = ("wallet", "public_key", "configured", "updated_at")
    readonly_fields = ("public_key", "configured", "updated_at")
    search_fields = ("wallet__public_key", "wallet__owner_id")

    @admin.display(description="public key")
    def public_key(self, obj):
        return obj.wallet.public_key if obj and obj.wallet_id else "-"

    @admin.display(boolean=True)
    def configured(self, obj):
        return bool(obj and obj.pk and obj.ciphertext)

    def get_readonly_fields(self, request, obj=None):
        # The wallet of an existing key is fixed: another wallet's key is another row.
        return (*self.readonly_fields, "wallet") if obj else self.readonly_fields
