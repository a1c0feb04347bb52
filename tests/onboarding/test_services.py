"""Accepting uploads (onboarding.services): what two first uploads of one name at once answer (finding
L6), and the sweep of staged files no job holds (finding M4: nothing swept `staging/`)."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from acumos_portal import jobs
from marketplace.models import Revision, Solution
from onboarding import pipeline
from onboarding.bundle import sweep_staging
from onboarding.choices import STEPS, JobStatus
from onboarding.models import OnboardingJob
from onboarding.services import onboarding_start

from ..concurrency import at_once
from .test_acumos_api import acumos_push, contents, stored_files, without_version

STEP_ORDER = [name for name, _ in STEPS]


def run_steps(job_id: str, names) -> None:
    for name in names:
        pipeline.run_step(job_id, name)


@pytest.mark.django_db(transaction=True)
def test_two_first_uploads_of_one_name_at_once_answer_with_the_solution_that_holds_each_revision(
        owner, api_token, bundle_parts, monkeypatch, settings, client_for):
    """Finding L6: one 201 carried a solutionId that never came to exist (404); its revision went to
    the solution the other upload made. Both answer with that solution now, and their pipelines,
    run at once up to making it, put both revisions there."""
    settings.ACUMOS_SMOKE_TEST = False
    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: None)  # the steps are run by the test
    monkeypatch.setattr(jobs, "send", lambda task, *args, **kwargs: None)
    parts, auth = without_version(contents(bundle_parts)), f"{owner.username}:{api_token(owner)}"
    answers = at_once(lambda: acumos_push(Client(), parts, auth), lambda: acumos_push(Client(), parts, auth))
    assert [answer.status_code for answer in answers] == [201, 201], [a.content for a in answers]
    results = [answer.json()["result"] for answer in answers]
    assert results[0]["solutionId"] == results[1]["solutionId"]
    assert sorted(result["version"] for result in results) == ["1.0.0", "1.1.0"]

    tasks = [answer.json()["taskId"] for answer in answers]
    making = STEP_ORDER.index("create_revision")
    for task in tasks:
        run_steps(task, STEP_ORDER[:making])
    at_once(*(lambda task=task: run_steps(task, STEP_ORDER[making:]) for task in tasks))
    assert set(OnboardingJob.objects.values_list("status", flat=True)) == {JobStatus.SUCCEEDED}
    [solution] = Solution.objects.all()
    assert str(solution.id) == results[0]["solutionId"]
    for result in results:
        assert str(Revision.objects.get(pk=result["revisionId"]).solution_id) == result["solutionId"]
    assert client_for(owner).get(f"/api/v1/solutions/{solution.id}").status_code == 200


@pytest.mark.django_db
def test_an_upload_of_a_name_that_has_a_solution_answers_with_it(owner, bundle_parts, settings, monkeypatch):
    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: None)
    solution = Solution.objects.create(owner=owner, name="IrisClassifier")
    assert onboarding_start(user=owner, parts=bundle_parts).solution_uuid == solution.id


# ---------------------------------------------------------------- sweeping staging/

def staged_file(folder: str, age_seconds: float) -> str:
    key = default_storage.save(f"staging/{folder}/modelpackage.zip", ContentFile(b"half of a package"))
    then = time.time() - age_seconds
    os.utime(default_storage.path(key), (then, then))
    return key


@pytest.mark.django_db
def test_the_sweep_removes_staged_files_no_unfinished_job_holds(owner, bundle_parts, artifact_storage, settings,
                                                                monkeypatch, tmp_path):
    """Left by a process that died while staging (no job row) or while discarding a finished job's;
    not those of a job in flight, nor a folder being staged right now (its job is not committed yet)."""
    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: None)
    old = settings.ACUMOS_JOB_STALE_SECONDS + 60
    in_flight = onboarding_start(user=owner, parts=bundle_parts)
    done = onboarding_start(user=owner, parts={**bundle_parts, "metadata": _renamed(bundle_parts, "Done", tmp_path)})
    OnboardingJob.objects.filter(pk=done.pk).update(status=JobStatus.SUCCEEDED)
    for job in (in_flight, done):
        for key in job.parts.values():
            os.utime(default_storage.path(key), (time.time() - old,) * 2)
    orphan, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    staged_file(orphan, old)
    staged_file(fresh, 5)

    assert sorted(sweep_staging()) == sorted(f"staging/{folder}: removed (no unfinished job holds it)"
                                             for folder in (str(done.pk), orphan))
    assert {path.split("/")[1] for path in stored_files(artifact_storage)} == {str(in_flight.pk), fresh}
    assert not (artifact_storage / "staging" / orphan).exists()


@pytest.mark.django_db
def test_the_reaper_sweeps_staging_too(artifact_storage, settings):
    orphan = str(uuid.uuid4())
    staged_file(orphan, settings.ACUMOS_JOB_STALE_SECONDS + 60)
    assert pipeline.reap_stale_jobs() == [f"staging/{orphan}: removed (no unfinished job holds it)"]
    assert stored_files(artifact_storage) == []


def _renamed(bundle_parts, name: str, folder):
    metadata = json.loads(bundle_parts["metadata"].read_text())
    metadata["name"] = name
    path = folder / f"{name}-metadata.json"
    path.write_text(json.dumps(metadata))
    return path
