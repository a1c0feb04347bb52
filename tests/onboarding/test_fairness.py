"""Fair scheduling of onboarding: one user's slow models do not hold another user's upload.

The uploads go through the API and the pipeline runs on the portal's own threads, as with `make run`
(no broker). The smoke test is replaced by one that sleeps for a "slow" model, so no model code runs
and the timings are the pipeline's own. The same rule on Celery workers: tests/integration/test_fairness.py."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from acumos_portal import jobs
from onboarding import pipeline, steps
from onboarding.choices import JobStatus, StepStatus
from onboarding.models import OnboardingJob, StepResult
from onboarding.services import onboarding_start

from ..concurrency import at_once
from ..factories import UserFactory
from .test_api import JOBS, uploads

pytestmark = pytest.mark.django_db(transaction=True)
SLOW_SECONDS = 3.0  # a "slow" model's smoke test (the were 50 s)
TIMEOUT = 30


@pytest.fixture
def threads(settings):
    """The embedded default: jobs on this process's threads; waiting steps are tried every 0.1 s.
    Every job thread has ended before the test database goes."""
    settings.CELERY_BROKER_URL = ""
    settings.ACUMOS_MODEL_RETRY_SECONDS = 0.1
    settings.ACUMOS_MODEL_THREADS = 2
    yield
    jobs.shutdown()


@pytest.fixture
def slow_smoke_tests(monkeypatch):
    """Models named Slow* take SLOW_SECONDS in their smoke test; the others answer at once."""

    def smoke_test(job, step) -> str:
        time.sleep(SLOW_SECONDS if job.model_name.startswith("Slow") else 0.05)
        return "smoke test stood in for by the test\n"

    monkeypatch.setitem(steps.STEP_FUNCTIONS, "smoke_test", smoke_test)


@pytest.fixture
def renamed(bundle_parts, tmp_path):
    """The example bundle's parts under another model name (one user may not upload a name twice)."""

    def rename(name: str) -> dict:
        metadata = json.loads(bundle_parts["metadata"].read_text())
        metadata["name"] = name
        path = tmp_path / name / "metadata.json"
        path.parent.mkdir()
        path.write_text(json.dumps(metadata))
        return {**bundle_parts, "metadata": path}

    return rename


def upload(client, parts) -> OnboardingJob:
    response = client.post(JOBS, uploads(parts))
    assert response.status_code == 201, response.content
    return OnboardingJob.objects.get(pk=response.json()["id"])


