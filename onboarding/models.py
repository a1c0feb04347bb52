from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from acumos_portal.models import JobRow, TimedRun
from marketplace.models import Revision
from onboarding.choices import STEP_TITLES, JobStatus, Source, StepStatus


class OnboardingJob(JobRow):
    """One upload going through the pipeline. Its id is the Acumos `taskId`.

    The solution, revision and version are reserved when the upload is accepted (the Acumos API
    answers with them at once); the rows are created by the pipeline and removed if it fails.
    Its steps are claimed one by one (StepResult counts each step's attempts and names its process),
    so the job row's own `attempts` and `claimed_by` stay empty; its heartbeat is the job's."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="onboarding_jobs")
    source = models.CharField(max_length=5, choices=Source.choices, default=Source.API)
    tracking_id = models.CharField(max_length=100, blank=True)
    model_name = models.CharField(max_length=200)
    solution_uuid = models.UUIDField()
    revision_uuid = models.UUIDField(default=uuid.uuid4, db_index=True)  # the model page finds its job
    version = models.CharField(max_length=50)
    create_microservice = models.BooleanField(default=True)
    parts = models.JSONField(default=dict, help_text="part name -> staging storage key")
    created_solution = models.BooleanField(default=False)
    created_blobs = models.JSONField(default=list, help_text="blob ids this job stored first (cleanup)")

    class Meta:
        ordering = ["-created"]
        # The reaper looks for running jobs whose heartbeat is old.
        indexes = [models.Index(fields=["status", "heartbeat"], name="job_status_heartbeat")]

    def __str__(self) -> str:
        return f"{self.model_name} {self.version} ({self.status})"

    @property
    def revision(self):
        return Revision.objects.filter(pk=self.revision_uuid).first()

    @property
    def finished_ok(self) -> bool:
        return self.status == JobStatus.SUCCEEDED


class StepResult(TimedRun):
    job = models.ForeignKey(OnboardingJob, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=40)
    position = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=10, choices=StepStatus.choices, default=StepStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The process that claimed it, "host:pid:start" (acumos_portal.jobs.this_process): once that
    # process is gone, the reaper takes the step up at once instead of waiting for it to turn stale.
    claimed_by = models.CharField(max_length=300, blank=True)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["job", "position"]
        constraints = [models.UniqueConstraint(fields=["job", "name"], name="one_result_per_step")]

    def __str__(self) -> str:
        return f"{self.name}: {self.status}"

    @property
    def title(self) -> str:
        return STEP_TITLES.get(self.name, self.name)
