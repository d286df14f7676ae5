from django.contrib import admin

from .models import Automation


@admin.register(Automation)
class AutomationAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "status", "owner_id", "wallet", "created_at")
    list_filter = ("status",)
    search_fields = ("id", "name", "owner_id")


# -- custodial keys (engine) ------------------------------------------------------------------

from django import forms  # noqa: E402

from .custody import CustodyError, custodial_ciphertext  # noqa: E402
from .models import CustodialKey  # noqa: E402


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
