"""The pipeline meeting trouble that is nobody's fault: a busy database ("database is locked", finding
H1) is a transient error wherever the pipeline meets it, retried with the task's bound and never a
failed job; and a job whose process died (finding M3) is taken up at once, by the reaper as by the
web server when it starts again, without waiting for it to turn stale."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import uuid

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.utils import timezone

from acumos_portal import jobs
from marketplace.models import Revision
from onboarding import pipeline, steps
from onboarding.choices import STEPS, JobStatus, StepStatus
from onboarding.models import OnboardingJob, StepResult
from onboarding.services import onboarding_start

pytestmark = pytest.mark.django_db
STEP_ORDER = [name for name, _ in STEPS]


@pytest.fixture(autouse=True)
def no_smoke_test(settings):
    settings.ACUMOS_SMOKE_TEST = False  # the sandbox is not what these tests are about


def database_locked(tmp_path) -> OperationalError:
    """A real "database is locked", as Django raises it: SQLite's one write lock held by another
    connection, and a writer that does not wait."""
    path = tmp_path / "busy.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t VALUES (1)")
    except sqlite3.OperationalError as exc:
        error = OperationalError(*exc.args)
        error.__cause__ = exc
        return error
    finally:
        holder.close()
        other.close()
    raise AssertionError("the second writer was not refused")


def busy_once(monkeypatch, target, attribute: str, error: OperationalError, key=None) -> list:
    """Replace `target.attribute` (or target[key]) by a wrapper whose first call raises `error`."""
    real = target[key] if key else getattr(target, attribute)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise error
        return real(*args, **kwargs)

    if key:
        monkeypatch.setitem(target, key, wrapper)
    else:
        monkeypatch.setattr(target, attribute, wrapper)
    return calls


@pytest.fixture
def inline_jobs(monkeypatch, django_capture_on_commit_callbacks):
    """`with inline_jobs(): <upload>`: the tasks run synchronously as the embedded default runs them
    (tests/conftest.py's, but with throw=False, as acumos_portal.jobs applies them: a retry is made
    then, where throw=True would raise it)."""
    monkeypatch.setattr(jobs, "send", lambda task, *args, **kwargs: task.apply(args=args, throw=False))
    return lambda: django_capture_on_commit_callbacks(execute=True)


def finished(job) -> OnboardingJob:
    job.refresh_from_db()
    return job


# ---------------------------------------------------------------- a busy database

def test_a_step_that_meets_a_busy_database_is_retried_and_the_job_succeeds(owner, bundle_parts, inline_jobs,
                                                                         monkeypatch, tmp_path):
    """Finding H1's job: "internal error in step create_revision ... database is locked", failed for good."""
    calls = busy_once(monkeypatch, steps.STEP_FUNCTIONS, "", database_locked(tmp_path), key="create_revision")
    with inline_jobs():
        job = onboarding_start(user=owner, parts=bundle_parts)
    assert finished(job).status == JobStatus.SUCCEEDED, job.error
    step = job.steps.get(name="create_revision")
    assert len(calls) == 2 and step.attempts == 2 and step.error == ""


def test_a_claim_that_meets_a_busy_database_claims_nothing_and_is_retried(owner, bundle_parts, inline_jobs,
                                                                        monkeypatch, tmp_path):
    calls = busy_once(monkeypatch, pipeline, "claim_step", database_locked(tmp_path))
    with inline_jobs():
        job = onboarding_start(user=owner, parts=bundle_parts)
    assert finished(job).status == JobStatus.SUCCEEDED, job.error
    assert calls[:2] == [(str(job.id), STEP_ORDER[0])] * 2  # the first step, claimed at the second try
    assert job.steps.get(name=STEP_ORDER[0]).attempts == 1


def test_a_step_whose_result_could_not_be_recorded_runs_again_without_making_twice(owner, bundle_parts,
                                                                                 inline_jobs, monkeypatch, tmp_path):
    """create_revision made the revision, then recording the step met the busy database: the retry
    finds the revision made, and the job goes on with one revision."""
    real_finish = pipeline._finish
    locked = database_locked(tmp_path)
    seen = []

    def finish(step, status, output):
        seen.append(step.name)
        if step.name == "create_revision" and seen.count("create_revision") == 1:
            raise locked
        return real_finish(step, status, output)

    monkeypatch.setattr(pipeline, "_finish", finish)
    with inline_jobs():
        job = onboarding_start(user=owner, parts=bundle_parts)
    assert finished(job).status == JobStatus.SUCCEEDED, job.error
    step = job.steps.get(name="create_revision")
    assert step.attempts == 2 and "was already made" in step.log
    assert Revision.objects.filter(solution__name=job.model_name).count() == 1


def test_a_job_moves_on_when_sending_its_next_step_met_a_busy_database(owner, bundle_parts, inline_jobs,
                                                                     monkeypatch, tmp_path):
    calls = busy_once(monkeypatch, pipeline, "advance", database_locked(tmp_path))
    with inline_jobs():
        job = onboarding_start(user=owner, parts=bundle_parts)
    assert finished(job).status == JobStatus.SUCCEEDED, job.error
    assert calls[1][1] == STEP_ORDER[0]  # moved on by the retry of the step it finished
    assert job.steps.get(name=STEP_ORDER[0]).attempts == 1  # which did not run it again


# ---------------------------------------------------------------- a process that died

