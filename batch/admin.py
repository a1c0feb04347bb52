from django.contrib import admin

from batch.models import BatchJob, BatchUpload


@admin.register(BatchJob)
class BatchJobAdmin(admin.ModelAdmin):
    """Jobs are the portal's records of a run: shown, not edited (cancel through the page or the API)."""

    list_display = ("id", "requested_by", "deployment", "revision", "method", "status", "rows_predicted", "rows_failed",
                    "created")
    list_filter = ("status", "input_kind", "format")
    list_select_related = ("requested_by", "deployment__revision__solution", "deployment__target", "revision__solution")
    search_fields = ("=id", "requested_by__username")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(BatchUpload)
class BatchUploadAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "size", "created")
    search_fields = ("name", "owner__username")
