"""Faults through the pipeline (jobs inline): a wrong bundle is refused before a job exists, with a
message naming the problem and field-level errors, and leaves no row and no file; a storage
failure in the middle of the pipeline fails the job cleanly."""

from __future__ import annotations

import errno
import json
import resource
import signal
import zipfile
from contextlib import contextmanager

import pytest

from marketplace import storage
from marketplace.models import Artifact, Blob, Revision, Solution
from onboarding.choices import JobStatus, StepStatus
from onboarding.models import OnboardingJob, StepResult
from onboarding.services import onboarding_start
from onboarding.validation import Invalid

from ..bundles import builders, parts_of

pytestmark = pytest.mark.django_db

VALID_LICENCE = {"keyword": "Apache-2.0", "licenseName": "Apache License 2.0",
                 "copyright": {"year": 2024, "company": "Example Corp", "suffix": "All Rights Reserved"},
                 "softwareType": "Machine Learning Model", "companyName": "Example Corp",
                 "contact": {"name": "Example Team", "URL": "https://example.com", "email": "team@example.com"},
                 "rtuRequired": False}


def stored_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_nothing_left(artifact_storage) -> None:
    for model in (OnboardingJob, StepResult, Solution, Revision, Artifact, Blob):
        assert not model.objects.exists(), f"a {model.__name__} row was left behind"
    assert stored_files(artifact_storage) == []


# ---------------------------------------------------------------- bundle edits

def write(tmp_path, name: str, data: bytes | str):
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def edit_metadata(parts, tmp_path, change):
    metadata = json.loads(parts["metadata"].read_text())
    change(metadata)
    return {**parts, "metadata": write(tmp_path, "metadata.json", json.dumps(metadata))}


def package_entries(parts) -> dict[str, bytes]:
    with zipfile.ZipFile(parts["model"]) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def edit_package(parts, tmp_path, change):
    entries = package_entries(parts)
    change(entries)
    return {**parts, "model": write(tmp_path, "modelpackage.zip", builders.zip_bytes(entries))}


def edit_manifest(parts, tmp_path, change):
    def edit(entries):
        manifest = json.loads(entries["runner.json"])
        change(manifest)
        entries["runner.json"] = json.dumps(manifest).encode()

    return edit_package(parts, tmp_path, edit)


def wrong_json(parts, tmp_path):
    return {**parts, "metadata": write(tmp_path, "metadata.json", '{"schema": "acumos.schema.model:0.6.0",,}')}


def missing_methods(parts, tmp_path):
    return edit_metadata(parts, tmp_path, lambda m: m.pop("methods"))


def proto_that_does_not_compile(parts, tmp_path):
    text = parts["schema"].read_text().replace("double sepal_width = 2;", "dubble sepal_width = 2;")
    return {**parts, "schema": write(tmp_path, "model.proto", text)}


def method_missing_from_proto(parts, tmp_path):
    return edit_metadata(parts, tmp_path, lambda m: m["methods"].update(explain=m["methods"]["classify"]))


def zip_slip(parts, tmp_path):
    return edit_package(parts, tmp_path, lambda entries: entries.update({"../../evil.py": b"import os\n"}))


def zip_bomb(parts, tmp_path):
    # 64 MiB of zeros deflate to about 64 KiB: a ratio near 1000:1 (the limit is 200:1).
    return edit_package(parts, tmp_path, lambda entries: entries.update({"padding.bin": bytes(64 << 20)}))


def unknown_flavour(parts, tmp_path):
    return edit_manifest(parts, tmp_path, lambda manifest: manifest.update(flavour="tensorflow"))


def licence_against_its_schema(parts, tmp_path):
    licence = {**VALID_LICENCE, "copyright": {"year": "this year", "company": "Example Corp"}}
    del licence["licenseName"]
    return {**parts, "license": write(tmp_path, "license.json", json.dumps(licence))}


# (make the bundle, the part refused, the field of the first error, what the message says)
FAULTS = {
    "wrong JSON": (wrong_json, "metadata", "", "metadata is not valid JSON: Expecting property name"),
    "schema violation": (missing_methods, "metadata", "(root)",
                         "metadata.json does not match the schema: (root): 'methods' is a required property"),
    "proto that does not compile": (proto_that_does_not_compile, "schema", "model.proto",
                                    ("model.proto does not compile: ", "\"dubble\" is not defined")),
    "metadata method missing from proto": (method_missing_from_proto, "schema", "methods.explain",
                                           "method 'explain' is not an rpc of service Model"),
    "zip slip": (zip_slip, "model", "modelpackage.zip",
                 "entry '../../evil.py' would be written outside the model directory"),
    "zip bomb": (zip_bomb, "model", "modelpackage.zip", "refusing a likely zip bomb"),
    "unknown flavour": (unknown_flavour, "model", "runner.json:flavour",
                        "runner.json: 'flavour' 'tensorflow' is not supported (allowed: sklearn, xgboost"),
    "licence against its schema": (licence_against_its_schema, "license", "(root)",
                                   "license.json does not match the schema: (root): 'licenseName' is a required "
                                   "property (and 1 more)"),
}


