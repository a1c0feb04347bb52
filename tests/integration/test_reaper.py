"""A worker killed mid-step: the reaper re-queues the step for another worker, or fails the job
after ACUMOS_JOB_MAX_ATTEMPTS, and a job whose task was lost is sent on again; no job stays running.

The first tests kill a real `celery worker` (SIGKILL, as the OOM killer would) while the smoke test
is calling a model that blocks until the test releases it; the others drive the reaper
directly on jobs left in the states a lost task or a dead worker leaves behind."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from acumos_portal import sandbox
from acumos_portal.celery import app as celery_app
from marketplace.choices import RevisionStatus
from marketplace.models import Blob, Revision, Solution
from onboarding import pipeline
from onboarding.choices import STEPS, JobStatus, StepStatus
from onboarding.models import OnboardingJob, StepResult
from onboarding.services import onboarding_start
from runner_image.pack import pack_bundle

from ..bundles import parts_of
from .conftest import children_of, free_port, pid_alive, reset_celery_connections, wait_for
from .test_celery_worker import steps_report, stored_files, wait_for_job

STALE_SECONDS = 1
LAST_STEP = STEPS[-1][0]


def blocking_model():
    """y = x, after touching `entered` in its own directory and waiting (at most 60 s) until the
    test puts `release` beside it. The sandbox shows a model nothing of the host, so the test
    reaches it through the model's own directory (a smoke-test workspace's work/, /sandbox inside).
    A nested function, so cloudpickle stores it by value and the sandboxed runner can load it."""

    def scale(x: float):
        import pathlib
        import time

        own = pathlib.Path("/sandbox")
        (own / "entered").touch()
        deadline = time.monotonic() + 60
        while not (own / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return {"tag": "blocking", "y": x}

    return scale


@pytest.fixture
def blocking_bundle(tmp_path):
    bundle = pack_bundle(model=blocking_model(), flavour="python", name="Blocking", method="scale",
                         inputs="x:double", outputs="tag:string,y:double", out=tmp_path / "blocking",
                         sample={"x": 2.0}, check=False)
    return parts_of(bundle)


def model_entered(seen: set[Path]) -> Path | None:
    """The `entered` file of a smoke test that is calling the blocking model, not one seen before."""
    found = set(sandbox.workspaces_dir().glob("*/work/entered")) - seen
    return next(iter(found), None)


@pytest.fixture
def reaper_settings(settings):
    settings.ACUMOS_JOB_STALE_SECONDS = STALE_SECONDS
    return settings


@pytest.fixture
def runner_pids():
    """Runner processes seen under a worker; any still alive at teardown are killed (with their group)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)


def kill_during_smoke_test(worker, job, runner_pids: list[int], seen: set[Path]) -> StepResult:
    """Wait until the model is inside its sample call, then SIGKILL the worker."""
    entered = wait_for(lambda: model_entered(seen), 90, "the smoke test to call the model",
                       diagnose=lambda: f"{steps_report(job)}\n{worker.tail()}")
    seen.add(entered)
    step = StepResult.objects.get(job=job, name="smoke_test")
    assert step.status == StepStatus.RUNNING
    runners = children_of(worker.pid)
    assert runners, "the smoke test's sandbox was not found under the worker"
    runner_pids.extend(runners)
    worker.kill()
    # The sandbox dies with the worker that started it instead of running for ever.
    wait_for(lambda: not any(pid_alive(pid) for pid in runners), 10, "the sandbox to die with its worker")
    return step


def reap_until_acted() -> list[str]:
    """Run the reaper until the job's heartbeat is older than ACUMOS_JOB_STALE_SECONDS."""
    return wait_for(pipeline.reap_stale_jobs, STALE_SECONDS + 10, "the reaper to act", interval=0.25)


