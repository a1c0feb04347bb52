"""The pipeline end to end with jobs run inline: every step recorded, a ready revision, and a
failed upload that leaves nothing behind."""

from __future__ import annotations

import json

import pytest

from marketplace.choices import ArtifactKind, RevisionStatus
from marketplace.models import Blob, Revision, Solution
from onboarding.choices import STEPS, JobStatus, StepStatus
from onboarding.services import onboarding_start

from ..bundles import builders, parts_of


def stored_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.django_db
def test_it_onboards_the_example_bundle_to_a_ready_revision(owner, bundle_parts, inline_jobs, artifact_storage):
    with inline_jobs():
        job = onboarding_start(user=owner, parts=bundle_parts)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert [s.name for s in job.steps.all()] == [name for name, _ in STEPS]
    statuses = {s.name: s.status for s in job.steps.all()}
    assert statuses["validate_licence"] == StepStatus.SKIPPED and statuses["build_image"] == StepStatus.SKIPPED
    assert statuses["smoke_test"] == StepStatus.SUCCEEDED
    assert '{"species":0}' in job.steps.get(name="smoke_test").log
    revision = Revision.objects.get(pk=job.revision_uuid)
    assert revision.status == RevisionStatus.READY and revision.version == "1.0.0"
    kinds = set(revision.artifacts.values_list("kind", flat=True))
    assert kinds == {ArtifactKind.MODEL, ArtifactKind.METADATA, ArtifactKind.PROTO, ArtifactKind.PROTOBUF_JSON,
                     ArtifactKind.TGIF, ArtifactKind.LOG}
    assert not any(f.startswith("staging/") for f in stored_files(artifact_storage))


@pytest.mark.django_db
def test_it_adds_a_revision_when_the_same_owner_onboards_the_same_name(owner, bundle_parts, inline_jobs, tmp_path):
    from onboarding.validation import Invalid

    with inline_jobs():
        first = onboarding_start(user=owner, parts=bundle_parts)
    with pytest.raises(Invalid, match="version 1.0.0 of 'IrisClassifier' already exists"):
        onboarding_start(user=owner, parts=bundle_parts)
    metadata = json.loads(bundle_parts["metadata"].read_text())
    del metadata["modelVersion"]
    unversioned = tmp_path / "metadata.json"
    unversioned.write_text(json.dumps(metadata))
    with inline_jobs():
        second = onboarding_start(user=owner, parts={**bundle_parts, "metadata": unversioned})
    assert first.solution_uuid == second.solution_uuid
    assert sorted(Revision.objects.values_list("version", flat=True)) == ["1.0.0", "1.1.0"]
    # The same bytes are stored once.
    assert Blob.objects.count() == len({a.blob_id for r in Revision.objects.all() for a in r.artifacts.all()})


@pytest.mark.django_db
def test_it_fails_the_smoke_test_and_leaves_nothing_behind(owner, tmp_path, inline_jobs, artifact_storage):
    bundle = builders.failing_bundle(tmp_path / "failing", fail_on_sample=True)
    with inline_jobs():
        job = onboarding_start(user=owner, parts=parts_of(bundle))
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    failed = job.steps.get(status=StepStatus.FAILED)
    assert failed.name == "smoke_test" and "failed its sample" in failed.error
    assert job.steps.filter(name__in=["build_image", "mark_ready"], status=StepStatus.SKIPPED).count() == 2
    assert not Revision.objects.exists() and not Solution.objects.exists() and not Blob.objects.exists()
    assert stored_files(artifact_storage) == []


@pytest.mark.django_db
def test_it_refuses_a_proto_that_lacks_a_metadata_method_before_making_a_job(owner, bundle_parts, tmp_path):
    from onboarding.models import OnboardingJob
    from onboarding.validation import Invalid

    metadata = json.loads(bundle_parts["metadata"].read_text())
    metadata["methods"]["explain"] = metadata["methods"]["classify"]
    changed = tmp_path / "metadata.json"
    changed.write_text(json.dumps(metadata))
    with pytest.raises(Invalid) as refused:
        onboarding_start(user=owner, parts={**bundle_parts, "metadata": changed})
    assert refused.value.errors[0]["field"] == "methods.explain"
    assert not OnboardingJob.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_keeps_the_heartbeat_fresh_while_a_long_step_runs(owner, bundle_parts, settings, monkeypatch):
    import time

    from acumos_portal import jobs
    from onboarding import pipeline, steps

    settings.ACUMOS_JOB_STALE_SECONDS = 2  # a beat every 0.5 s
    monkeypatch.setattr(pipeline, "advance", lambda job, name: None)  # run this one step only
    monkeypatch.setattr(jobs, "send", lambda task, *args: None)  # and not in the background too
    monkeypatch.setitem(steps.STEP_FUNCTIONS, "validate_metadata", lambda job, step: time.sleep(2.5) or "slow\n")
    job = onboarding_start(user=owner, parts=bundle_parts)
    pipeline.run_step(str(job.id), "validate_metadata")
    job.refresh_from_db()
    step = job.steps.get(name="validate_metadata")
    assert (job.heartbeat - step.started).total_seconds() >= 1.5
