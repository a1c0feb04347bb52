from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from marketplace.choices import ARTIFACT_FILE_NAMES, ArtifactKind, ModelType, RevisionStatus


class Tag(models.Model):
    name = models.SlugField(max_length=50, unique=True)

    def __str__(self) -> str:
        return self.name


class Solution(models.Model):
    """A model as the marketplace knows it; its versions are Revisions."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="solutions")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    model_type = models.CharField(max_length=2, choices=ModelType.choices, default=ModelType.OTHER)
    toolkit = models.CharField(max_length=30, blank=True, help_text="the runner flavour (sklearn, onnx, ...)")
    tags = models.ManyToManyField(Tag, blank=True, related_name="solutions")
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-modified"]
        constraints = [
            # Re-onboarding the same name by the same owner adds a revision (Acumos rule).
            models.UniqueConstraint(fields=["owner", "name"], name="unique_solution_name_per_owner"),
        ]

    def __str__(self) -> str:
        return self.name


class Revision(models.Model):
    """One version of a solution. Immutable once ready: its artifacts never change after that."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    solution = models.ForeignKey(Solution, on_delete=models.CASCADE, related_name="revisions")
    version = models.CharField(max_length=50)
    status = models.CharField(max_length=12, choices=RevisionStatus.choices, default=RevisionStatus.ONBOARDING)
    description = models.TextField(blank=True)
    metadata = models.JSONField(default=dict)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["solution", "version"], name="unique_version_per_solution")]

    def __str__(self) -> str:
        return f"{self.solution.name} {self.version}"

    @property
    def is_ready(self) -> bool:
        return self.status == RevisionStatus.READY


class Blob(models.Model):
    """Stored bytes, addressed by their sha256: identical content is stored once."""

    sha256 = models.CharField(max_length=64, unique=True)
    size = models.BigIntegerField()
    storage_key = models.CharField(max_length=300)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.sha256[:12]


class Artifact(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=2, choices=ArtifactKind.choices)
    name = models.CharField(max_length=200)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, null=True, blank=True, related_name="artifacts")
    uri = models.CharField(max_length=500, blank=True, help_text="for artifacts that are not files (images)")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind"]
        constraints = [models.UniqueConstraint(fields=["revision", "kind"], name="one_artifact_per_kind")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def sha256(self) -> str:
        return self.blob.sha256 if self.blob else ""

    @property
    def size(self) -> int:
        return self.blob.size if self.blob else 0

    @property
    def file_name(self) -> str:
        return ARTIFACT_FILE_NAMES.get(self.kind, self.name)
