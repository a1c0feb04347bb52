"""A second image registry for tests that need two: a throwaway `docker-registry serve` (the Debian
package scripts/ensure-docker.sh installs) on a free 127.0.0.1 port, with its storage in a temporary
directory. Written like scripts/ensure-docker.sh's registry; stopped and removed when the test is done.

    with throwaway_registry() as host:   # "127.0.0.1:PORT"
        ..."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

READY_SECONDS = 30


@contextlib.contextmanager
def throwaway_registry() -> Iterator[str]:
    """Start a registry of its own and yield its host ("127.0.0.1:PORT"); delete is enabled, so tests
    can remove manifests. On exit the process is stopped and its directory deleted."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry is not installed: run `bash scripts/ensure-docker.sh` first")
    root = Path(tempfile.mkdtemp(prefix="acumos-registry-"))
    host = f"127.0.0.1:{_free_port()}"
    try:
        with _serving(binary, root, host):
            yield host
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _serving(binary: str, root: Path, host: str) -> Iterator[None]:
    config = root / "registry.yml"
    config.write_text(_config(root / "storage", host))
    with (root / "registry.log").open("wb") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    try:
        _wait_ready(process, host, root / "registry.log")
        yield
    finally:
        _stop(process)


def _config(storage: Path, host: str) -> str:
    return (f"version: 0.1\n"
            f"log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {host}\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(process: subprocess.Popen, host: str, log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"http://{host}/v2/", timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    state = "exited" if process.poll() is not None else f"did not answer in {READY_SECONDS}s"
    raise RuntimeError(f"the throwaway registry on {host} {state}:\n{log.read_text(errors='replace')[-2000:]}")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