@pytest.mark.django_db(transaction=True)
def test_it_requeues_the_step_of_a_killed_worker_and_a_new_worker_finishes_the_job(
        owner, blocking_bundle, start_worker, reaper_settings, runner_pids):
    parts, seen = blocking_bundle, set()
    worker = start_worker(ACUMOS_JOB_STALE_SECONDS=str(STALE_SECONDS))
    job = onboarding_start(user=owner, parts=parts)
    kill_during_smoke_test(worker, job, runner_pids, seen)

    step = StepResult.objects.get(job=job, name="smoke_test")
    job.refresh_from_db()
    assert (job.status, step.status, step.attempts) == (JobStatus.RUNNING, StepStatus.RUNNING, 1)
    assert reap_until_acted() == [f"requeued {job.id} smoke_test"]
    step.refresh_from_db()
    assert step.status == StepStatus.PENDING and "re-queued after its worker stopped" in step.log

    second = start_worker(ACUMOS_JOB_STALE_SECONDS=str(STALE_SECONDS))
    entered = wait_for(lambda: model_entered(seen), 90, "the second smoke test to call the model")
    (entered.parent / "release").touch()  # this time the model answers
    wait_for_job(job, second)
    assert job.status == JobStatus.SUCCEEDED, f"{job.error}\n{steps_report(job)}"
    step.refresh_from_db()
    assert (step.status, step.attempts) == (StepStatus.SUCCEEDED, 2)
    assert Revision.objects.get(pk=job.revision_uuid).status == RevisionStatus.READY
    assert pipeline.reap_stale_jobs() == []


@pytest.fixture
def two_attempts(reaper_settings):
    reaper_settings.ACUMOS_JOB_MAX_ATTEMPTS = 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("two_attempts")
def test_it_fails_the_job_after_the_last_attempt_and_leaves_nothing_behind(
        owner, blocking_bundle, start_worker, runner_pids, artifact_storage):
    parts, seen = blocking_bundle, set()  # the model blocks on every attempt
    env = {"ACUMOS_JOB_STALE_SECONDS": str(STALE_SECONDS), "ACUMOS_JOB_MAX_ATTEMPTS": "2"}
    job = onboarding_start(user=owner, parts=parts)

    kill_during_smoke_test(start_worker(**env), job, runner_pids, seen)
    assert reap_until_acted() == [f"requeued {job.id} smoke_test"]
    kill_during_smoke_test(start_worker(**env), job, runner_pids, seen)
    assert reap_until_acted() == [f"failed {job.id}"]

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.finished is not None
    assert job.error == "step smoke_test did not finish after 2 attempts (the worker running it stopped); giving up"
    smoke = job.steps.get(name="smoke_test")
    assert (smoke.status, smoke.attempts, smoke.error) == (StepStatus.FAILED, 2, job.error)
    assert set(job.steps.filter(position__gt=smoke.position).values_list("status", flat=True)) == {
        StepStatus.SKIPPED}
    assert not job.steps.filter(status__in=[StepStatus.RUNNING, StepStatus.PENDING]).exists()
    assert not Revision.objects.exists() and not Solution.objects.exists() and not Blob.objects.exists()
    assert stored_files(artifact_storage) == []
    assert pipeline.reap_stale_jobs() == []  # a failed job is left alone


# ---------------------------------------------------------------- the reaper on its own (jobs inline)

@pytest.fixture
def lost_tasks(monkeypatch, django_capture_on_commit_callbacks):
    """`with lost_tasks(): <upload>`: every task sent is dropped, as if the broker had lost it."""
    from acumos_portal import jobs

    sent: list[str] = []
    monkeypatch.setattr(jobs, "send", lambda task, *args: sent.append(task.name))
    return lambda: django_capture_on_commit_callbacks(execute=True), sent


def age(job, seconds: float = STALE_SECONDS + 60) -> None:
    """Make a job look quiet for `seconds` (instead of sleeping through ACUMOS_JOB_STALE_SECONDS)."""
    past = timezone.now() - timedelta(seconds=seconds)
    OnboardingJob.objects.filter(pk=job.pk).update(created=past)
    OnboardingJob.objects.filter(pk=job.pk, heartbeat__isnull=False).update(heartbeat=past)
    StepResult.objects.filter(job=job, started__isnull=False).update(started=past)


