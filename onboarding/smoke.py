"""Smoke test: start the runner on the bundle in its own process and call it with its samples.

The portal never loads a user's model itself: this runner process does, with memory and CPU
limits, on a free localhost port, and it is killed afterwards whatever happens."""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from runner_image.package import read_manifest_from_zip

MEMORY_LIMIT = 4 << 30
CPU_SECONDS = 600


class SmokeFailed(Exception):
    def __init__(self, message: str, log_tail: str = ""):
        super().__init__(message)
        self.log_tail = log_tail


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()  # loaded here, not in the child: a forked child should only make plain calls
PR_SET_PDEATHSIG = 1


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    # The runner has its own session, so a worker that is killed (OOM, SIGKILL) would leave it
    # serving for ever: on Linux the kernel kills it when the thread that started it dies.
    if _LIBC is not None and sys.platform.startswith("linux"):
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run(bundle: Path, workdir: Path, timeout: float) -> str:
    samples = read_manifest_from_zip(bundle / "modelpackage.zip").samples
    port = _free_port()
    log_path = workdir / "runner.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNNER_", "DJANGO_", "DATABASE_", "AWS_"))}
    cmd = [sys.executable, "-m", "runner_image", "serve", str(bundle), "--host", "127.0.0.1", "--port", str(port),
           "--state-dir", str(workdir / "state")]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                                start_new_session=True, preexec_fn=_limits)  # noqa: PLW1509 (limits only)
    try:
        _wait_ready(proc, port, timeout, log_path)
        return _call_samples(port, samples, log_path)
    finally:
        _stop(proc)


def _tail(log_path: Path, lines: int = 30) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def _wait_ready(proc, port: int, timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SmokeFailed(f"the runner could not start the model:\n{_tail(log_path, 8)}", _tail(log_path))
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise SmokeFailed(f"the runner did not become ready within {timeout:.0f}s", _tail(log_path))


def _call_samples(port: int, samples: dict, log_path: Path) -> str:
    if not samples:
        return "the runner loaded the model; the package has no sample to call it with\n"
    lines = []
    for method, sample in samples.items():
        answer = _post(port, method, sample, log_path)
        lines.append(f"{method}({json.dumps(sample)}) -> {answer}")
    return "runner loaded the model and answered its samples:\n" + "\n".join(lines) + "\n"


def _post(port: int, method: str, sample: dict, log_path: Path) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/model/methods/{method}", method="POST",
                                     data=json.dumps(sample).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read().decode()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        raise SmokeFailed(f"the model failed its sample for {method!r}: {body}", _tail(log_path)) from exc


def _stop(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