@pytest.fixture
def upload(owner, inline_jobs):
    """Upload as `owner` with jobs inline: whatever the upload starts has run when this returns."""

    def start(parts):
        with inline_jobs():
            return onboarding_start(user=owner, parts=parts)

    return start


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_it_refuses_a_faulty_bundle_before_making_anything(fault, upload, bundle_parts, tmp_path, artifact_storage):
    make, part, field, says = FAULTS[fault]
    parts = make(bundle_parts, tmp_path)
    with pytest.raises(Invalid) as refused:
        upload(parts)
    invalid = refused.value
    assert invalid.part == part
    for fragment in (says,) if isinstance(says, str) else says:
        assert fragment in invalid.message
    assert invalid.errors and all(set(error) == {"field", "message"} for error in invalid.errors)
    assert invalid.errors[0]["field"] == field
    assert invalid.as_details() == {"part": part, "errors": invalid.errors}
    assert_nothing_left(artifact_storage)


def test_it_names_every_field_a_licence_gets_wrong(owner, bundle_parts, tmp_path, artifact_storage):
    parts = licence_against_its_schema(bundle_parts, tmp_path)
    with pytest.raises(Invalid) as refused:
        onboarding_start(user=owner, parts=parts)
    assert refused.value.errors == [
        {"field": "(root)", "message": "'licenseName' is a required property"},
        {"field": "copyright.year", "message": "'this year' is not of type 'integer'"},
    ]
    assert_nothing_left(artifact_storage)


def test_it_refuses_a_package_that_expands_past_the_limit(owner, bundle_parts, tmp_path, settings,
                                                          artifact_storage):
    settings.ACUMOS_MAX_PACKAGE_BYTES = 16 << 10  # the example's model.joblib alone is larger
    with pytest.raises(Invalid) as refused:
        onboarding_start(user=owner, parts=bundle_parts)
    assert refused.value.part == "model"
    assert f"the limit is {16 << 10}" in refused.value.message
    assert_nothing_left(artifact_storage)


def test_it_onboards_a_bundle_with_a_valid_licence(owner, bundle_parts, tmp_path, inline_jobs):
    parts = {**bundle_parts, "license": write(tmp_path, "license.json", json.dumps(VALID_LICENCE))}
    with inline_jobs():
        job = onboarding_start(user=owner, parts=parts)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    step = job.steps.get(name="validate_licence")
    assert step.status == StepStatus.SUCCEEDED and "Apache License 2.0 (Apache-2.0)" in step.log


# ---------------------------------------------------------------- storage failing mid-pipeline

