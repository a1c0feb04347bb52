"""Image tests run against a real Docker engine and a real registry, which `make test` starts
(scripts/ensure-images.sh writes build/images.env). Containers use host networking and are
removed, with the images and registry tags the test made, when the test ends."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import urllib.request
import uuid
from pathlib import Path

import docker
import pytest

REPO = Path(__file__).resolve().parents[2]
ENV_FILE = REPO / "build" / "images.env"


def _images_env() -> dict[str, str]:
    values = {}
    if ENV_FILE.exists():
        for line in ENV_FILE.read_text().splitlines():
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    values.update({k: v for k, v in os.environ.items() if k.startswith("ACUMOS_TEST_")})
    missing = [k for k in ("ACUMOS_TEST_DOCKER_HOST", "ACUMOS_TEST_REGISTRY", "ACUMOS_TEST_IMAGE_BASE")
               if not values.get(k)]
    if missing:
        pytest.fail(f"image tests need a Docker engine and registry: run `make test` or "
                    f"`bash scripts/ensure-images.sh` first (missing {', '.join(missing)})", pytrace=False)
    return values


@pytest.fixture(scope="session")
def images_env() -> dict[str, str]:
    return _images_env()


@pytest.fixture(scope="session")
def docker_host(images_env) -> str:
    return images_env["ACUMOS_TEST_DOCKER_HOST"]


@pytest.fixture(scope="session")
def registry_host(images_env) -> str:
    return images_env["ACUMOS_TEST_REGISTRY"]


@pytest.fixture(scope="session")
def base_image(images_env) -> str:
    """The runner base image's reference in the test registry."""
    return images_env["ACUMOS_TEST_IMAGE_BASE"]


@pytest.fixture(scope="session")
def wheelhouse(images_env, tmp_path_factory) -> Path:
    """Kept between runs (outside the checkout) so wheels are fetched once per machine."""
    path = Path(images_env.get("ACUMOS_TEST_WHEELHOUSE") or tmp_path_factory.mktemp("wheelhouse"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def docker_client(docker_host):
    client = docker.DockerClient(base_url=docker_host, timeout=300)
    yield client
    client.close()


@pytest.fixture
def unique_repository() -> str:
    """A registry repository name no other test uses."""
    return f"acumos-test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def cleanup_images(docker_client):
    """Register image references to remove from the engine when the test ends."""
    references: list[str] = []
    yield references.append
    for reference in references:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(reference, force=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def run_container(docker_client):
    """`run_container(image, **env)` starts the image with host networking on a free port and
    returns (container, base_url) once /v2/health/ready answers; the container is removed after."""
    started = []

    def run(image: str, admin_token: str = "", timeout: float = 60, **env) -> tuple:
        port = free_port()
        environment = {"RUNNER_HOST": "127.0.0.1", "RUNNER_PORT": str(port), "RUNNER_ADMIN_TOKEN": admin_token, **env}
        container = docker_client.containers.run(image, detach=True, network_mode="host", environment=environment,
                                                 labels={"acumos-test": "1"})
        started.append(container)
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url, container, timeout)
        return container, base_url

    yield run
    for container in started:
        container.remove(force=True)


def wait_ready(base_url: str, container, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        container.reload()
        if container.status == "exited":
            break
        time.sleep(0.2)
    logs = container.logs(tail=40).decode(errors="replace")
    raise AssertionError(f"the container did not become ready at {base_url}:\n{logs}")


def post_json(url: str, body: dict, token: str = "") -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Accept": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
