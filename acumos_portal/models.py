"""Model pieces the apps share: the one shape of a background job."""

from __future__ import annotations

from django.db import models

from acumos_portal.choices import UNFINISHED, JobStatus


class TimedRun(models.Model):
    """Something that runs in the background and is shown with how long it took: every job row and
    the onboarding pipeline's steps."""

    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def duration_seconds(self) -> float | None:
        if self.started and self.finished:
            return (self.finished - self.started).total_seconds()
        return None


class JobRow(TimedRun):
    """A background job: onboarding jobs, image builds, deployment operations (and every later kind)
    extend it, and acumos_portal.jobs runs, retries and reaps them all the same way. A worker claims
    the row (pending -> running, counting the attempt and naming itself), keeps `heartbeat` fresh
    while it works, and records the end: succeeded, or failed with `error` saying why."""

    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.PENDING)
    created = models.DateTimeField(auto_now_add=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="how many times a worker claimed it")
    # "host:pid:start" of the process that claimed it (acumos_portal.jobs.this_process): once that
    # process is gone, the reaper takes the job up at once instead of waiting for it to turn stale.
    claimed_by = models.CharField(max_length=300, blank=True)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        abstract = True

    @property
    def done(self) -> bool:
        return self.status not in UNFINISHED
