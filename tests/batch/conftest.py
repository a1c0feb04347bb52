"""Batch fixtures: real sandboxed local runners of the iris example (one row per message, and the variant
whose fields are repeated: one message is many rows), the portal's storage on moto's S3, inputs written as
CSV, and a job run at once (its task as the worker runs it)."""

from __future__ import annotations

import csv
import io
import uuid

import boto3
import pytest
import requests

from acumos_portal.choices import JobStatus
from batch import services
from batch.models import BatchJob
from deployment import services as deployment_services
from deployment.choices import DeploymentStatus, TargetKind

from ..bundles import builders
from ..deployment.conftest import deployments_dir, onboarded, run  # noqa: F401 (deployments_dir: a fixture)
from ..factories import DeploymentFactory, TargetFactory
from ..integration.conftest import moto_endpoint  # noqa: F401 (a fixture)
from ..integration.test_s3_storage import REGION, Bucket

IRIS = ("sepal_length", "sepal_width", "petal_length", "petal_width")


@pytest.fixture(scope="session")
def repeated_bundle(tmp_path_factory):
    return builders.iris_bundle(tmp_path_factory.mktemp("iris-repeated"), repeated=True)


def _deploy(owner, bundle, inline_jobs):
    revision = onboarded(owner, bundle, inline_jobs)
    target = TargetFactory(name=f"this host {uuid.uuid4().hex[:6]}", kind=TargetKind.LOCAL, options={"workers": 1})
    deployment = deployment_services.deploy(revision=revision, target=target, user=owner)
    assert run(deployment.operations.get()).status == JobStatus.SUCCEEDED
    deployment.refresh_from_db()
    return deployment


@pytest.fixture
def repeated_deployment(owner, repeated_bundle, inline_jobs):
    """The iris example whose input fields are repeated, running sandboxed on this host."""
    return _deploy(owner, repeated_bundle, inline_jobs)


@pytest.fixture
def single_deployment(owner, example_bundle, inline_jobs):
    """The iris example as shipped (one row per message), running sandboxed on this host."""
    return _deploy(owner, example_bundle, inline_jobs)


@pytest.fixture
def running(owner):
    """A running deployment row (no runner behind it): enough to be refused or allowed."""
    return DeploymentFactory(created_by=owner, status=DeploymentStatus.RUNNING, endpoint_url="http://127.0.0.1:9")


@pytest.fixture
def s3_store(settings, moto_endpoint, monkeypatch):  # noqa: F811 (the fixture imported above)
    """A fresh bucket on moto as the portal's storage (ACUMOS_STORAGE=s3), removed afterwards."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", REGION)):
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    bucket = Bucket(client, f"acumos-batch-{uuid.uuid4().hex[:12]}")
    client.create_bucket(Bucket=bucket.name)
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": bucket.name, "endpoint_url": moto_endpoint, "region_name": REGION,
                    "file_overwrite": True, "default_acl": None}}}
    yield bucket
    for key in bucket.object_keys():
        client.delete_object(Bucket=bucket.name, Key=key)
    client.delete_bucket(Bucket=bucket.name)


@pytest.fixture
def local_storage(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "media")}}}
    return tmp_path / "media"


def iris_rows(n: int, seed: int = 7) -> list[dict]:
    """n iris-like rows, each with an id, spread over the three species' ranges."""
    import random

    rng = random.Random(seed)
    return [{"id": f"r{i:05d}", "sepal_length": round(rng.uniform(4.3, 7.9), 1),
             "sepal_width": round(rng.uniform(2.0, 4.4), 1), "petal_length": round(rng.uniform(1.0, 6.9), 1),
             "petal_width": round(rng.uniform(0.1, 2.5), 1)} for i in range(n)]


def as_csv(rows: list[dict]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode()


def read_csv(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def run_job(job: BatchJob) -> BatchJob:
    """The job's task, as a worker runs it."""
    services.run_job(str(job.pk))
    job.refresh_from_db()
    return job


def predict_one(deployment, row: dict, *, repeated: bool) -> int:
    """The species the runner answers for one row, asked alone (the reference a batch must equal)."""
    body = {name: ([row[name]] if repeated else row[name]) for name in IRIS}
    answer = requests.post(f"{deployment.endpoint_url}/model/methods/classify", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    species = answer.json()["species"]
    return int(species[0] if repeated else species)
