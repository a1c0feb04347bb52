"""The page's form to start a batch job on an uploaded file (the S3 and URL inputs are the API's). What the
services refuse goes beside the field it names (`place`)."""

from __future__ import annotations

import uuid

from django import forms

from batch import selectors
from batch.choices import OutputFormat
from deployment.choices import DeploymentStatus
from marketplace.selectors import visible_revisions

# A service's field ("input.sha256", "deployment") -> this form's.
FIELD_OF = {"input": "file", "format": "file", "deployment": "runs_on", "revision": "runs_on", "method": "method",
            "id_column": "id_column", "shard_rows": "shard_rows", "output_format": "output_format"}


class StartForm(forms.Form):
    runs_on = forms.ChoiceField(label="Runs on", help_text="a running deployment you manage, or a version of your "
                                "model run in a sandbox of its own for the job's time")
    method = forms.CharField(label="Method", max_length=100, help_text="the model's method, e.g. classify")
    file = forms.FileField(label="File", help_text="CSV with a header, JSON lines, or Parquet (by its name's ending)")
    id_column = forms.CharField(label="Id column", required=False, max_length=200,
                                help_text="a column of the file, copied beside each prediction")
    output_format = forms.ChoiceField(label="Output", choices=OutputFormat.choices, initial=OutputFormat.CSV,
                                      required=False, help_text="JSON lines keeps each value's type")
    shard_rows = forms.IntegerField(label="Rows per shard", required=False, min_value=1,
                                    help_text="progress is saved after each shard (default 10,000)")

    def __init__(self, user, *args, revision_id: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.deployments = {f"deployment:{d.pk}": d for d in selectors.startable_deployments(user)
                            if d.status == DeploymentStatus.RUNNING}
        revisions = selectors.startable_revisions(user)
        posted = self.data.get("runs_on", "")
        linked = _linked_revision(user, revision_id or (posted.removeprefix("revision:") if posted.startswith(
            "revision:") else ""))
        if linked is not None and linked not in revisions:
            revisions.insert(0, linked)  # an operator's or admin's choice from the model page's link
        self.revisions = {f"revision:{r.pk}": r for r in revisions}
        groups = (("Running deployments", [(key, d.display_name) for key, d in self.deployments.items()]),
                  ("Versions, in the sandbox", [(key, f"{r.solution.name} {r.version} (in a sandbox, no deployment)")
                                                for key, r in self.revisions.items()]))
        self.fields["runs_on"].choices = [group for group in groups if group[1]]
        if linked is not None and len(linked.interface or {}) == 1 and not self.initial.get("method"):
            self.initial["method"] = next(iter(linked.interface))  # the version's only method

    @property
    def has_choices(self) -> bool:
        return bool(self.deployments or self.revisions)

    def chosen(self) -> dict:
        """{"deployment": ...} or {"revision": ...}: start_job's arguments."""
        key = self.cleaned_data["runs_on"]
        if key in self.deployments:
            return {"deployment": self.deployments[key]}
        return {"revision": self.revisions[key]}

    def place(self, field: str | None, message: str) -> None:
        name = FIELD_OF.get((field or "").split(".")[0])
        self.add_error(name, message)


def _linked_revision(user, revision_id: str):
    """The revision a link (?revision=) or a posted choice names, if the user may run it in the sandbox."""
    try:
        revision_id = uuid.UUID(str(revision_id))
    except ValueError:  # nothing, or not a UUID
        return None
    revision = visible_revisions(user).select_related("solution").filter(pk=revision_id).first()
    return revision if revision is not None and selectors.can_start_on_revision(user, revision) else None
