"""The embedded default: the runner as a process on this host, in its own session, serving a copy
of the bundle from the deployment's directory. Its state directory keeps the swap history, so a
stopped deployment starts again serving what it served last."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings

from deployment.backends.base import BackendError, Placement

READY_TIMEOUT = 60


class LocalBackend:
    kind = "local"

    def __init__(self, options: dict):
        self.host = options.get("host", "127.0.0.1")
        self.workers = int(options.get("workers", 1))

    def folder(self, deployment) -> Path:
        return Path(settings.ACUMOS_DEPLOYMENTS_DIR) / str(deployment.pk)

    def start(self, deployment, bundle: Path, admin_token: str) -> Placement:
        served = self.folder(deployment) / "bundle"
        shutil.rmtree(served, ignore_errors=True)
        shutil.copytree(bundle, served)
        return self.restart(deployment, admin_token)

    def restart(self, deployment, admin_token: str) -> Placement:
        folder = self.folder(deployment)
        port = deployment.handle.get("port") or _free_port(self.host)
        process = self._spawn(folder, port, admin_token)
        url = f"http://{self.host}:{port}"
        _wait_ready(url, process, folder / "runner.log")
        return Placement(url, {"pid": process.pid, "port": port})

    def _spawn(self, folder: Path, port: int, admin_token: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "runner_image", "serve", str(folder / "bundle"), "--host", self.host,
                   "--port", str(port), "--workers", str(self.workers), "--state-dir", str(folder / "state")]
        environment = {**os.environ, "RUNNER_ADMIN_TOKEN": admin_token}
        with open(folder / "runner.log", "ab") as log:
            # Its own session: it outlives the worker that started it, and stops as a group.
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                    start_new_session=True, cwd=folder)

    def is_running(self, deployment) -> bool:
        pid = deployment.handle.get("pid")
        return bool(pid) and _alive(pid)

    def admin_urls(self, deployment) -> list[str]:
        return [deployment.endpoint_url]

    def stop(self, deployment) -> None:
        pid = deployment.handle.get("pid")
        if not pid or not _alive(pid):
            return
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)

    def destroy(self, deployment) -> None:
        self.stop(deployment)
        shutil.rmtree(self.folder(deployment), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)  # reaps it if it was our child and has exited
        if finished:
            return False
    except ChildProcessError:
        pass  # not our child (started by another worker): ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _wait_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BackendError(f"the runner exited with status {process.returncode}: {_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise BackendError(f"the runner did not become ready at {url} in {READY_TIMEOUT} s: {_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else ""
