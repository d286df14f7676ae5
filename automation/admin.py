from django.contrib import admin

from .models import Automation


@admin.register(Automation)
class AutomationAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "status", "owner_id", "wallet", "created_at")
    list_filter = ("status",)
    search_fields = ("id", "name", "owner_id")
