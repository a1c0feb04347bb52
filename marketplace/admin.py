from django.contrib import admin

from marketplace.models import Artifact, Blob, Revision, Solution, Tag


class RevisionInline(admin.TabularInline):
    model = Revision
    fields = ("version", "status", "created", "ready_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True


@admin.register(Solution)
class SolutionAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "toolkit", "model_type", "modified")
    search_fields = ("name", "description", "owner__username")
    list_filter = ("toolkit", "model_type")
    inlines = [RevisionInline]


class ArtifactInline(admin.TabularInline):
    model = Artifact
    fields = ("kind", "name", "blob", "uri")
    readonly_fields = fields
    extra = 0


@admin.register(Revision)
class RevisionAdmin(admin.ModelAdmin):
    list_display = ("solution", "version", "status", "created", "ready_at")
    list_filter = ("status",)
    inlines = [ArtifactInline]


@admin.register(Blob)
class BlobAdmin(admin.ModelAdmin):
    list_display = ("sha256", "size", "storage_key", "created")


admin.site.register(Tag)
