from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from acumos_portal.models import JobRow
from images.choices import BuilderKind, BuildTrigger


class ImageBuild(JobRow):
    """One build of a revision's runner image: a visible job row with its log, whether the
    onboarding pipeline asked for it or someone pressed "Create microservice"."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    revision = models.ForeignKey("marketplace.Revision", on_delete=models.CASCADE, related_name="image_builds")
    trigger = models.CharField(max_length=10, choices=BuildTrigger.choices)
    builder = models.CharField(max_length=10, choices=BuilderKind.choices)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    image = models.CharField(max_length=500, blank=True, help_text="registry/repository:tag")
    digest = models.CharField(max_length=80, blank=True, help_text="the pushed manifest's digest")
    size = models.BigIntegerField(null=True, blank=True, help_text="compressed size of all layers")

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["status", "heartbeat"], name="build_status_heartbeat")]

    def __str__(self) -> str:
        return f"image build {self.id} ({self.status})"

    @property
    def reference(self) -> str:
        return f"{self.image}@{self.digest}" if self.digest else self.image
