from __future__ import annotations

import json
import secrets

from django import forms

from deployment import backends, selectors
from deployment.models import NAME_MAX_LENGTH, Target, validate_deployment_name

MAX_REPLICAS = 20
TRY_BODY_CHARS = 64 * 1024
NAME_HELP = ("your own name for it, e.g. house-prod; it is shown before what it serves "
             "(“house-prod · HousePrice 1.1.0”), which it is named by without one")


class DeployForm(forms.Form):
    """`targets`: where this user may deploy (deployment.selectors.targets_for); any other target is
    refused as an unknown choice."""

    target = forms.ModelChoiceField(queryset=Target.objects.none(), empty_label=None,
                                    help_text="where it runs; admins configure targets and who may use them")
    name = forms.CharField(max_length=NAME_MAX_LENGTH, required=False, validators=[validate_deployment_name],
                           help_text=NAME_HELP)
    replicas = forms.IntegerField(min_value=1, max_value=MAX_REPLICAS, initial=1,
                                  help_text="copies of the runner (Kubernetes targets; others run one)")
    follow = forms.BooleanField(required=False, label="Follow latest",
                                help_text="swap in every new ready version of this model automatically")
    # One key per drawn form (an idempotency key, as the API's header): a double submit, or the same
    # form sent again from another tab, finds the deployment the first made (services.deploy_once).
    request_key = forms.CharField(widget=forms.HiddenInput, required=False, max_length=255)

    def __init__(self, *args, targets, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].queryset = targets
        if not self.is_bound:
            self.initial.setdefault("request_key", f"form-{secrets.token_urlsafe(24)}")


class RenameForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX_LENGTH, required=False, validators=[validate_deployment_name],
                           help_text="empty: it is named by what it serves")


class ShareForm(forms.Form):
    """The toggle's button sends the state it asks for: "1" shared, "0" not."""

    shared = forms.TypedChoiceField(choices=[("1", "shared"), ("0", "not shared")], coerce=lambda value: value == "1")


class SwapForm(forms.Form):
    revision = forms.ModelChoiceField(queryset=None, label="Model version to serve",
                                      help_text="any ready version you can see, of this model or another")

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["revision"].queryset = selectors.swappable_revisions(user)
        self.fields["revision"].label_from_instance = lambda r: f"{r.solution.name} {r.version}"


class RollbackForm(forms.Form):
    generation = forms.IntegerField(min_value=1, required=False,
                                    help_text="the runner generation to serve again; empty: the one before")


class TryForm(forms.Form):
    """`methods`: those the deployment serves; a name is a proto identifier, never a path."""

    method = forms.CharField(max_length=100)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}), label="Request (JSON)")

    def __init__(self, *args, methods: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.methods = methods

    def clean_method(self) -> str:
        method = self.cleaned_data["method"]
        if self.methods is not None and method not in self.methods:
            served = ", ".join(self.methods) or "none"
            raise forms.ValidationError(f"{method!r} is not a method this deployment serves: {served}")
        return method

    def clean_body(self) -> dict:
        text = self.cleaned_data["body"]
        if len(text) > TRY_BODY_CHARS:  # before parsing: a try is a few rows
            raise forms.ValidationError(f"longer than {TRY_BODY_CHARS // 1024} KiB, the most Try it sends: "
                                        "try a few rows here, and deploy the model (or run its bundle) for more")
        try:
            value = json.loads(text)
        except RecursionError as exc:
            raise forms.ValidationError("nested too deeply to read: send a flatter JSON object") from exc
        except ValueError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("must be a JSON object, e.g. {\"field\": 1}")
        return value


class TargetForm(forms.ModelForm):
    """Admins configure targets here and in the admin; the secret is write-only."""

    secret = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off"}),
                             help_text="a kubeconfig, or registry credentials as JSON; stored encrypted, never "
                                       "shown back. Leave empty to keep the current one.")

    class Meta:
        model = Target
        fields = ["name", "kind", "options", "enabled", "deployers"]
        labels = {"deployers": "Who may deploy here"}
        help_texts = {"options": 'JSON, e.g. {"network": "host"} (docker) or {"namespace": "models"} (kubernetes); '
                                 "see the README's deployment section",
                      "deployers": "Operators and admins deploy to every enabled target. “Model owners and licensees "
                                   "too” lets anyone deploy here the models they own or co-own, and those an "
                                   "agreement lets them deploy (within their live-deployments quota); the model's "
                                   "code then runs on this target."}

    def clean_options(self):
        options = self.cleaned_data["options"]
        if not isinstance(options, dict):
            raise forms.ValidationError("must be a JSON object")
        return options

    def clean(self):
        cleaned = super().clean()
        if "options" in cleaned and "kind" in cleaned:
            try:
                backends.check_options(cleaned["kind"], cleaned["options"])
            except backends.BackendError as exc:
                self.add_error("options", str(exc))
        return cleaned

    def save(self, commit=True):
        target = super().save(commit=False)
        if self.cleaned_data.get("secret"):
            target.set_secret(self.cleaned_data["secret"])
        if commit:
            target.save()
        return target
