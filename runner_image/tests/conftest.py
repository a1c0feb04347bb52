"""Fixtures: bundles, an in-process client, and real runner processes on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from runner_image.package import ExtractLimits
from runner_image.runtime import record_seed, seed
from runner_image.server import create_app
from runner_image.settings import Settings, token_sha256
from runner_image.slot import load_slot
from runner_image.state import StateDir

from . import builders

TOKEN = "test-admin-token-7Qm2xKp9vR4w"  # strong enough for a real runner (settings.weak_token_reason)


@pytest.fixture(scope="session")
def iris(tmp_path_factory) -> Path:
    return builders.iris_bundle(tmp_path_factory.mktemp("iris"))


@pytest.fixture(scope="session")
def scale_a(tmp_path_factory) -> Path:
    return builders.scale_bundle(tmp_path_factory.mktemp("scale-a"), 2.0, "A")


@pytest.fixture(scope="session")
def scale_b(tmp_path_factory) -> Path:
    return builders.scale_bundle(tmp_path_factory.mktemp("scale-b"), 3.0, "B")


@pytest.fixture(scope="session")
def text(tmp_path_factory) -> Path:
    return builders.text_bundle(tmp_path_factory.mktemp("text"))


def error_of(response) -> dict:
    """An error answer as {code, message, details}: the house's shape ({"error": {...}}), or the Open
    Inference Protocol's on /v2 ({"error": <message>, "code", "details"}; test_oip_clients checks which is which)."""
    body = response.json()
    if isinstance(body["error"], str):
        return {"code": body["code"], "message": body["error"], "details": body["details"]}
    return body["error"]


def auth(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def runner_client(bundle: Path, state_dir: Path, token: str = TOKEN, **overrides):
    """The real app in-process (lifespan included), seeded from `bundle` like `serve` does."""
    state = StateDir(state_dir)
    generation = seed(state, bundle, ExtractLimits())
    record_seed(state, load_slot(state.generation_dir(generation), generation))
    settings = Settings(state_dir=state_dir, admin_token_sha256=token_sha256(token) if token else "", **overrides)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def make_client(tmp_path):
    counter = iter(range(1000))

    @contextmanager
    def factory(bundle: Path, **kwargs):
        with runner_client(bundle, tmp_path / f"state-{next(counter)}", **kwargs) as client:
            yield client

    return factory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunnerProcess:
    """`python -m runner_image serve` as a real process, stopped and cleaned up by the fixture."""

    def __init__(self, bundle: Path, state_dir: Path, workers: int = 1, token: str | None = TOKEN, env=None, *,
                 grpc_port: int = 0):
        self.port = free_port()
        self.grpc_port = grpc_port  # 0: no gRPC (the serve command's default, 3331, would be shared by every test)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = state_dir.parent / f"runner-{self.port}.log"
        environ = {**os.environ, **(env or {})}
        environ.pop("RUNNER_ADMIN_TOKEN", None)
        if token:
            environ["RUNNER_ADMIN_TOKEN"] = token
        cmd = [sys.executable, "-m", "runner_image", "serve", str(bundle), "--port", str(self.port),
               "--workers", str(workers), "--state-dir", str(state_dir), "--grpc-port", str(grpc_port)]
        self.log = open(self.log_path, "w")  # noqa: SIM115 (open for the process lifetime)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=environ,
                                     start_new_session=True)
        try:
            self.wait_ready(workers)
        except BaseException:  # never ready: stop it here, the fixture does not know of it yet
            self.stop()
            raise

    def wait_ready(self, workers: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runner exited: {self.log_path.read_text()}")
            if self._ready(workers):
                return
            time.sleep(0.1)
        raise RuntimeError(f"runner not ready in {timeout}s: {self.log_path.read_text()}")

    def _ready(self, workers: int) -> bool:
        try:
            response = httpx.get(f"{self.url}/model", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.json()["workers"] >= workers

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


@pytest.fixture
def start_runner(tmp_path):
    started: list[RunnerProcess] = []
    counter = iter(range(1000))

    def factory(bundle: Path, state_dir: Path | None = None, **kwargs) -> RunnerProcess:
        runner = RunnerProcess(bundle, state_dir or tmp_path / f"runner-state-{next(counter)}", **kwargs)
        started.append(runner)
        return runner

    yield factory
    for runner in started:
        runner.stop()


SCALE_FACTOR = {"A": 2.0, "B": 3.0}  # builders.scale_bundle's models in the scale_a and scale_b fixtures


class Load:
    """Threads calling a scale model (scale_a, scale_b) without pause until stopped, keeping every answer as
    (x, answer) and every error: what swaps and candidate changes under load must leave empty."""

    def __init__(self, url: str, threads: int = 6):
        self.url = url
        self.stop = threading.Event()
        self.answers: list[tuple[float, dict]] = []
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, seed: int) -> None:
        x = float(seed * 100_000)
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                x += 1
                self._call(client, x)

    def _call(self, client: httpx.Client, x: float) -> None:
        try:
            response = client.post(f"{self.url}/model/methods/scale", json={"x": x})
        except httpx.HTTPError as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        if response.status_code != 200:
            self.errors.append(f"{response.status_code}: {response.text}")
        else:
            self.answers.append((x, response.json()))

    def tags(self) -> set[str]:
        """Which models answered; each answer checked to be wholly one model's."""
        for x, answer in self.answers:
            assert answer["y"] == x * SCALE_FACTOR[answer["tag"]], answer
        return {answer["tag"] for _, answer in self.answers}

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