@pytest.mark.django_db
def test_it_sends_again_a_first_step_whose_task_was_lost(owner, bundle_parts, lost_tasks,
                                                         reaper_settings, monkeypatch):
    upload, sent = lost_tasks
    with upload():
        job = onboarding_start(user=owner, parts=bundle_parts)
    assert sent == ["onboarding.validate_metadata"]
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and job.heartbeat is None
    assert pipeline.reap_stale_jobs() == []  # too young to be called lost

    age(job)
    from acumos_portal import jobs

    monkeypatch.setattr(jobs, "send", lambda task, *args: task.apply(args=args, throw=True))  # a working broker
    assert pipeline.reap_stale_jobs() == [f"resent {job.id} validate_metadata"]
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, f"{job.error}\n{steps_report(job)}"


@pytest.mark.django_db
def test_it_sends_again_a_middle_step_whose_task_was_lost(owner, bundle_parts, reaper_settings, monkeypatch,
                                                          django_capture_on_commit_callbacks):
    from acumos_portal import jobs

    # The broker drops the task that should start create_revision (e.g. Redis restarting).
    def send(task, *args):
        if task.name != "onboarding.create_revision":
            task.apply(args=args, throw=True)

    monkeypatch.setattr(jobs, "send", send)
    with django_capture_on_commit_callbacks(execute=True):
        job = onboarding_start(user=owner, parts=bundle_parts)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert job.steps.get(name="store_artifacts").status == StepStatus.SUCCEEDED
    assert job.steps.get(name="create_revision").status == StepStatus.PENDING

    age(job)
    monkeypatch.setattr(jobs, "send", lambda task, *args: task.apply(args=args, throw=True))
    assert pipeline.reap_stale_jobs() == [f"resent {job.id} create_revision"]
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, f"{job.error}\n{steps_report(job)}"


@pytest.mark.django_db
def test_it_fails_a_job_whose_pending_step_was_claimed_too_often(owner, bundle_parts, lost_tasks, reaper_settings,
                                                                 artifact_storage):
    upload, _sent = lost_tasks
    with upload():
        job = onboarding_start(user=owner, parts=bundle_parts)
    # Claimed and put back three times (a transient error each time), then the retries ran out.
    StepResult.objects.filter(job=job, name="validate_metadata").update(attempts=3)
    age(job)
    assert pipeline.reap_stale_jobs() == [f"failed {job.id}"]
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "step validate_metadata did not finish after 3 attempts; giving up"
    assert stored_files(artifact_storage) == []  # the staged upload is gone too


@pytest.mark.django_db
def test_it_marks_a_job_succeeded_when_its_worker_stopped_after_the_last_step(owner, bundle_parts, inline_jobs,
                                                                             reaper_settings, artifact_storage):
    with inline_jobs():
        job = onboarding_start(user=owner, parts=bundle_parts)
    # As if the worker had died between finishing mark_ready and marking the job.
    OnboardingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, finished=None)
    job.refresh_from_db()
    age(job)
    assert pipeline.reap_stale_jobs() == [f"finished {job.id}"]
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.finished is not None
    assert job.steps.get(name=LAST_STEP).attempts == 1  # nothing ran again


@pytest.fixture
def dead_broker(settings):
    """CELERY_BROKER_URL names a Redis nobody listens on (the broker is down)."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    previous = celery_app.conf.broker_url
    settings.CELERY_BROKER_URL = url
    celery_app.conf.broker_url = url
    reset_celery_connections()
    yield url
    reset_celery_connections()
    celery_app.conf.broker_url = previous


@pytest.mark.django_db
@pytest.mark.usefixtures("dead_broker", "reaper_settings")
def test_it_keeps_an_upload_made_while_the_broker_is_down_and_the_reaper_sends_it_later(
        owner, bundle_parts, django_capture_on_commit_callbacks, monkeypatch, caplog):
    with django_capture_on_commit_callbacks(execute=True):
        job = onboarding_start(user=owner, parts=bundle_parts)  # no error for the caller: the rows are committed
    assert "the reaper will send it again" in caplog.text
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    from django.core.files.storage import default_storage

    assert all(default_storage.exists(key) for key in job.parts.values())  # the staged upload is kept

    age(job)
    from acumos_portal import jobs

    monkeypatch.setattr(jobs, "send", lambda task, *args: task.apply(args=args, throw=True))  # the broker is back
    assert pipeline.reap_stale_jobs() == [f"resent {job.id} validate_metadata"]
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, f"{job.error}\n{steps_report(job)}"
