from django.db import models


class JobStatus(models.TextChoices):
    """Where a background job is: onboarding jobs, image builds, deployment operations."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# A job still to do or being done.
UNFINISHED = (JobStatus.PENDING, JobStatus.RUNNING)
