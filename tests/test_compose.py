"""docker-compose.yml runs for real: Debian's docker-compose (v1, scripts/ensure-compose.sh) builds the
portal's Dockerfile and brings the whole stack up on the project's Docker engine (scripts/ensure-images.sh),
every long-running service turns healthy, the iris example is onboarded through the Acumos upload API as the
README documents it and its revision is ready, with its files in the S3 store; then `down -v` takes it all
away, even when a test failed.

No image can be pulled here, so tests/compose/docker-compose.offline.yml (test-only) swaps in stand-ins
built from Debian packages and wheels made on this host (tests/compose/offline-images.sh, cached by hash)
and puts every service on the host's network, at 127.0.0.1 and ports chosen free now. Published ports
mean nothing on the host's network and the engine refuses them there, so they are taken out of the merged
configuration (`docker-compose config`) that the stack is started from; nothing else is changed."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from .waiting import wait_for

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
OFFLINE_FILE = REPO / "tests" / "compose" / "docker-compose.offline.yml"
IMAGES_ENV = REPO / "build" / "images.env"
PORTAL_IMAGE = "acumos-portal:local"  # docker-compose.yml's
LONG_RUNNING = ["postgres", "redis", "minio", "registry", "web", "worker", "beat"]
HEALTHY_SECONDS = 240  # the worker's first ping comes after its 30 s interval
ONBOARDING_SECONDS = 180
# A first run builds the stand-in images (debootstrap, wheels) and the portal's image: minutes.
pytestmark = pytest.mark.timeout(2400)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def docker_host() -> str:
    if not IMAGES_ENV.is_file() or not shutil.which("docker-compose"):
        pytest.fail("the Docker engine or docker-compose is missing: run `make images compose` (make test does)",
                    pytrace=False)
    values = dict(line.split("=", 1) for line in IMAGES_ENV.read_text().splitlines() if "=" in line)
    return values["ACUMOS_TEST_DOCKER_HOST"]


class Stack:
    """One compose project: its own name, secrets, ports and a directory for its files."""

    def __init__(self, directory: Path, images: dict[str, str]):
        self.directory = directory
        self.project = f"acumos-compose-test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_password = secrets.token_urlsafe(16)
        self.env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "DOCKER_HOST": docker_host()}
        self.env_file = directory / "compose.env"
        self.env_file.write_text("".join(f"{key}={value}\n" for key, value in {
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
            "POSTGRES_PASSWORD": secrets.token_hex(16),
            "REDIS_PASSWORD": secrets.token_hex(16),
            "MINIO_ROOT_PASSWORD": secrets.token_hex(16),
            "ACUMOS_ADMIN_PASSWORD": self.admin_password,
            "PORTAL_PORT": self.port,
            "REGISTRY_PORT": free_port(),
            "COMPOSE_TEST_POSTGRES_PORT": free_port(),
            "COMPOSE_TEST_REDIS_PORT": free_port(),
            "COMPOSE_TEST_S3_PORT": free_port(),
            **images,
        }.items()))
        self.config = directory / "docker-compose.resolved.yml"

    def compose(self, *args: str, files: list[Path] | None = None, check: bool = True,
                timeout: float = 1200) -> subprocess.CompletedProcess:
        """docker-compose with only this stack's environment (none of the test process's settings)."""
        chosen = files or [self.config]
        command = ["docker-compose", "--project-name", self.project, "--env-file", str(self.env_file),
                   *[arg for file in chosen for arg in ("-f", str(file))], *args]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                              check=False)
        if check and done.returncode:
            raise AssertionError(f"docker-compose {' '.join(args)} exited with {done.returncode}:\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def resolve(self) -> None:
        """docker-compose.yml with the offline override, as compose merges them, without published ports."""
        merged = yaml.safe_load(self.compose("config", files=[COMPOSE_FILE, OFFLINE_FILE]).stdout)
        for service in merged["services"].values():
            service.pop("ports", None)
        self.config.write_text(yaml.safe_dump(merged, sort_keys=False))

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def health(self, service: str) -> str:
        container = self.container(service)
        if not container:
            return "no container"
        done = subprocess.run(["docker", "inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}",
                               container], env=self.env, capture_output=True, text=True, timeout=30, check=False)
        return done.stdout.strip() or done.stderr.strip()

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40", check=False, timeout=120).stdout[-12000:]

    def image_id(self, reference: str) -> str:
        done = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", reference], env=self.env,
                              capture_output=True, text=True, timeout=60, check=False)
        return done.stdout.strip()

    def leftovers(self) -> list[str]:
        """Containers, volumes and networks of this project still on the engine."""
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind in (["ps", "-a"], ["volume", "ls"], ["network", "ls"]):
            done = subprocess.run(["docker", *kind, "-q", "--filter", label], env=self.env, capture_output=True,
                                  text=True, timeout=60, check=False)
            found += [f"{kind[0]} {line}" for line in done.stdout.split()]
        return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    directory = tmp_path_factory.mktemp("compose")
    env = {**os.environ, "DOCKER_HOST": docker_host(), "PYTHON": sys.executable}
    started = time.monotonic()
    made = subprocess.run(["bash", str(REPO / "tests" / "compose" / "offline-images.sh")], env=env,
                          capture_output=True, text=True, timeout=1800, check=False)
    assert made.returncode == 0, f"the offline images were not made:\n{made.stderr[-4000:]}"
    images = dict(line.split("=", 1) for line in made.stdout.splitlines() if line.startswith("COMPOSE_TEST_"))
    stack = Stack(directory, images)
    stack.resolve()
    try:
        # One build: every portal service runs the same image, and `up` finds it made. The image it
        # replaces is removed (else every run would leave a gigabyte behind on the engine).
        earlier = stack.image_id(PORTAL_IMAGE)
        stack.compose("build", "migrate")
        if earlier and earlier != stack.image_id(PORTAL_IMAGE):
            subprocess.run(["docker", "rmi", earlier], env=stack.env, capture_output=True, timeout=120, check=False)
        built = time.monotonic()
        stack.compose("up", "-d", "--no-build", timeout=600)
        print(f"\ncompose: images and build {built - started:.0f} s, up {time.monotonic() - built:.0f} s")
        yield stack
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.compose("down", "-v", "--remove-orphans", check=False, timeout=300)
        left = stack.leftovers()
        print(f"compose: the whole module took {time.monotonic() - started:.0f} s")
        assert not left, f"`down -v` left these behind: {left}"


def wait_until(predicate, timeout: float, what: str, stack: Stack):
    return wait_for(predicate, timeout, what, interval=1, diagnose=stack.logs)


def test_every_long_running_service_turns_healthy(stack):
    def states():
        found = {service: stack.health(service) for service in LONG_RUNNING}
        return found if all(state == "running healthy" for state in found.values()) else None

    started = time.monotonic()
    wait_until(states, HEALTHY_SECONDS, "every service healthy", stack)
    print(f"\ncompose: every service healthy {time.monotonic() - started:.0f} s after `up`")
    answer = httpx.get(f"{stack.url}/healthz", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok"}


def test_the_web_service_serves_pages_and_static_files_with_gunicorn_and_whitenoise(stack):
    wait_until(lambda: httpx.get(f"{stack.url}/healthz", timeout=5).status_code == 200, HEALTHY_SECONDS,
               "the web service", stack)
    page = httpx.get(f"{stack.url}/", timeout=30)
    assert page.status_code == 200
    assert page.headers["server"].startswith("gunicorn")
    # Collected into the image at build time, compressed there; whitenoise sends the gzip copy when asked.
    css = httpx.get(f"{stack.url}/static/css/portal.css", headers={"Accept-Encoding": "gzip"}, timeout=30)
    assert css.status_code == 200
    assert css.headers["content-encoding"] == "gzip"
    assert css.text == (REPO / "static" / "css" / "portal.css").read_text()


def test_the_example_is_onboarded_through_the_acumos_api_and_its_revision_is_ready(stack, tmp_path):
    wait_until(lambda: stack.health("worker") == "running healthy", HEALTHY_SECONDS, "the worker", stack)
    bundle = tmp_path / "example-iris"
    subprocess.run([sys.executable, str(REPO / "examples" / "iris" / "make_bundle.py"), str(bundle)], check=True,
                   capture_output=True, timeout=300)

    auth = httpx.post(f"{stack.url}/onboarding-app/v2/auth", timeout=30,
                      json={"request_body": {"username": "admin", "password": stack.admin_password}})
    assert auth.status_code == 200, auth.text
    headers = {"Authorization": f"Bearer {auth.json()['jwtToken']}"}
    package = (bundle / "modelpackage.zip").read_bytes()
    files = {"model": ("modelpackage.zip", package),
             "metadata": ("metadata.json", (bundle / "metadata.json").read_bytes()),
             "schema": ("model.proto", (bundle / "model.proto").read_bytes())}
    pushed = httpx.post(f"{stack.url}/onboarding-app/v2/models", files=files, headers=headers, timeout=120)
    assert pushed.status_code == 201, pushed.text
    task, result = pushed.json()["taskId"], pushed.json()["result"]

    def finished():
        job = httpx.get(f"{stack.url}/api/v1/onboarding/jobs/{task}/", headers=headers, timeout=30).json()
        return job if job["status"] in ("succeeded", "failed") else None

    job = wait_until(finished, ONBOARDING_SECONDS, "the onboarding job", stack)
    steps = {step["name"]: step["status"] for step in job["steps"]}
    assert job["status"] == "succeeded", json.dumps(job, indent=1)[-4000:]
    # What compose leaves off, said on the step: the smoke test (no sandbox in an unprivileged
    # container) and the image build (no builder configured).
    assert steps["smoke_test"] == "skipped"

    revision = httpx.get(f"{stack.url}/api/v1/revisions/{result['revisionId']}", headers=headers, timeout=30).json()
    assert revision["status"] == "ready"
    # The model package went to the S3 store and comes back byte for byte.
    artifacts = httpx.get(stack.url + revision["artifacts"], headers=headers, timeout=30).json()
    listed = artifacts["results"] if isinstance(artifacts, dict) else artifacts
    model = next(artifact for artifact in listed if artifact["kind"] == "MI" and artifact["file_name"].endswith(".zip"))
    assert model["sha256"] == hashlib.sha256(package).hexdigest()
    download = httpx.get(stack.url + model["download"], headers=headers, timeout=60, follow_redirects=True)
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == model["sha256"]


def test_it_refuses_to_start_without_each_secret(tmp_path):
    """No default passwords: compose stops at once, naming what to set."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    secrets_needed = ["DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "MINIO_ROOT_PASSWORD"]
    for missing in secrets_needed:
        env_file = tmp_path / f"without-{missing}.env"
        env_file.write_text("".join(f"{name}=set-{name.lower()}\n" for name in secrets_needed if name != missing))
        done = subprocess.run(["docker-compose", "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
                              env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode != 0
        assert f"set {missing} in .env" in done.stderr
