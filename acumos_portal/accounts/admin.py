from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from acumos_portal.accounts.models import ApiToken, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "is_staff", "is_active", "date_joined")
    fieldsets = (*BaseUserAdmin.fieldsets, ("Portal", {"fields": ("organization",)}))


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created", "last_used", "revoked")
    readonly_fields = ("prefix", "key_hash", "created", "last_used")
    list_filter = ("revoked",)