def test_it_fails_the_job_cleanly_when_storage_fails_while_storing_artifacts(owner, bundle_parts, inline_jobs,
                                                                            monkeypatch, artifact_storage):
    real_store_file, calls = storage.store_file, []

    def store_file(path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_store_file(path)

    monkeypatch.setattr(storage, "store_file", store_file)
    with inline_jobs():
        job = onboarding_start(user=owner, parts=bundle_parts)
    job.refresh_from_db()

    assert len(calls) == 2
    assert job.status == JobStatus.FAILED and job.finished is not None
    failed = job.steps.get(status=StepStatus.FAILED)
    assert failed.name == "store_artifacts"
    assert failed.error == job.error
    assert "could not store" in job.error and "No space left on device" in job.error
    assert set(job.steps.filter(position__gt=failed.position).values_list("status", flat=True)) == {
        StepStatus.SKIPPED}
    assert len(job.created_blobs) == 1  # the part stored before the failure was recorded, and removed
    assert not Revision.objects.exists() and not Solution.objects.exists()
    assert not Blob.objects.exists() and not Artifact.objects.exists()
    assert stored_files(artifact_storage) == []


@contextmanager
def file_size_limit(limit: int):
    """Writes past `limit` bytes fail with EFBIG, as on a disk that fills up in the middle of a file."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error from write(), not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_it_fails_the_job_cleanly_when_a_blob_write_is_cut_short(owner, bundle_parts, inline_jobs, monkeypatch,
                                                                 artifact_storage):
    real_store_file = storage.store_file

    def store_file_on_a_full_disk(path):
        with file_size_limit(1000):  # modelpackage.zip, stored first, is larger
            return real_store_file(path)

    monkeypatch.setattr(storage, "store_file", store_file_on_a_full_disk)
    with inline_jobs():
        job = onboarding_start(user=owner, parts=bundle_parts)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.steps.get(status=StepStatus.FAILED).name == "store_artifacts"
    assert "modelpackage.zip" in job.error and "File too large" in job.error
    assert not Blob.objects.exists()
    assert stored_files(artifact_storage) == []  # no part of a blob left under its content address


# ---------------------------------------------------------------- two jobs sharing stored bytes

@pytest.fixture
def stepwise(monkeypatch):
    """Run jobs a step at a time: tasks sent are dropped, `run(job, *names)` runs those steps, and
    `finish(job)` runs the rest inline (as a worker would)."""
    from acumos_portal import jobs
    from onboarding import pipeline

    monkeypatch.setattr(jobs, "send", lambda task, *args: None)

    def run(job, *names):
        for name in names:
            pipeline.run_step(str(job.id), name)

    def finish(job):
        monkeypatch.setattr(jobs, "send", lambda task, *args: task.apply(args=args, throw=True))
        try:
            pending = job.steps.filter(status=StepStatus.PENDING).order_by("position").first()
            pipeline.run_step(str(job.id), pending.name)
        finally:
            monkeypatch.setattr(jobs, "send", lambda task, *args: None)
        job.refresh_from_db()
        return job

    return run, finish


THROUGH_STORE = ("validate_metadata", "validate_proto", "validate_package", "validate_licence", "store_artifacts")


def test_it_keeps_the_blobs_another_unfinished_job_uses_when_a_job_fails(owner, tmp_path, stepwise,
                                                                         django_capture_on_commit_callbacks,
                                                                         artifact_storage):
    run, finish = stepwise
    # Same metadata.json and model.proto (the same interface), different models; the first one fails.
    failing = parts_of(builders.failing_bundle(tmp_path / "failing", fail_on_sample=True))
    working = parts_of(builders.scale_bundle(tmp_path / "working", k=3.0, tag="working"))
    assert failing["schema"].read_bytes() == working["schema"].read_bytes()
    with django_capture_on_commit_callbacks(execute=True):
        first = onboarding_start(user=owner, parts=failing)
        second = onboarding_start(user=owner, parts=working)
    run(first, *THROUGH_STORE)  # stores metadata.json and model.proto first
    run(second, *THROUGH_STORE)  # finds them stored
    shared = set(first.steps.get(name="store_artifacts").details["blobs"].values()) & set(
        second.steps.get(name="store_artifacts").details["blobs"].values())
    assert len(shared) == 2

    assert finish(first).status == JobStatus.FAILED  # at the smoke test
    assert set(Blob.objects.filter(pk__in=shared).values_list("pk", flat=True)) == shared
    assert finish(second).status == JobStatus.SUCCEEDED, second.error
    # Nothing orphaned: every blob left belongs to the ready revision, and every file to a blob.
    assert set(Blob.objects.values_list("pk", flat=True)) == set(Artifact.objects.values_list("blob", flat=True))
    assert stored_files(artifact_storage) == sorted(Blob.objects.values_list("storage_key", flat=True))


def test_it_removes_shared_blobs_when_every_job_using_them_fails(owner, tmp_path, stepwise,
                                                                django_capture_on_commit_callbacks, artifact_storage):
    run, finish = stepwise
    failing = parts_of(builders.failing_bundle(tmp_path / "failing", fail_on_sample=True))
    with django_capture_on_commit_callbacks(execute=True):
        first = onboarding_start(user=owner, parts=failing)
        second = onboarding_start(user=owner, parts=failing)
    run(first, *THROUGH_STORE)
    run(second, *THROUGH_STORE)  # stores nothing itself: every part is already there
    assert second.steps.get(name="store_artifacts").log.count("already stored") == 3
    assert finish(first).status == JobStatus.FAILED
    assert Blob.objects.count() == 3  # kept for the second job
    assert finish(second).status == JobStatus.FAILED
    assert_nothing_left_but_jobs(artifact_storage)


def assert_nothing_left_but_jobs(artifact_storage) -> None:
    for model in (Solution, Revision, Artifact, Blob):
        assert not model.objects.exists(), f"a {model.__name__} row was left behind"
    assert stored_files(artifact_storage) == []
