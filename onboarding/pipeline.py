"""Running one pipeline step: claim it, do it, record it, start the next one or fail the job.

Every step is a StepResult row. A step is claimed with a conditional update, so a duplicate
delivery of the same task does nothing (tasks are idempotent). A permanent failure fails the
job at once and undoes what it made; a transient one (a busy database among them) is retried with
a bound; a worker that dies mid-step leaves a running row, and a lost task a pending one, that the
reaper re-queues or fails: at once when the step's process is known to be gone (it ran on this host),
else once the job's heartbeat is ACUMOS_JOB_STALE_SECONDS old. On the embedded default the web
server, when it starts, takes up every job a stopped one left (resume_interrupted_jobs).

Fairness: a step that runs the user's model (MODEL_STEPS) is claimed only while its owner has fewer
than ACUMOS_MODEL_STEPS_PER_USER of them running, on any worker or thread. Otherwise the task is put
off: it frees its worker for other users and is sent again after ACUMOS_MODEL_RETRY_SECONDS."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import OperationalError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from acumos_portal import capacity, jobs
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
PUT_BACK_TRIES = 3  # each waits up to the busy timeout (ACUMOS_SQLITE_BUSY_SECONDS)
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


def run_step(job_id: str, name: str, *, retried: bool = False) -> None:
    """Claim, do and record one step. A busy database ("database is locked": SQLite's one write lock
    held past the busy timeout), wherever it is met, is transient like a storage hiccup: the claim is
    undone and the task retried (with its bound), never a failed job. `retried`: this is a retry of
    the task (not a first delivery, nor a duplicate one)."""
    try:
        _run_step(job_id, name, retried)
    except OperationalError as exc:
        if not capacity.is_database_busy(exc):
            raise
        log.warning("onboarding step %s of job %s met a busy database; retrying: %s", name, job_id, exc)
        _put_back(job_id, name)
        raise TransientError(f"the database was busy: {exc}") from exc


def _put_back(job_id: str, name: str) -> None:
    """Undo this process's claim of a step, for the retry. A claim left standing would hold the step
    until the job's heartbeat is stale, so this waits for the database a few times over; if it still
    cannot write, the reaper takes the step up then."""
    mine = StepResult.objects.filter(job_id=job_id, name=name, status=StepStatus.RUNNING,
                                     claimed_by=jobs.this_process())
    for _ in range(PUT_BACK_TRIES):
        try:
            if mine.exists():  # a read: it does not wait for the write lock
                mine.update(status=StepStatus.PENDING)
            return
        except OperationalError as exc:
            if not capacity.is_database_busy(exc):
                raise
    log.warning("could not put step %s of job %s back; the reaper will", name, job_id)


def _run_step(job_id: str, name: str, retried: bool) -> None:
    try:
        step = claim_step(job_id, name)
    except OwnerBusy:
        defer_step(job_id, name)
        return
    if step is None:  # already done, being done elsewhere, or the job has failed
        if retried:  # a duplicate delivery does nothing: the first one moved the job on
            _move_on_if_left(job_id, name)
        return
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
        if capacity.is_database_busy(exc):
            raise  # transient: run_step retries it
        error_id = uuid.uuid4().hex[:12]
        log.exception("onboarding step %s failed [%s] job=%s", name, error_id, job_id)
        fail_job(step.job, step, f"internal error in step {name} (error id {error_id}): {exc}", {"error_id": error_id})
        return
    else:
        _finish(step, StepStatus.SUCCEEDED, output or "")
    advance(step.job, name)


def _move_on_if_left(job_id: str, name: str) -> None:
    """A step that is done while its job did not move on (the database was busy between recording
    the step and sending the next): move the job on now, at the task's retry. Only a retry does
    this: a duplicate delivery would start a second chain of messages (harmless, one claim holds,
    but every later step twice on the queue). A worker that stopped there is the reaper's."""
    done = (StepResult.objects.select_related("job")
            .filter(job_id=job_id, name=name, status__in=[StepStatus.SUCCEEDED, StepStatus.SKIPPED],
                    job__status__in=UNFINISHED).first())
    if done is None:
        return
    position = STEP_ORDER.index(name)
    if position + 1 < len(STEP_ORDER):
        following = StepResult.objects.filter(job_id=job_id, name=STEP_ORDER[position + 1]).first()
        if following is None or following.status != StepStatus.PENDING or following.attempts:
            return  # it has moved on
    advance(done.job, name)


def heartbeat(job_id: str):
    return jobs.keep_alive(OnboardingJob.objects.filter(pk=job_id))


