"""Deployment test fixtures: each test's own deployments folder (runner processes it left are
killed), a local target, onboarding for real (with images built, for the docker target), docker
targets whose containers go when the test ends, and operations run at once. The Docker engine and
registry fixtures are the image tests' (tests/images/conftest.py), re-exported here."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from acumos_portal import sandbox
from deployment import services
from deployment.backends.docker import MANAGED_BY, MANAGER
from deployment.choices import TargetDeployers, TargetKind
from deployment.models import Deployment, Operation, Target
from marketplace.models import Revision
from onboarding.services import onboarding_start

from ..bundles import parts_of
from ..factories import TargetFactory
from ..images.conftest import (  # noqa: F401 (fixtures)
    base_image,
    cleanup_images,
    docker_client,
    docker_host,
    free_port,
    images_env,
    registry_host,
    unique_repository,
    wheelhouse,
)
from ..images.test_build import image_cache, image_settings  # noqa: F401 (fixtures)

PORT_SPAN = 200


@pytest.fixture(autouse=True)
def deployments_dir(settings, tmp_path):
    settings.ACUMOS_DEPLOYMENTS_DIR = tmp_path / "deployments"
    yield settings.ACUMOS_DEPLOYMENTS_DIR
    # Whatever a failing test left running: every sandbox of this run is stopped, nothing is left.
    sandbox.sweep(sandbox.records_dir(), keep=lambda record: False)


@pytest.fixture
def local_target(db):
    return TargetFactory(name="this host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)


@pytest.fixture
def builds_images(image_settings):
    """Onboarding builds an image (daemonless) and pushes it to the test registry; what the test
    pushed is deleted from the registry, and pulled copies from the engine, when it ends."""
    image_settings("daemonless")


@pytest.fixture
def remove_containers(db, docker_client):
    """Every container made for this test's deployments goes when it ends, passed or failed, and
    then their state volumes."""
    yield
    made = {str(pk) for pk in Deployment.objects.values_list("pk", flat=True)}
    for container in docker_client.containers.list(all=True, filters={"label": f"{MANAGED_BY}={MANAGER}"}):
        if container.labels.get("ai.acumos.deployment.id") in made:
            container.remove(force=True, v=True)
    for volume in docker_client.volumes.list(filters={"label": f"{MANAGED_BY}={MANAGER}"}):
        if (volume.attrs.get("Labels") or {}).get("ai.acumos.deployment.id") in made:
            volume.remove(force=True)


def port_range() -> str:
    """Ports from one the kernel just gave out: the backend skips any that are in use."""
    first = min(free_port(), 65535 - PORT_SPAN)
    return f"{first}-{first + PORT_SPAN}"


def docker_target(docker_host: str, name: str = "private engine", **options) -> Target:
    options = {"docker_host": docker_host, "network": "host", "advertise_host": "127.0.0.1",
               "port_range": port_range(), **options}
    return TargetFactory(name=name, kind=TargetKind.DOCKER, options=options)


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
