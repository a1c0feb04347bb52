from django.contrib import admin

from deployment.forms import TargetForm
from deployment.models import Deployment, Operation, Target


@admin.register(Target)
class TargetAdmin(admin.ModelAdmin):
    form = TargetForm
    list_display = ("name", "kind", "enabled", "deployers", "created")
    list_filter = ("kind", "enabled", "deployers")


class OperationInline(admin.TabularInline):
    model = Operation
    extra = 0
    can_delete = False
    fields = ("kind", "status", "requested_by", "revision", "generation", "swap_ms", "created", "finished", "error")
    readonly_fields = fields


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ("display_name", "target", "status", "shared", "endpoint_url", "created_by", "created")
    list_filter = ("status", "target", "shared")
    list_select_related = ("target", "revision__solution", "created_by")
    readonly_fields = ("endpoint_url", "handle", "status", "stopped_at")
    inlines = [OperationInline]
