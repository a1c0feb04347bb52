from django import forms
from django.contrib import admin

from deployment.models import Deployment, Operation, Target


class TargetForm(forms.ModelForm):
    secret = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}),
                             help_text="a kubeconfig or credentials; stored encrypted, never shown back. "
                                       "Leave empty to keep the current one.")

    class Meta:
        model = Target
        fields = ["name", "kind", "options", "enabled"]

    def save(self, commit=True):
        target = super().save(commit=False)
        if self.cleaned_data.get("secret"):
            target.set_secret(self.cleaned_data["secret"])
        if commit:
            target.save()
        return target


@admin.register(Target)
class TargetAdmin(admin.ModelAdmin):
    form = TargetForm
    list_display = ("name", "kind", "enabled", "created")


class OperationInline(admin.TabularInline):
    model = Operation
    extra = 0
    can_delete = False
    fields = ("kind", "status", "requested_by", "revision", "generation", "swap_ms", "created", "finished", "error")
    readonly_fields = fields


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ("name", "target", "revision", "status", "endpoint_url", "created_by", "created")
    list_filter = ("status", "target")
    readonly_fields = ("endpoint_url", "handle", "status", "stopped_at")
    inlines = [OperationInline]
