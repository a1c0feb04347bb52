from django.db import models

from acumos_portal.choices import JobStatus

__all__ = ["MODEL_STEPS", "STEPS", "STEP_TITLES", "UNFINISHED_STEPS", "JobStatus", "Source", "StepStatus",
           "step_task_name"]


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


# The pipeline, in order: (name, title). The one list of steps: each is done by the function of its
# name in onboarding/steps.py, run by its own Celery task (step_task_name) and shown as a StepResult
# row. Adding a step is a line here and its function there.
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
# Steps that run the user's model (in a sandboxed runner process): one owner's are limited, and they
# have workers of their own (the task's runs_model, acumos_portal.jobs).
MODEL_STEPS = frozenset({"smoke_test"})


def step_task_name(step: str) -> str:
    """The name of the Celery task that runs a step (stable: tests/test_task_names.py)."""
    return f"onboarding.{step}"
