from django.contrib import admin

from onboarding.models import OnboardingJob, StepResult


class StepInline(admin.TabularInline):
    model = StepResult
    fields = ("position", "name", "status", "attempts", "started", "finished", "error")
    readonly_fields = fields
    extra = 0


@admin.register(OnboardingJob)
class OnboardingJobAdmin(admin.ModelAdmin):
    list_display = ("id", "model_name", "version", "owner", "status", "source", "created", "finished")
    list_filter = ("status", "source")
    search_fields = ("model_name", "owner__username", "tracking_id")
    inlines = [StepInline]
