"""The onboarding page's form: three files (plus an optional licence) or one bundle zip.

It only decides which of the two the person meant; the bundle itself is checked by
onboarding.services, whose errors (onboarding.validation.Invalid) are put back on the form."""

from __future__ import annotations

from django import forms

from onboarding.bundle import PART_FILES, PART_NAMES
from onboarding.validation import Invalid


class OnboardForm(forms.Form):
    metadata = forms.FileField(
        label="metadata.json", required=False, help_text="Model metadata: name, runtime, methods.",
        widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}))
    schema = forms.FileField(
        label="model.proto", required=False, help_text="The protobuf interface: service Model and its messages.",
        widget=forms.ClearableFileInput(attrs={"accept": ".proto"}))
    model = forms.FileField(
        label="modelpackage.zip", required=False, help_text="The serialized model with its runner.json.",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}))
    license = forms.FileField(
        label="license.json", required=False, help_text="Optional: a licence profile.",
        widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}))
    bundle = forms.FileField(
        label="Bundle zip", required=False,
        help_text="One zip holding metadata.json, model.proto and modelpackage.zip (and license.json).",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}))

    def __init__(self, *args, refusal: str = "", **kwargs):
        """`refusal`: the request itself was refused (too large); the form shows only that."""
        super().__init__(*args, **kwargs)
        self.refusal = refusal

    def clean(self):
        data = super().clean()
        if self.refusal:
            raise forms.ValidationError(self.refusal)
        separate = [part for part in PART_NAMES if data.get(part)]
        if data.get("bundle") and separate:
            raise forms.ValidationError("Upload either the separate files or one bundle zip, not both.")
        if not data.get("bundle") and not separate:
            raise forms.ValidationError("Choose metadata.json, model.proto and modelpackage.zip, "
                                        "or one bundle zip.")
        return data

    @property
    def is_bundle(self) -> bool:
        return bool(self.files.get("bundle"))

    def add_invalid(self, refused: Invalid) -> None:
        """The service's verdict: its message on top, each field error next to the file it is about."""
        self.add_error(None, refused.message)
        errors = refused.errors or [{"field": "", "message": refused.message}]
        for error in errors:
            target, text = self._place(refused.part, error.get("field") or "", error.get("message") or "")
            if target is not None:
                self.add_error(target, text)

    def _place(self, part: str, field: str, message: str) -> tuple[str | None, str]:
        if self.is_bundle:  # every error is about the one zip: say which file inside it
            if field in PART_FILES:
                return "bundle", f"{PART_FILES[field]}: {message}"
            if part not in PART_FILES:
                return "bundle", message
            where = f"{PART_FILES[part]} → {field}" if field else PART_FILES[part]
            return "bundle", f"{where}: {message}"
        if field in PART_NAMES:
            return field, message
        target = part if part in self.fields else None
        return target, f"{field}: {message}" if field else message