def claim_step(job_id: str, name: str) -> StepResult | None:
    """Mark the step running, or return None if it is not pending; raise OwnerBusy (nothing claimed)
    for a model step whose owner is at the limit."""
    now = timezone.now()
    with transaction.atomic():
        claimed = StepResult.objects.filter(
            job_id=job_id, name=name, status=StepStatus.PENDING, job__status__in=UNFINISHED,
        ).update(status=StepStatus.RUNNING, started=now, finished=None, attempts=F("attempts") + 1,
                 claimed_by=jobs.this_process())
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
    retries used up) is sent on again, so no job stays pending or running for ever. Staged files no
    job holds any more are removed."""
    from onboarding.services import sweep_staging

    cutoff = timezone.now() - timedelta(seconds=settings.ACUMOS_JOB_STALE_SECONDS)
    stale = StepResult.objects.select_related("job").filter(
        status=StepStatus.RUNNING, started__lt=cutoff, job__status=JobStatus.RUNNING, job__heartbeat__lt=cutoff)
    steps = {step.pk: step for step in [*stale, *_orphaned_steps()]}
    actions = [_reap(step) for step in steps.values()]
    actions += [_resume(job) for job in _stalled_jobs(cutoff)]
    actions += sweep_staging()
    return [action for action in actions if action]


def resume_interrupted_jobs() -> list[str]:
    """Run by the process that runs the jobs when it starts (the embedded default's web server,
    acumos_portal.wsgi): every job a stopped process left is taken up now, not when it turns stale.
    A step whose process is gone is re-queued (its job failed after the last attempt); every
    unfinished job with no step running is sent on. A job that is in fact queued in a live process
    is sent twice, which is harmless: the second delivery finds its step claimed and does nothing."""
    actions = [_reap(step, send=False) for step in _orphaned_steps()]
    actions += [_resume(job) for job in _stalled_jobs(timezone.now())]
    for action in filter(None, actions):
        log.info("interrupted onboarding job taken up: %s", action)
    return [action for action in actions if action]


def _orphaned_steps() -> list[StepResult]:
    """Running steps whose process is known to be gone: it ran on this host and has ended."""
    running = StepResult.objects.select_related("job").filter(status=StepStatus.RUNNING,
                                                               job__status__in=UNFINISHED)
    return [step for step in running if jobs.process_gone(step.claimed_by)]


def _reap(step: StepResult, send: bool = True) -> str:
    if step.attempts >= settings.ACUMOS_JOB_MAX_ATTEMPTS:
        # Conditional, like a claim: the step may have finished since it was read.
        if not StepResult.objects.filter(pk=step.pk, status=StepStatus.RUNNING).exists():
            return ""
        fail_job(step.job, step, f"step {step.name} did not finish after {step.attempts} attempts "
                                 "(the worker running it stopped); giving up")
        return f"failed {step.job_id}"
    updated = StepResult.objects.filter(pk=step.pk, status=StepStatus.RUNNING,
                                        claimed_by=step.claimed_by).update(status=StepStatus.PENDING)
    if updated:
        # Concat, not F() + str: `+` is numeric addition in SQL (an error on PostgreSQL, "0" on SQLite).
        note = Value(f"re-queued after its worker stopped (attempt {step.attempts} of "
                     f"{settings.ACUMOS_JOB_MAX_ATTEMPTS})\n")
        StepResult.objects.filter(pk=step.pk).update(log=Concat(F("log"), note))
        if send:
            _send(step.job_id, step.name)
    return f"requeued {step.job_id} {step.name}"


def _stalled_jobs(cutoff):
    """Unfinished jobs with no step running and no sign of life since the cutoff."""
    quiet = Q(heartbeat__lt=cutoff) | Q(heartbeat__isnull=True, created__lt=cutoff)
    return (OnboardingJob.objects.filter(quiet, status__in=[JobStatus.PENDING, JobStatus.RUNNING])
            .exclude(steps__status=StepStatus.RUNNING))


def _resume(job: OnboardingJob) -> str:
    failed = job.steps.filter(status=StepStatus.FAILED).first()
    if failed is not None:  # the worker stopped (or lost the database) while failing the job
        fail_job(job, failed, failed.error or f"step {failed.name} failed", failed.details)
        return f"failed {job.id}"
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
    from onboarding.tasks import step_task

    OnboardingJob.objects.filter(pk=job_id).update(heartbeat=timezone.now())
    jobs.send(step_task(name), str(job_id))
