"""Artifacts on an S3-compatible store (moto_server on 127.0.0.1, django-storages' S3 backend):
blobs under their sha256 keys, exact bytes back, no staging left, nothing left by a failed job."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

import boto3
import pytest

from marketplace import storage
from marketplace.choices import ArtifactKind, RevisionStatus
from marketplace.models import Artifact, Blob, Revision, Solution
from onboarding.bundle import PART_FILES
from onboarding.choices import JobStatus, StepStatus
from onboarding.services import onboarding_start

from ..bundles import builders, parts_of
from .test_celery_worker import steps_report, stored_files

pytestmark = pytest.mark.django_db
REGION = "us-east-1"


@dataclass
class Bucket:
    client: object
    name: str

    def object_keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()


@pytest.fixture
def s3_bucket(settings, moto_endpoint, monkeypatch):
    """A fresh bucket as the default storage (what ACUMOS_STORAGE=s3 configures), removed afterwards."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", REGION)):
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    bucket = Bucket(client, f"acumos-test-{uuid.uuid4().hex[:12]}")
    client.create_bucket(Bucket=bucket.name)
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": bucket.name, "endpoint_url": moto_endpoint, "region_name": REGION,
                    "file_overwrite": True, "default_acl": None}}}
    yield bucket
    for key in bucket.object_keys():
        client.delete_object(Bucket=bucket.name, Key=key)
    client.delete_bucket(Bucket=bucket.name)


def test_it_onboards_the_example_bundle_into_s3(owner, bundle_parts, inline_jobs, s3_bucket, artifact_storage):
    with inline_jobs():
        job = onboarding_start(user=owner, parts=bundle_parts)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, f"{job.error}\n{steps_report(job)}"
    # The smoke test ran on a local temporary copy of the staged objects.
    assert job.steps.get(name="smoke_test").status == StepStatus.SUCCEEDED
    revision = Revision.objects.get(pk=job.revision_uuid)
    assert revision.status == RevisionStatus.READY

    blobs = list(Blob.objects.all())
    assert len(blobs) == revision.artifacts.count() == 6
    assert s3_bucket.object_keys() == sorted(storage.blob_key(blob.sha256) for blob in blobs)  # blobs/, nothing else
    assert s3_bucket.object_keys("staging/") == []
    for blob in blobs:
        assert blob.storage_key == f"blobs/{blob.sha256[:2]}/{blob.sha256}"
        with storage.open_blob(blob) as handle:
            data = handle.read()
        assert len(data) == blob.size and hashlib.sha256(data).hexdigest() == blob.sha256
    for part, kind in (("model", ArtifactKind.MODEL), ("metadata", ArtifactKind.METADATA),
                       ("schema", ArtifactKind.PROTO)):
        artifact = Artifact.objects.get(revision=revision, kind=kind)
        with storage.open_blob(artifact.blob) as handle:
            assert handle.read() == bundle_parts[part].read_bytes(), PART_FILES[part]
    assert stored_files(artifact_storage) == []  # nothing went to the local directory


def test_it_stores_the_same_bytes_once_in_s3(owner, bundle_parts, inline_jobs, s3_bucket, tmp_path):
    with inline_jobs():
        onboarding_start(user=owner, parts=bundle_parts)
    keys = s3_bucket.object_keys()
    copy = tmp_path / "copy.zip"
    copy.write_bytes(bundle_parts["model"].read_bytes())
    blob, created = storage.store_file(copy)
    assert not created and s3_bucket.object_keys() == keys


def test_it_leaves_nothing_in_s3_when_the_smoke_test_fails(owner, tmp_path, inline_jobs, s3_bucket):
    bundle = builders.failing_bundle(tmp_path / "failing", fail_on_sample=True)
    with inline_jobs():
        job = onboarding_start(user=owner, parts=parts_of(bundle))
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.steps.get(status=StepStatus.FAILED).name == "smoke_test"
    assert not Revision.objects.exists() and not Solution.objects.exists() and not Blob.objects.exists()
    assert s3_bucket.object_keys() == []


def test_it_gives_a_local_copy_of_an_s3_object_and_removes_it_afterwards(s3_bucket, tmp_path):
    source = tmp_path / "bytes.bin"
    source.write_bytes(bytes(range(256)) * 4096)  # 1 MiB, more than one copy chunk
    blob, _ = storage.store_file(source)
    with storage.local_copy(blob.storage_key, suffix=".bin") as path:
        assert path.suffix == ".bin" and path.read_bytes() == source.read_bytes()
    assert not path.exists()
