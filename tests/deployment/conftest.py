"""Deployment test fixtures: each test's own deployments folder (runner processes it left are
killed), a local target, onboarding for real, and operations run at once. The Docker engine and
registry fixtures are the image tests' (tests/images/conftest.py), re-exported here."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import requests

from deployment import services
from deployment.backends.local import _alive
from deployment.choices import TargetKind
from deployment.models import Deployment, Operation, Target
from marketplace.models import Revision
from onboarding.services import onboarding_start

from ..bundles import parts_of
from ..images.conftest import (  # noqa: F401 (fixtures)
    base_image,
    cleanup_images,
    docker_client,
    docker_host,
    images_env,
    registry_host,
    unique_repository,
    wheelhouse,
)


@pytest.fixture(autouse=True)
def deployments_dir(settings, tmp_path):
    settings.ACUMOS_DEPLOYMENTS_DIR = tmp_path / "deployments"
    yield settings.ACUMOS_DEPLOYMENTS_DIR
    for deployment in Deployment.objects.exclude(handle={}):  # whatever a failing test left running
        pid = deployment.handle.get("pid")
        if pid and _alive(pid):
            os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def local_target(db):
    return Target.objects.create(name="this host", kind=TargetKind.LOCAL)


def onboarded(owner, bundle: Path, inline_jobs) -> Revision:
    with inline_jobs():
        job = onboarding_start(user=owner, parts=parts_of(bundle))
    job.refresh_from_db()
    assert job.error == ""
    return Revision.objects.get(pk=job.revision_uuid)


def run(operation: Operation) -> Operation:
    """Operations run after commit; here, at once."""
    services.run_operation(str(operation.pk))
    operation.refresh_from_db()
    return operation


def post(deployment: Deployment, method: str, body: dict) -> dict:
    deployment.refresh_from_db()
    response = requests.post(f"{deployment.endpoint_url}/model/methods/{method}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()
