"""Running one pipeline step: claim it, do it, record it, start the next one or fail the job.

Every step is a StepResult row. A step is claimed with a conditional update, so a duplicate
delivery of the same task does nothing (tasks are idempotent). A permanent failure fails the
job at once and undoes what it made; a transient one is retried with a bound; a worker that
dies mid-step leaves a running row that the reaper re-queues or fails."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from onboarding.choices import STEPS, JobStatus, StepStatus
from onboarding.models import OnboardingJob, StepResult

log = logging.getLogger(__name__)
STEP_ORDER = [name for name, _ in STEPS]


class StepFailed(Exception):
    """A permanent failure: the bundle is wrong, retrying cannot help."""

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class StepSkipped(Exception):
    """The step does not apply to this upload (no licence, no image builder configured)."""


class TransientError(Exception):
    """Storage or a service hiccup: the step is retried (bounded by the task's max_retries)."""


def run_step(job_id: str, name: str) -> None:
    step = claim_step(job_id, name)
    if step is None:
        return  # already done, being done elsewhere, or the job has failed
    from onboarding.steps import STEP_FUNCTIONS

    try:
        output = STEP_FUNCTIONS[name](step.job, step)
    except StepSkipped as skipped:
        _finish(step, StepStatus.SKIPPED, str(skipped))
    except StepFailed as failure:
        fail_job(step.job, step, failure.message, failure.details)
        return
    except TransientError:
        StepResult.objects.filter(pk=step.pk).update(status=StepStatus.PENDING)
        raise
    except Exception as exc:  # a bug must fail the job visibly, not leave it running
        error_id = uuid.uuid4().hex[:12]
        log.exception("onboarding step %s failed [%s] job=%s", name, error_id, job_id)
        fail_job(step.job, step, f"internal error in step {name} (error id {error_id}): {exc}", {"error_id": error_id})
        return
    else:
        _finish(step, StepStatus.SUCCEEDED, output or "")
    advance(step.job, name)


def claim_step(job_id: str, name: str) -> StepResult | None:
    now = timezone.now()
    claimed = StepResult.objects.filter(
        job_id=job_id, name=name, status=StepStatus.PENDING, job__status__in=[JobStatus.PENDING, JobStatus.RUNNING],
    ).update(status=StepStatus.RUNNING, started=now, finished=None, attempts=F("attempts") + 1)
    if not claimed:
        return None
    OnboardingJob.objects.filter(pk=job_id, status=JobStatus.PENDING).update(status=JobStatus.RUNNING, started=now)
    OnboardingJob.objects.filter(pk=job_id).update(heartbeat=now)
    return StepResult.objects.select_related("job", "job__owner").get(job_id=job_id, name=name)


def _finish(step: StepResult, status: str, output: str) -> None:
    step.status, step.finished = status, timezone.now()
    step.log = (step.log + output)[-100_000:]
    step.save(update_fields=["status", "finished", "log"])


def advance(job: OnboardingJob, name: str) -> None:
    position = STEP_ORDER.index(name)
    if position + 1 < len(STEP_ORDER):
        from acumos_portal import jobs
        from onboarding.tasks import step_task

        OnboardingJob.objects.filter(pk=job.pk).update(heartbeat=timezone.now())
        jobs.send(step_task(STEP_ORDER[position + 1]), str(job.id))
        return
    now = timezone.now()
    OnboardingJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, finished=now, heartbeat=now)
    from onboarding.steps import discard_staging

    discard_staging(job)


def fail_job(job: OnboardingJob, step: StepResult, message: str, details: dict | None = None) -> None:
    now = timezone.now()
    with transaction.atomic():
        StepResult.objects.filter(pk=step.pk).update(status=StepStatus.FAILED, finished=now, error=message,
                                                     details=details or {})
        StepResult.objects.filter(job=job, status=StepStatus.PENDING).update(status=StepStatus.SKIPPED)
        OnboardingJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, finished=now, error=message)
    from onboarding.steps import discard_staging, undo_job

    undo_job(job)
    discard_staging(job)


# ---------------------------------------------------------------- the reaper

def reap_stale_jobs() -> list[str]:
    """Steps left running by a worker that died: re-queue them, or fail the job after the last attempt."""
    cutoff = timezone.now() - timedelta(seconds=settings.ACUMOS_JOB_STALE_SECONDS)
    stale = StepResult.objects.select_related("job").filter(
        status=StepStatus.RUNNING, started__lt=cutoff, job__status=JobStatus.RUNNING, job__heartbeat__lt=cutoff)
    actions = []
    for step in stale:
        actions.append(_reap(step))
    return actions


def _reap(step: StepResult) -> str:
    if step.attempts >= settings.ACUMOS_JOB_MAX_ATTEMPTS:
        fail_job(step.job, step, f"step {step.name} did not finish after {step.attempts} attempts "
                                 "(the worker running it stopped); giving up")
        return f"failed {step.job_id}"
    updated = StepResult.objects.filter(pk=step.pk, status=StepStatus.RUNNING).update(status=StepStatus.PENDING)
    if updated:
        from acumos_portal import jobs
        from onboarding.tasks import step_task

        StepResult.objects.filter(pk=step.pk).update(log=F("log") + "re-queued after its worker stopped\n")
        jobs.send(step_task(step.name), str(step.job_id))
    return f"requeued {step.job_id} {step.name}"
