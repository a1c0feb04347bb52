from django.contrib import admin

from monitoring.models import Alert, AlertRule, Sample

_DEPLOYMENT = ("deployment__target", "deployment__revision__solution")  # what a deployment's name shows


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the portal writes (samples each round, alerts when a rule fires): shown, never edited here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Sample)
class SampleAdmin(ReadOnlyAdmin):
    list_display = ("deployment", "at", "variant", "generation", "requests", "errors", "p50_ms", "p99_ms",
                    "agreement_rate")
    list_filter = ("variant",)
    list_select_related = _DEPLOYMENT
    search_fields = ("=deployment__id",)
    show_full_result_count = False  # a sample a minute per variant: counting them all is the slow part


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("deployment", "kind", "threshold", "windows", "enabled", "created_by", "modified")
    list_filter = ("kind", "enabled")
    list_select_related = (*_DEPLOYMENT, "created_by")
    raw_id_fields = ("deployment", "created_by")

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("summary", "deployment", "state", "fired_at", "resolved_at")
    list_filter = ("state", "rule__kind")
    list_select_related = _DEPLOYMENT
