"""The embedded default: the runner as a process on this host, in the sandbox (acumos_portal.sandbox),
serving a copy of the bundle from the deployment's directory. The model sees its bundle read-only
and its state directory (the swap history, so a stopped deployment starts again serving what it
served last); nothing else of the host, no other deployment, and no network but its own loopback,
on which pasta forwards the served port from this host's loopback.

Target options: host (a loopback address: 127.0.0.1 by default, or ::1), workers, cpus (a CPU share,
default ACUMOS_SANDBOX_CPUS), memory_mb (default ACUMOS_SANDBOX_MEMORY_MB). A local runner is reached
from this host only: to serve other hosts, put a proxy in front or use a docker or kubernetes target."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings

from acumos_portal import sandbox
from deployment.backends.base import BackendError, Placement
from deployment.bundle import runner_environment
from marketplace import downloads
from runner_image.settings import token_sha256

READY_TIMEOUT = 60
STOP_GRACE = 15
BUNDLE = "/model"
OPTIONS = ("host", "workers", "cpus", "memory_mb")


class LocalBackend:
    kind = "local"
    uses_secret = False

    def __init__(self, options: dict):
        self.check_options(options)
        host = options.get("host", "127.0.0.1")
        self.host = "127.0.0.1" if host == "localhost" else host
        self.workers = int(options.get("workers", 1))
        self.cpus = options.get("cpus", settings.ACUMOS_SANDBOX_CPUS) or None
        self.memory_mb = options.get("memory_mb")

    @staticmethod
    def check_options(options: dict) -> None:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise BackendError(f"unknown option {unknown[0]!r} for a local target: allowed are {', '.join(OPTIONS)}")
        host = options.get("host", "127.0.0.1")
        if not _loopback(host):
            raise BackendError(f"host {host!r}: a local runner listens on this host's loopback only "
                               "(127.0.0.1 or ::1); to serve other hosts put a proxy in front of it, or use a docker "
                               "or kubernetes target")
        workers = options.get("workers", 1)
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 16:
            raise BackendError(f"workers {workers!r} must be a whole number from 1 to 16")
        cpus = options.get("cpus", 1)
        if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not 0.05 <= cpus <= 256:
            raise BackendError(f"cpus {cpus!r} must be a number of CPUs, e.g. 0.5 or 2")
        memory = options.get("memory_mb", 256)
        if isinstance(memory, bool) or not isinstance(memory, int) or not 64 <= memory <= 1 << 20:
            raise BackendError(f"memory_mb {memory!r} must be a whole number of MiB, at least 64")

    def folder(self, deployment) -> Path:
        return Path(settings.ACUMOS_DEPLOYMENTS_DIR) / str(deployment.pk)

    def start(self, deployment, bundle: Path, admin_token: str) -> Placement:
        served = self.folder(deployment) / "bundle"
        shutil.rmtree(served, ignore_errors=True)
        shutil.copytree(bundle, served)
        return self.restart(deployment, admin_token)

    def restart(self, deployment, admin_token: str) -> Placement:
        folder = self.folder(deployment)
        _move_old_state(folder)
        port = deployment.handle.get("port") or _free_port(self.host)
        spec = self._spec(deployment, folder, port, admin_token)
        try:
            process, record = sandbox.start(spec, records=sandbox.records_dir(), log=folder / "runner.log")
        except sandbox.Unavailable as exc:
            raise BackendError(f"the local target refuses to start a runner: {exc}") from exc
        url = f"http://{_url_host(self.host)}:{port}"
        try:
            _wait_ready(url, process, folder / "runner.log")
            _check_ours(url, admin_token)  # its port is the one it had: another process may hold it now
        except BackendError:
            sandbox.stop(record, records=sandbox.records_dir(), grace=0)
            raise
        return Placement(url, {"pid": record.pid, "port": port, "sandbox": record.name})

    def _spec(self, deployment, folder: Path, port: int, admin_token: str) -> sandbox.Spec:
        inside = "::1" if ":" in self.host else "127.0.0.1"
        # No gRPC: every local runner shares the host's ports, and one fixed gRPC port (3331) cannot be theirs
        # all; the portal does not give out a second port per deployment yet (README, gRPC).
        command = [sandbox.python(), "-m", "runner_image", "serve", BUNDLE, "--host", inside, "--port", str(port),
                   "--grpc-port", "0", "--workers", str(self.workers), "--state-dir", f"{sandbox.WORK}/state"]
        limits = sandbox.configured_limits(cpus=self.cpus, memory_bytes=self.memory_mb and self.memory_mb << 20)
        # Only the token's hash: the model runs in the runner's process and could read a token. A licensed
        # model deployed by a licensee is metered: its runner refuses predictions until it holds an entitlement.
        environment = {**runner_environment(deployment),
                       "RUNNER_ADMIN_TOKEN_SHA256": token_sha256(admin_token)}
        return sandbox.Spec(name=sandbox_name(deployment), command=command, directory=folder,
                            read_only={BUNDLE: folder / "bundle"}, environment=environment, limits=limits,
                            port=port, listen_host=self.host, ends_with_starter=False,
                            network=settings.ACUMOS_SANDBOX_NETWORK)

    def _record(self, deployment) -> sandbox.Record | None:
        return sandbox.load(sandbox.records_dir(), deployment.handle.get("sandbox") or sandbox_name(deployment))

    def is_running(self, deployment) -> bool:
        record = self._record(deployment)
        if record is None and _legacy_pid(deployment):
            return True  # started before the sandbox existed: stop and start it to sandbox it
        return record is not None and record.alive()

    def admin_urls(self, deployment) -> list[str]:
        return [deployment.endpoint_url]

    def stop(self, deployment) -> None:
        record = self._record(deployment)
        if record is not None:
            sandbox.stop(record, records=sandbox.records_dir(), grace=STOP_GRACE)
        elif pid := _legacy_pid(deployment):
            _stop_legacy(pid)

    def destroy(self, deployment) -> None:
        self.stop(deployment)
        shutil.rmtree(self.folder(deployment), ignore_errors=True)


@contextlib.contextmanager
def serving(revision, purpose: str):
    """A runner of `revision` in the sandbox for as long as the block lasts, with no deployment behind it (a batch
    job over a revision): yields its URL on this host's loopback. Its workspace and sandbox are temporary and
    this process's (named `<purpose>-<random>`, never `runner-`): the minute's sweep leaves them while this
    process lives and removes them once it is gone (a worker killed mid-job), and the block's end removes them
    at once. Nobody is given its admin token: it serves predictions only. BackendError when it does not start
    (the message ends with the runner's log); sandbox.Unavailable when this host cannot sandbox."""
    directory = sandbox.workspace(sandbox.workspaces_dir(), purpose)
    record = process = None
    token = secrets.token_urlsafe(32)
    try:
        downloads.write_bundle(list(revision.artifacts.select_related("blob")), directory / "bundle")
        port = _free_port("127.0.0.1")
        command = [sandbox.python(), "-m", "runner_image", "serve", BUNDLE, "--host", "127.0.0.1", "--port",
                   str(port), "--grpc-port", "0", "--workers", "1", "--state-dir", f"{sandbox.WORK}/state"]
        spec = sandbox.Spec(name=directory.name, command=command, directory=directory,
                            read_only={BUNDLE: directory / "bundle"}, port=port,
                            environment={"RUNNER_ADMIN_TOKEN_SHA256": token_sha256(token)},
                            limits=sandbox.configured_limits(cpus=settings.ACUMOS_SANDBOX_CPUS or None),
                            network=settings.ACUMOS_SANDBOX_NETWORK)
        log = directory / sandbox.OUTPUT
        process, record = sandbox.start(spec, records=sandbox.records_dir(), log=log, temporary=True)
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, process, log)
        _check_ours(url, token)
        yield url
    finally:
        if record is not None:
            sandbox.stop(record, records=sandbox.records_dir(), grace=STOP_GRACE)
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def _legacy_pid(deployment) -> int | None:
    """A runner this portal started before the sandbox (its handle has a pid and no sandbox): its
    process group, if a runner still leads it."""
    pid = deployment.handle.get("pid")
    if not pid or deployment.handle.get("sandbox"):
        return None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if b"runner_image" in command and b"serve" in command else None


