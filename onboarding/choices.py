from django.db import models

from acumos_portal.choices import JobStatus

__all__ = ["STEPS", "STEP_TITLES", "UNFINISHED_STEPS", "JobStatus", "Source", "StepStatus"]


class StepStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


# A step still to do or being done (the rest are finished: succeeded, failed or skipped).
UNFINISHED_STEPS = (StepStatus.PENDING, StepStatus.RUNNING)


class Source(models.TextChoices):
    WEB = "web"
    API = "api"


# The pipeline, in order: (name, title). One Celery task and one StepResult row per step.
STEPS = (
    ("validate_metadata", "Validate metadata"),
    ("validate_proto", "Validate proto"),
    ("validate_package", "Validate model package"),
    ("validate_licence", "Validate licence"),
    ("store_artifacts", "Store artifacts"),
    ("create_revision", "Create solution and revision"),
    ("generate_descriptors", "Generate PROTOBUF.json and TGIF.json"),
    ("smoke_test", "Smoke-test the model in a runner"),
    ("build_image", "Build the model image"),
    ("mark_ready", "Mark ready"),
)
STEP_TITLES = dict(STEPS)
