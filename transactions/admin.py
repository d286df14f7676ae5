from django.contrib import admin

from .models import Wallet


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    list_display = ("id", "label", "public_key", "network", "status", "owner_id", "created_at")
    list_filter = ("network", "status")
    search_fields = ("id", "public_key", "owner_id", "label")
