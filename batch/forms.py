"""The page's form to start a batch job on an uploaded file (the S3 and URL inputs are the API's). What the
services refuse goes beside the field it names (`place`)."""

from __future__ import annotations

from django import forms

from batch import selectors
from deployment.choices import DeploymentStatus

# A service's field ("input.sha256", "deployment") -> this form's.
FIELD_OF = {"input": "file", "format": "file", "deployment": "deployment", "method": "method",
            "id_column": "id_column", "shard_rows": "shard_rows"}


class StartForm(forms.Form):
    deployment = forms.ChoiceField(label="Deployment", help_text="a running deployment you manage")
    method = forms.CharField(label="Method", max_length=100, help_text="the model's method, e.g. classify")
    file = forms.FileField(label="File", help_text="CSV with a header, JSON lines, or Parquet (by its name's ending)")
    id_column = forms.CharField(label="Id column", required=False, max_length=200,
                                help_text="joined to each prediction (optional)")
    shard_rows = forms.IntegerField(label="Rows per shard", required=False, min_value=1,
                                    help_text="progress is saved after each shard (default 10,000)")

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.running = {str(d.pk): d for d in selectors.startable_deployments(user)
                        if d.status == DeploymentStatus.RUNNING}
        self.fields["deployment"].choices = [(pk, d.display_name) for pk, d in self.running.items()]

    def chosen(self):
        return self.running[self.cleaned_data["deployment"]]

    def place(self, field: str | None, message: str) -> None:
        name = FIELD_OF.get((field or "").split(".")[0])
        self.add_error(name, message)
