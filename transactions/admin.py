from django.contrib import admin

from .models import TrackedTransaction, Wallet


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    list_display = ("id", "label", "public_key", "network", "status", "owner_id", "created_at")
    list_filter = ("network", "status")
    search_fields = ("id", "public_key", "owner_id", "label")
    readonly_fields = ("cursor",)


@admin.register(TrackedTransaction)
class TrackedTransactionAdmin(admin.ModelAdmin):
    list_display = ("hash", "wallet", "status", "amount", "asset", "ledger", "error_code", "created_at")
    list_filter = ("status", "network")
    search_fields = ("hash", "wallet__owner_id", "from_address", "to_address")
    readonly_fields = ("announced", "paging_token", "created_at", "updated_at")