def wait_until(predicate, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    report = "\n".join(f"{s.job.model_name} {s.name}: {s.status} x{s.attempts}"
                       for s in StepResult.objects.select_related("job").exclude(status=StepStatus.PENDING))
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{report}")


def smoke_step(job) -> StepResult:
    return StepResult.objects.get(job=job, name="smoke_test")


def finished(*jobs_) -> bool:
    return all(OnboardingJob.objects.get(pk=job.pk).done for job in jobs_)


@pytest.mark.usefixtures("threads", "slow_smoke_tests")
def test_it_does_not_hold_another_users_upload_behind_one_users_slow_models(client_for, renamed, bundle_parts):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    first, second = upload(client_for(alice), renamed("Slow1")), upload(client_for(alice), renamed("Slow2"))
    # Both of alice's jobs have reached the smoke test: one runs it, the other waits for it.
    wait_until(lambda: smoke_step(first).status == StepStatus.RUNNING or smoke_step(second).status
               == StepStatus.RUNNING, "alice's first smoke test to start")
    wait_until(lambda: any(pipeline.WAITING_NOTE in smoke_step(job).log for job in (first, second)),
               "alice's other smoke test to wait")

    uploaded = timezone.now()
    mine = upload(client_for(bob), bundle_parts)
    wait_until(lambda: finished(mine), "bob's job to finish")
    mine.refresh_from_db()
    assert mine.status == JobStatus.SUCCEEDED, mine.error
    bobs_wait = (mine.finished - uploaded).total_seconds()
    assert bobs_wait < 2, f"bob waited {bobs_wait:.1f}s"

    wait_until(lambda: finished(first, second), "alice's jobs to finish")
    ran = sorted((smoke_step(first), smoke_step(second)), key=lambda step: step.started)
    assert mine.finished < ran[0].finished  # bob was ready before alice's first slow model was
    assert ran[1].started >= ran[0].finished  # alice's models ran one after the other
    assert pipeline.WAITING_NOTE in ran[1].log and pipeline.WAITING_NOTE not in ran[0].log
    # Waiting counted no attempt, and no step of any job ran twice.
    assert set(StepResult.objects.values_list("attempts", flat=True)) == {1}
    assert set(OnboardingJob.objects.values_list("status", flat=True)) == {JobStatus.SUCCEEDED}


@pytest.mark.usefixtures("threads", "slow_smoke_tests")
def test_it_runs_quick_steps_while_every_model_thread_is_busy(client_for, renamed, bundle_parts):
    """Model steps have threads of their own: with both taken by slow models (two users), a third
    user's quick steps still run at once, and only his smoke test waits for a free thread."""
    alice, carol, bob = UserFactory(username="alice"), UserFactory(username="carol"), UserFactory(username="bob")
    slow = [upload(client_for(alice), renamed("Slow1")), upload(client_for(carol), renamed("Slow2"))]
    wait_until(lambda: all(smoke_step(job).status == StepStatus.RUNNING for job in slow), "both slow models to run")

    uploaded = timezone.now()
    mine = upload(client_for(bob), bundle_parts)
    descriptors = wait_until(lambda: StepResult.objects.filter(job=mine, name="generate_descriptors",
                                                               status=StepStatus.SUCCEEDED).first(),
                             "bob's quick steps to run")
    assert (descriptors.finished - uploaded).total_seconds() < 1.5
    assert all(smoke_step(job).status == StepStatus.RUNNING for job in slow)  # still running

    wait_until(lambda: finished(mine, *slow), "every job to finish")
    assert smoke_step(mine).started >= min(smoke_step(job).finished for job in slow)
    assert set(OnboardingJob.objects.values_list("status", flat=True)) == {JobStatus.SUCCEEDED}


# ---------------------------------------------------------------- the rule itself

@pytest.fixture
def at_smoke_test(bundle_parts, renamed, monkeypatch, settings):
    """`at_smoke_test(user, name)`: a job whose steps before the smoke test are done (no thread runs them)."""
    monkeypatch.setattr(jobs, "send", lambda task, *args, **options: None)
    settings.ACUMOS_QUOTA_ONBOARDING_JOBS = 3  # one owner's three jobs at once (a quota may allow fewer)

    def make(user, name: str) -> OnboardingJob:
        job = onboarding_start(user=user, parts=renamed(name))
        job.steps.filter(position__lt=smoke_step(job).position).update(status=StepStatus.SUCCEEDED)
        OnboardingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
        return job

    return make


def test_it_lets_an_owner_run_as_many_models_at_once_as_the_setting_says(at_smoke_test, settings):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    first, second, third = (at_smoke_test(alice, f"Model{n}") for n in range(3))
    assert pipeline.claim_step(str(first.id), "smoke_test") is not None
    with pytest.raises(pipeline.OwnerBusy):
        pipeline.claim_step(str(second.id), "smoke_test")
    waiting = smoke_step(second)
    assert (waiting.status, waiting.attempts, waiting.started) == (StepStatus.PENDING, 0, None)  # rolled back
    assert pipeline.claim_step(str(at_smoke_test(bob, "Other").id), "smoke_test") is not None  # another owner

    settings.ACUMOS_MODEL_STEPS_PER_USER = 2
    assert pipeline.claim_step(str(second.id), "smoke_test") is not None
    with pytest.raises(pipeline.OwnerBusy):
        pipeline.claim_step(str(third.id), "smoke_test")
    # A finished (or failed) job's model step no longer counts.
    StepResult.objects.filter(job=first, name="smoke_test").update(status=StepStatus.SUCCEEDED)
    assert pipeline.claim_step(str(third.id), "smoke_test") is not None


def test_it_lets_one_of_two_simultaneous_claims_of_one_owner_through(at_smoke_test):
    """Two workers claim alice's two smoke tests at the same instant, each in its own transaction:
    the owner's row lock makes them take turns, so exactly one runs."""
    alice = UserFactory(username="alice")
    job_ids = [str(at_smoke_test(alice, f"Model{n}").id) for n in range(2)]
    def claim(job_id: str) -> str:
        try:
            return "claimed" if pipeline.claim_step(job_id, "smoke_test") else "none"
        except pipeline.OwnerBusy:
            return "busy"

    outcomes = at_once(*(lambda job_id=job_id: claim(job_id) for job_id in job_ids), timeout=30)
    assert sorted(outcomes) == ["busy", "claimed"]
    assert StepResult.objects.filter(name="smoke_test", status=StepStatus.RUNNING).count() == 1


def test_it_puts_a_waiting_step_off_without_an_attempt_or_the_reaper(at_smoke_test, settings, monkeypatch):
    settings.ACUMOS_JOB_STALE_SECONDS = 1
    settings.ACUMOS_MODEL_RETRY_SECONDS = 7
    alice = UserFactory(username="alice")
    running, waiting = at_smoke_test(alice, "Running"), at_smoke_test(alice, "Waiting")
    sent = []
    monkeypatch.setattr(jobs, "send", lambda task, *args, **options: sent.append((task.name, args, options)))
    pipeline.claim_step(str(running.id), "smoke_test")
    OnboardingJob.objects.filter(pk=waiting.pk).update(heartbeat=timezone.now() - timedelta(seconds=5))

    for _ in range(2):
        pipeline.run_step(str(waiting.id), "smoke_test")
    assert sent == [("onboarding.smoke_test", (str(waiting.id),), {"countdown": 7})] * 2
    step, job = smoke_step(waiting), OnboardingJob.objects.get(pk=waiting.pk)
    assert (step.status, step.attempts) == (StepStatus.PENDING, 0)
    assert step.log.count(pipeline.WAITING_NOTE) == 1  # said once, however long it waits
    assert (timezone.now() - job.heartbeat).total_seconds() < 1  # alive: not a stalled job
    OnboardingJob.objects.filter(pk=running.pk).update(heartbeat=timezone.now())
    assert pipeline.reap_stale_jobs() == []


def test_it_drops_what_was_put_off_when_the_threads_shut_down(settings):
    """shutdown() waits for the running and queued tasks, not for those put off to later (their rows
    stay pending for the reaper): it returns at once, and the task never runs."""
    settings.CELERY_BROKER_URL = ""
    ran = threading.Event()

    class Task:
        name = "tests.put_off"

        @staticmethod
        def apply(args, throw):
            ran.set()

    jobs.send(Task, countdown=0.3)
    began = time.monotonic()
    jobs.shutdown()
    assert time.monotonic() - began < 0.2
    assert not ran.wait(0.5)
