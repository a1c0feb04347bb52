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
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import OperationalError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from acumos_portal import capacity, jobs
from acumos_portal.choices import UNFINISHED
from marketplace import services as marketplace_services
from marketplace import storage
from marketplace.choices import NotificationKind
from marketplace.models import Blob
from onboarding import bundle
from onboarding.choices import MODEL_STEPS, STEPS, JobStatus, StepStatus, step_task_name
from onboarding.models import OnboardingJob, StepResult
from onboarding.steps import STEP_FUNCTIONS, StepFailed, StepSkipped

log = logging.getLogger(__name__)
STEP_ORDER = [name for name, _ in STEPS]
PUT_BACK_TRIES = 3  # each waits up to the busy timeout (ACUMOS_SQLITE_BUSY_SECONDS)
WAITING_NOTE = "waiting for the owner's other models to finish (ACUMOS_MODEL_STEPS_PER_USER run at once)\n"


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
        raise jobs.Transient(f"the database was busy: {exc}") from exc


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
    # The job's heartbeat shows it alive; the claim, the retry of a transient error and the error-id
    # catch-all are every job's (acumos_portal.jobs).
    done = jobs.run_claimed(step, _do_step, fail=_failed_by_bug, alive=OnboardingJob.objects.filter(pk=job_id),
                            what=f"onboarding step {name} of job {job_id}", where=f" in step {name}")
    if done:
        advance(step.job, name)


def _do_step(step: StepResult) -> bool:
    """Do the step and record how it ended; True if the job moves on."""
    try:
        output = STEP_FUNCTIONS[step.name](step.job, step)
    except StepSkipped as skipped:
        _finish(step, StepStatus.SKIPPED, str(skipped))
    except StepFailed as failure:
        fail_job(step.job, step, failure.message, failure.details)
        return False
    else:
        _finish(step, StepStatus.SUCCEEDED, output or "")
    return True


def _failed_by_bug(step: StepResult, message: str) -> None:
    fail_job(step.job, step, message)


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


def claim_step(job_id: str, name: str) -> StepResult | None:
    """Mark the step running, or return None if it is not pending; raise OwnerBusy (nothing claimed)
    for a model step whose owner is at the limit."""
    now = timezone.now()
    with transaction.atomic():
        if not jobs.claim(StepResult.objects.filter(job_id=job_id, name=name, job__status__in=UNFINISHED)):
            return None
        if name in MODEL_STEPS:
            _check_owner_limit(job_id)
            # Its turn came now, after the owner's other model finished: the claim's own time was
            # taken before the count, and may be a moment earlier than that one's end.
            StepResult.objects.filter(job_id=job_id, name=name).update(started=timezone.now())
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
    note = StepResult.objects.filter(job_id=job_id, name=name, status=StepStatus.PENDING)
    note.exclude(log__contains=WAITING_NOTE).update(log=Concat(F("log"), Value(WAITING_NOTE)))
    OnboardingJob.objects.filter(pk=job_id).update(heartbeat=timezone.now())
    jobs.send(_task(name), str(job_id), countdown=settings.ACUMOS_MODEL_RETRY_SECONDS)


def _finish(step: StepResult, status: str, output: str) -> None:
    step.status, step.finished = status, timezone.now()
    step.log = (step.log + output)[-100_000:]
    step.save(update_fields=["status", "finished", "log"])


def advance(job: OnboardingJob, name: str) -> None:
    position = STEP_ORDER.index(name)
    if position + 1 < len(STEP_ORDER):
        OnboardingJob.objects.filter(pk=job.pk).update(heartbeat=timezone.now())
        jobs.send(_task(STEP_ORDER[position + 1]), str(job.id))
        return
    now = timezone.now()
    OnboardingJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, finished=now, heartbeat=now)
    discard_staging(job)


def fail_job(job: OnboardingJob, step: StepResult, message: str, details: dict | None = None) -> None:
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
        marketplace_services.notify(job.owner, NotificationKind.ONBOARDING_FAILED,
                                    f"Onboarding {job.model_name} failed at {step.name}",
                                    url=f"/onboarding/jobs/{job.pk}/", message=message)


# ---------------------------------------------------------------- the reaper

def reap_stale_jobs() -> list[str]:
    """Jobs that stopped moving: a step left running by a worker that died is re-queued (or the job
    failed after the last attempt); a job whose next task was lost (broker down when it was sent,
    retries used up) is sent on again, so no job stays pending or running for ever. Staged files no
    job holds any more are removed."""
    cutoff = timezone.now() - timedelta(seconds=settings.ACUMOS_JOB_STALE_SECONDS)
    stale = StepResult.objects.select_related("job").filter(
        status=StepStatus.RUNNING, started__lt=cutoff, job__status=JobStatus.RUNNING, job__heartbeat__lt=cutoff)
    steps = {step.pk: step for step in [*stale, *_orphaned_steps()]}
    actions = [_reap(step) for step in steps.values()]
    actions += [_resume(job) for job in _stalled_jobs(cutoff)]
    actions += bundle.sweep_staging()
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
    return (OnboardingJob.objects.filter(quiet, status__in=UNFINISHED)
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
    OnboardingJob.objects.filter(pk=job_id).update(heartbeat=timezone.now())
    jobs.send(_task(name), str(job_id))


def _task(name: str):
    return jobs.task_named(step_task_name(name))


def _reap_kind(send: bool) -> list[str]:
    """The reaper's policy for onboarding jobs (acumos_portal.jobs.reap_all): step by step. Where the
    reaper may not send (a command on the embedded default), only the staging is swept."""
    return reap_stale_jobs() if send else bundle.sweep_staging()


JOBS = jobs.JobKind("onboarding job", OnboardingJob, step_task_name(STEP_ORDER[0]), fail=None,
                    reaper=_reap_kind, resumer=resume_interrupted_jobs)


# ---------------------------------------------------------------- cleaning up

def undo_job(job) -> None:
    """Remove what a failed job made: its revision, a solution it created, blobs nothing else uses."""
    marketplace_services.revision_discard(job.revision_uuid,
                                          solution_id=job.solution_uuid if job.created_solution else None)
    # The blobs it stored, and those it found stored (the job that stored them may have failed
    # since, leaving them to this one), but not those another unfinished job holds without an
    # artifact yet: deleting those would break that job at create_revision.
    candidates = set(job.created_blobs) | set(_stored_blobs(job))
    for blob in Blob.objects.filter(pk__in=candidates - _blobs_held_by_unfinished_jobs(job)):
        storage.delete_blob_if_orphan(blob)


def _stored_blobs(job) -> list[int]:
    step = job.steps.filter(name="store_artifacts").first()
    return list((step.details or {}).get("blobs", {}).values()) if step else []


def _blobs_held_by_unfinished_jobs(job) -> set[int]:
    steps = StepResult.objects.filter(name="store_artifacts", job__status__in=UNFINISHED)
    return {pk for step in steps.exclude(job=job) for pk in (step.details or {}).get("blobs", {}).values()}


def discard_staging(job) -> None:
    bundle.discard_staged(job.id, job.parts.values())