def gone_process() -> str:
    """The claimant of a process of this host that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}:1"


@pytest.fixture
def sent(monkeypatch):
    """What the pipeline sends (the tasks do not run)."""
    sent = []
    monkeypatch.setattr(jobs, "send", lambda task, *args, **kwargs: sent.append((task.name, *args)))
    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: None)
    return sent


@pytest.fixture
def job_at(owner, bundle_parts, tmp_path, settings):
    """`job_at(step, status, claimant)`: a job (of its own model) whose steps before `step` are done and
    `step` is in `status`, claimed by `claimant`, its heartbeat fresh: the reaper's cutoff alone
    would not touch it."""
    settings.ACUMOS_QUOTA_ONBOARDING_JOBS = 10

    def make(name: str, step_status: str, claimant: str = "", attempts: int = 1) -> OnboardingJob:
        metadata = json.loads(bundle_parts["metadata"].read_text())
        metadata["name"] = f"Model{uuid.uuid4().hex[:8]}"
        path = tmp_path / metadata["name"] / "metadata.json"
        path.parent.mkdir()
        path.write_text(json.dumps(metadata))
        return _job_at(onboarding_start(user=owner, parts={**bundle_parts, "metadata": path}), name, step_status,
                       claimant, attempts)

    return make


def _job_at(job: OnboardingJob, name: str, step_status: str, claimant: str, attempts: int) -> OnboardingJob:
    position = STEP_ORDER.index(name)
    StepResult.objects.filter(job=job, position__lt=position).update(status=StepStatus.SUCCEEDED, attempts=1)
    StepResult.objects.filter(job=job, name=name).update(status=step_status, attempts=attempts, claimed_by=claimant,
                                                         started=timezone.now())
    OnboardingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, heartbeat=timezone.now())
    return job


def step_of(job, name: str) -> StepResult:
    return StepResult.objects.get(job=job, name=name)


def test_the_reaper_takes_up_at_once_a_step_whose_process_is_gone(job_at, sent):
    """Not ACUMOS_JOB_STALE_SECONDS (600) later: its process ran on this host and has ended. A step
    of a live process, or of another host's (only its heartbeat can tell), is left alone."""
    orphan = job_at("smoke_test", StepStatus.RUNNING, gone_process())
    live = job_at("smoke_test", StepStatus.RUNNING, jobs.this_process())
    remote = job_at("smoke_test", StepStatus.RUNNING, "another-host:12:34")
    assert jobs.process_gone(step_of(orphan, "smoke_test").claimed_by)

    assert pipeline.reap_stale_jobs() == [f"requeued {orphan.id} smoke_test"]
    assert sent == [("onboarding.smoke_test", str(orphan.id))]
    reaped = step_of(orphan, "smoke_test")
    assert reaped.status == StepStatus.PENDING and "re-queued after its worker stopped (attempt 1 of 3)" in reaped.log
    assert step_of(live, "smoke_test").status == step_of(remote, "smoke_test").status == StepStatus.RUNNING


def test_the_reaper_fails_the_job_of_a_gone_process_after_its_last_attempt(job_at, sent):
    job = job_at("smoke_test", StepStatus.RUNNING, gone_process(), attempts=3)
    assert pipeline.reap_stale_jobs() == [f"failed {job.id}"]
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and sent == []
    assert job.error == "step smoke_test did not finish after 3 attempts (the worker running it stopped); giving up"


def test_a_server_starting_again_takes_up_every_job_a_stopped_one_left(job_at, sent):
    """What the web server does at its start on the embedded default (acumos_portal.wsgi): the step
    a dead process ran is sent again, once; a job whose next step was queued in that process (never
    claimed) is sent on; a job left half-failed is failed, not finished as a success."""
    interrupted = job_at("smoke_test", StepStatus.RUNNING, gone_process())
    queued = job_at("generate_descriptors", StepStatus.PENDING, attempts=0)
    half_failed = job_at("validate_package", StepStatus.FAILED, gone_process())
    StepResult.objects.filter(job=half_failed, name="validate_package").update(error="the package is broken")
    StepResult.objects.filter(job=half_failed, status=StepStatus.PENDING).update(status=StepStatus.SKIPPED)

    pipeline.resume_interrupted_jobs()
    assert sorted(sent) == sorted([("onboarding.smoke_test", str(interrupted.id)),
                                   ("onboarding.generate_descriptors", str(queued.id))])
    half_failed.refresh_from_db()
    assert half_failed.status == JobStatus.FAILED and half_failed.error == "the package is broken"


def test_reap_jobs_on_the_embedded_default_sends_nothing_from_its_own_short_life(job_at, sent, settings):
    """Finding M3, step 4: the command ran the step on its own threads and died with them ("cannot
    schedule new futures after interpreter shutdown"). The server takes the job up when it starts."""
    settings.CELERY_BROKER_URL = ""
    job = job_at("smoke_test", StepStatus.RUNNING, gone_process())
    call_command("reap_jobs")
    assert sent == [] and step_of(job, "smoke_test").status == StepStatus.RUNNING


def test_a_claim_records_which_process_holds_the_step(owner, bundle_parts, sent):
    job = onboarding_start(user=owner, parts=bundle_parts)
    step = pipeline.claim_step(str(job.id), STEP_ORDER[0])
    host, pid, started = step.claimed_by.split(":")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid()) and started.isdigit()
    assert not jobs.process_gone(step.claimed_by)
