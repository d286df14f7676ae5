"""Django admin for market pairs: what each pair needs before it can be enabled."""

from django.contrib import admin

from .models import MarketPair


@admin.register(MarketPair)
class MarketPairAdmin(admin.ModelAdmin):
    list_display = ("name", "network", "enabled", "configuration", "source", "updated_at")
    list_filter = ("network", "enabled", "source")
    search_fields = ("name", "base_code", "counter_code")
    fieldsets = (
        (None, {"fields": ("name", "network", "enabled", "source", "horizon_url")}),
        ("Base asset", {"fields": ("base_code", "base_issuer"),
                        "description": "Native XLM has no issuer. Anchored assets (BTC, ETH) need the issuer of the anchor you choose."}),
        ("Counter asset", {"fields": ("counter_code", "counter_issuer")}),
    )

    @admin.display(description="configuration")
    def configuration(self, pair: MarketPair) -> str:
        return "complete" if pair.is_configured else "missing " + ", ".join(pair.missing)