def _stop_legacy(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _move_old_state(folder: Path) -> None:
    """A deployment made before the sandbox kept its state in <folder>/state; the sandbox's own
    directory is <folder>/work, so it moves there and the runner resumes what it served."""
    old, new = folder / "state", folder / "work" / "state"
    if old.is_dir() and not new.exists():
        new.parent.mkdir(parents=True, exist_ok=True)
        old.rename(new)


def sandbox_name(deployment) -> str:
    return f"runner-{deployment.pk.hex}"


def deployment_id_of(record: sandbox.Record) -> str | None:
    """The deployment a sandbox serves, from its name (None for a sandbox that is no runner)."""
    prefix = "runner-"
    return record.name[len(prefix):] if record.name.startswith(prefix) else None


def _loopback(host) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
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
    raise BackendError(f"the runner did not become ready at {url} in {READY_TIMEOUT} s: {_tail(log)}")


def _check_ours(url: str, token: str) -> None:
    """The server that answered on the port is the runner just started, not another process that took the port
    between _free_port and the runner's bind: only ours knows this token (an admin read: 200, or 404 with no
    candidate; any other server says 401, or something else)."""
    request = urllib.request.Request(f"{url}/model/candidate", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5):
            return
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return
        raise BackendError(f"another server answers on {url} (HTTP {exc.code} to the runner's own token): the port "
                           "was taken before the runner bound it; try again") from None
    except OSError as exc:
        raise BackendError(f"the runner at {url} stopped answering: {exc}") from None


def _tail(log: Path, size: int = 2000) -> str:
    """The end of the runner's log (which the model writes to: it may be a gigabyte)."""
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, handle.seek(0, 2) - size))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""
