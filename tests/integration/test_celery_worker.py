"""The pipeline on a real Celery worker: this process sends the first task to Redis, and a separate
`celery worker` process (sharing the test database and the artifact directory) runs every step."""

from __future__ import annotations

import hashlib
import re

import pytest

from marketplace.choices import ArtifactKind, RevisionStatus
from marketplace.models import Blob, Revision, Solution
from marketplace.storage import blob_key
from onboarding.choices import STEPS, JobStatus, StepStatus
from onboarding.models import StepResult
from onboarding.services import onboarding_start
from onboarding.tasks import first_step_task, step_task

from ..bundles import builders, parts_of
from .conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
STEP_NAMES = [name for name, _ in STEPS]
JOB_TIMEOUT = 90


def stored_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def steps_report(job) -> str:
    return "\n".join(f"{s.name}: {s.status} x{s.attempts} {s.error[:200]}" for s in job.steps.all())


def wait_for_job(job, worker, timeout: float = JOB_TIMEOUT):
    def finished():
        job.refresh_from_db()
        return job.done

    wait_for(finished, timeout, f"job {job.id} to finish", interval=0.3,
             diagnose=lambda: f"{steps_report(job)}\n{worker.tail()}")
    return job


def received(worker, task: str) -> int:
    return len(re.findall(rf"Task onboarding\.{task}\[[0-9a-f-]+\] received", worker.log()))


def test_it_runs_every_step_of_the_example_bundle_on_a_celery_worker(owner, bundle_parts, start_worker,
                                                                       artifact_storage):
    worker = start_worker()
    job = onboarding_start(user=owner, parts=bundle_parts)
    wait_for_job(job, worker)

    assert job.status == JobStatus.SUCCEEDED, f"{job.error}\n{steps_report(job)}"
    steps = list(job.steps.order_by("position"))
    assert [s.name for s in steps] == STEP_NAMES
    skipped = {"validate_licence", "build_image"}  # no license.json; no image builder on this site
    assert {s.name: s.status for s in steps} == {
        name: StepStatus.SKIPPED if name in skipped else StepStatus.SUCCEEDED for name in STEP_NAMES}
    assert all(s.attempts == 1 for s in steps)
    for earlier, later in zip(steps, steps[1:], strict=False):  # one after the other, in order
        assert earlier.finished <= later.started
    # Every step went through the worker, not through this process.
    assert all(received(worker, name) == 1 for name in STEP_NAMES), worker.tail()

    revision = Revision.objects.get(pk=job.revision_uuid)
    assert revision.status == RevisionStatus.READY and revision.ready_at is not None
    assert set(revision.artifacts.values_list("kind", flat=True)) == {
        ArtifactKind.MODEL, ArtifactKind.METADATA, ArtifactKind.PROTO, ArtifactKind.PROTOBUF_JSON, ArtifactKind.TGIF,
        ArtifactKind.LOG}
    for artifact in revision.artifacts.select_related("blob"):  # stored by the worker where this process reads
        data = (artifact_storage / blob_key(artifact.sha256)).read_bytes()
        assert hashlib.sha256(data).hexdigest() == artifact.sha256 and len(data) == artifact.size
    model = revision.artifacts.get(kind=ArtifactKind.MODEL)
    assert (artifact_storage / model.blob.storage_key).read_bytes() == bundle_parts["model"].read_bytes()
    assert stored_files(artifact_storage) == sorted(blob.storage_key for blob in Blob.objects.all())


def test_it_fails_a_bundle_at_the_smoke_test_on_a_celery_worker_and_leaves_nothing(owner, tmp_path, start_worker,
                                                                                    artifact_storage):
    worker = start_worker()
    job = onboarding_start(user=owner, parts=parts_of(builders.failing_bundle(tmp_path / "failing",
                                                                              fail_on_sample=True)))
    wait_for_job(job, worker)

    assert job.status == JobStatus.FAILED
    failed = job.steps.get(status=StepStatus.FAILED)
    assert failed.name == "smoke_test" and "failed its sample" in failed.error
    assert "negative input is not supported" in failed.error  # the model's own error reaches the job
    assert job.error == failed.error
    assert set(job.steps.filter(position__gt=failed.position).values_list("status", flat=True)) == {
        StepStatus.SKIPPED}
    assert not Revision.objects.exists() and not Solution.objects.exists() and not Blob.objects.exists()
    assert stored_files(artifact_storage) == []


def test_it_runs_a_step_once_when_its_task_is_delivered_twice(owner, bundle_parts, start_worker, artifact_storage):
    job = onboarding_start(user=owner, parts=bundle_parts)  # queued in Redis: no worker yet
    first_step_task().apply_async(args=[str(job.id)])  # the same task again, as a redelivery would
    worker = start_worker()
    wait_for_job(job, worker)

    assert job.status == JobStatus.SUCCEEDED, f"{job.error}\n{steps_report(job)}"
    assert received(worker, STEP_NAMES[0]) == 2
    # The duplicate found the step claimed and did nothing: no second run, no second chain of steps.
    assert list(job.steps.values_list("attempts", flat=True)) == [1] * len(STEP_NAMES)
    assert all(received(worker, name) == 1 for name in STEP_NAMES[1:]), worker.tail()
    assert job.steps.get(name=STEP_NAMES[0]).log.count("schema acumos.schema.model") == 1

    # Late duplicates of steps that already ran change nothing either.
    blobs, files = set(Blob.objects.values_list("pk", flat=True)), stored_files(artifact_storage)
    late = [step_task(name).apply_async(args=[str(job.id)]).id for name in ("store_artifacts", "mark_ready")]
    wait_for(lambda: all(f"[{task_id}] succeeded" in worker.log() for task_id in late), 30,
             "the late duplicates to be processed", diagnose=worker.tail)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert set(StepResult.objects.filter(job=job).values_list("attempts", flat=True)) == {1}
    assert set(Blob.objects.values_list("pk", flat=True)) == blobs and stored_files(artifact_storage) == files
    assert Revision.objects.get(pk=job.revision_uuid).artifacts.count() == 6
