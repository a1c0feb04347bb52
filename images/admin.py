from django.contrib import admin

from images.models import ImageBuild


@admin.register(ImageBuild)
class ImageBuildAdmin(admin.ModelAdmin):
    list_display = ("id", "revision", "trigger", "builder", "status", "image", "created", "finished")
    list_filter = ("status", "trigger", "builder")
    readonly_fields = [field.name for field in ImageBuild._meta.fields]
    search_fields = ("image", "digest", "revision__solution__name")
