"""Model pieces the apps share."""

from __future__ import annotations

from django.db import models


class TimedRun(models.Model):
    """Something that runs in the background and is shown with how long it took: onboarding jobs
    and their steps, image builds, deployment operations."""

    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def duration_seconds(self) -> float | None:
        if self.started and self.finished:
            return (self.finished - self.started).total_seconds()
        return None

