"""Running one pipeline step: claim it, do it, record it, start the next one or fail the job.

Every step is a StepResult row. A step is claimed with a conditional update, so a duplicate
delivery of the same task does nothing (tasks are idempotent). A permanent failure fails the
job at once and undoes what it made; a transient one is retried with a bound; a worker that
dies mid-step leaves a running row, and a lost task a pending one, that the reaper re-queues or fails.

Fairness: a step that runs the user's model (MODEL_STEPS) is claimed only while its owner has fewer
than ACUMOS_MODEL_STEPS_PER_USER of them running, on any worker or thread. Otherwise the task is put
off: it frees its worker for other users and is sent again after ACUMOS_MODEL_RETRY_SECONDS."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from marketplace.choices import NotificationKind
from marketplace.services import notify
from onboarding.choices import STEPS, JobStatus, StepStatus
from onboarding.models import OnboardingJob, StepResult

log = logging.getLogger(__name__)
STEP_ORDER = [name for name, _ in STEPS]
UNFINISHED = [JobStatus.PENDING, JobStatus.RUNNING]
# Steps that run the user's model (in a runner process): one owner's are limited, and they have
# workers of their own (the tasks' runs_model, acumos_portal.jobs).
MODEL_STEPS = frozenset({"smoke_test"})
WAITING_NOTE = "waiting for the owner's other models to finish (ACUMOS_MODEL_STEPS_PER_USER run at once)\n"


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


class OwnerBusy(Exception):
    """The owner already runs as many models as allowed: the step waits its turn."""


def run_step(job_id: str, name: str) -> None:
    try:
        step = claim_step(job_id, name)
    except OwnerBusy:
        defer_step(job_id, name)
        return
    if step is None:
        return  # already done, being done elsewhere, or the job has failed
    from onboarding.steps import STEP_FUNCTIONS

    try:
        with heartbeat(job_id):
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


def heartbeat(job_id: str):
    from acumos_portal import jobs

    return jobs.keep_alive(OnboardingJob.objects.filter(pk=job_id))


def claim_step(job_id: str, name: str) -> StepResult | None:
    """Mark the step running, or return None if it is not pending; raise OwnerBusy (nothing claimed)
    for a model step whose owner is at the limit."""
    now = timezone.now()
    with transaction.atomic():
        claimed = StepResult.objects.filter(
            job_id=job_id, name=name, status=StepStatus.PENDING, job__status__in=UNFINISHED,
        ).update(status=StepStatus.RUNNING, started=now, finished=None, attempts=F("attempts") + 1)
        if not claimed:
            return None
        if name in MODEL_STEPS:
            _check_owner_limit(job_id)
    OnboardingJob.objects.filter(pk=job_id, status=JobStatus.PENDING).update(status=JobStatus.RUNNING, started=now)
    OnboardingJob.objects.filter(pk=job_id).update(heartbeat=now)
    return StepResult.objects.select_related("job", "job__owner").get(job_id=job_id, name=name)


def _check_owner_limit(job_id: str) -> None:
    """The one fairness rule, the same for threads and Celery workers in any process: an owner's
    running model steps, this one included, may not exceed ACUMOS_MODEL_STEPS_PER_USER.

    Called inside the claim's transaction, after its update. On PostgreSQL the owner's row lock makes
    two claims of one owner take turns, and the second counts the first once it is committed; on
    SQLite the update already holds the database's only write lock (taken by a first statement
    that writes, it is waited for; a read first could fail with "database is locked")."""
    owner_id = OnboardingJob.objects.filter(pk=job_id).values_list("owner_id", flat=True).get()
    list(get_user_model().objects.select_for_update().filter(pk=owner_id).values_list("pk", flat=True))
    running = StepResult.objects.filter(job__owner_id=owner_id, job__status__in=UNFINISHED, name__in=MODEL_STEPS,
                                        status=StepStatus.RUNNING).count()
    if running > max(1, settings.ACUMOS_MODEL_STEPS_PER_USER):
        raise OwnerBusy  # rolls the claim back: still pending, no attempt counted


def defer_step(job_id: str, name: str) -> None:
    """Send the step again after ACUMOS_MODEL_RETRY_SECONDS (a timer, or a Celery countdown: a new
    message, not a retry, so waiting uses none of the task's retries). The heartbeat moves on, so
    the reaper sees a job that waits, not one that stopped."""
    from acumos_portal import jobs
    from onboarding.tasks import step_task

    note = StepResult.objects.filter(job_id=job_id, name=name, status=StepStatus.PENDING)
    note.exclude(log__contains=WAITING_NOTE).update(log=Concat(F("log"), Value(WAITING_NOTE)))
    OnboardingJob.objects.filter(pk=job_id).update(heartbeat=timezone.now())
    jobs.send(step_task(name), str(job_id), countdown=settings.ACUMOS_MODEL_RETRY_SECONDS)


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
    from onboarding.steps import discard_staging, undo_job

    now = timezone.now()
    with transaction.atomic():
        StepResult.objects.filter(pk=step.pk).update(status=StepStatus.FAILED, finished=now, error=message,
                                                     details=details or {})
        StepResult.objects.filter(job=job, status=StepStatus.PENDING).update(status=StepStatus.SKIPPED)
    try:
        # Undo first: whoever sees "failed" must also see that nothing of the job is left.
        undo_job(job)
        discard_staging(job)
    finally:
        OnboardingJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, finished=timezone.now(),
                                                       error=message)
        notify(job.owner, NotificationKind.ONBOARDING_FAILED, f"Onboarding {job.model_name} failed at {step.name}",
               url=f"/onboarding/jobs/{job.pk}/", message=message)


# ---------------------------------------------------------------- the reaper

def reap_stale_jobs() -> list[str]:
    """Jobs that stopped moving: a step left running by a worker that died is re-queued (or the job
    failed after the last attempt); a job whose next task was lost (broker down when it was sent,
    retries used up) is sent on again, so no job stays pending or running for ever."""
    cutoff = timezone.now() - timedelta(seconds=settings.ACUMOS_JOB_STALE_SECONDS)
    stale = StepResult.objects.select_related("job").filter(
        status=StepStatus.RUNNING, started__lt=cutoff, job__status=JobStatus.RUNNING, job__heartbeat__lt=cutoff)
    actions = [_reap(step) for step in stale]
    actions += [_resume(job) for job in _stalled_jobs(cutoff)]
    return [action for action in actions if action]


def _reap(step: StepResult) -> str:
    if step.attempts >= settings.ACUMOS_JOB_MAX_ATTEMPTS:
        # Conditional, like a claim: the step may have finished since it was read.
        if not StepResult.objects.filter(pk=step.pk, status=StepStatus.RUNNING).exists():
            return ""
        fail_job(step.job, step, f"step {step.name} did not finish after {step.attempts} attempts "
                                 "(the worker running it stopped); giving up")
        return f"failed {step.job_id}"
    updated = StepResult.objects.filter(pk=step.pk, status=StepStatus.RUNNING).update(status=StepStatus.PENDING)
    if updated:
        # Concat, not F() + str: `+` is numeric addition in SQL (an error on PostgreSQL, "0" on SQLite).
        note = Value("re-queued after its worker stopped\n")
        StepResult.objects.filter(pk=step.pk).update(log=Concat(F("log"), note))
        _send(step.job_id, step.name)
    return f"requeued {step.job_id} {step.name}"


def _stalled_jobs(cutoff):
    """Unfinished jobs with no step running and no sign of life since the cutoff."""
    quiet = Q(heartbeat__lt=cutoff) | Q(heartbeat__isnull=True, created__lt=cutoff)
    return (OnboardingJob.objects.filter(quiet, status__in=[JobStatus.PENDING, JobStatus.RUNNING])
            .exclude(steps__status=StepStatus.RUNNING))


def _resume(job: OnboardingJob) -> str:
    pending = job.steps.filter(status=StepStatus.PENDING).order_by("position").first()
    if pending is None:  # the last step finished but the worker stopped before marking the job
        advance(job, STEP_ORDER[-1])
        return f"finished {job.id}"
    if pending.attempts >= settings.ACUMOS_JOB_MAX_ATTEMPTS:  # claimed that often, never finished
        fail_job(job, pending, f"step {pending.name} did not finish after {pending.attempts} attempts; giving up")
        return f"failed {job.id}"
    _send(job.id, pending.name)
    return f"resent {job.id} {pending.name}"


def _send(job_id, name: str) -> None:
    """Send a step again. The heartbeat moves on, so the reaper waits a full period before the next try."""
    from acumos_portal import jobs
    from onboarding.tasks import step_task

    OnboardingJob.objects.filter(pk=job_id).update(heartbeat=timezone.now())
    jobs.send(step_task(name), str(job_id))
