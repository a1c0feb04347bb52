"""The portal started the way `make run` starts it, for the tests that need the real thing: a server
process on SQLite in a data directory of its own, background jobs on threads in it, smoke tests in the
sandbox, the scheduler (`run_schedule`) beside it.

The commands are the Makefile's `run` target's, one function each (start_up_commands,
scheduler_command, server_command): change them together."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
READY_SECONDS = 60
# What the test process's own environment says about its database, broker and data (PostgreSQL, a
# data dir of the test run's): none of it may reach the portal, which must run on its defaults.
OWN_PREFIXES = ("ACUMOS_", "CELERY_", "DATABASE_", "DJANGO_")


def start_up_commands() -> list[list[str]]:
    """What `make run` runs before it serves, in order."""
    return [[PYTHON, "manage.py", "migrate", "--noinput"],
            [PYTHON, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
            [PYTHON, "manage.py", "bootstrap"],
            [PYTHON, "manage.py", "reap_jobs"],
            [PYTHON, "manage.py", "sweep_sandboxes"],
            [PYTHON, "manage.py", "welcome"]]


def scheduler_command() -> list[str]:
    """The periodic jobs, beside the server (the embedded stand-in for celery beat)."""
    return [PYTHON, "manage.py", "run_schedule"]


def server_command(port: int) -> list[str]:
    """The web server `make run` starts (it also runs the background jobs, on threads): gunicorn with the
    repository's configuration, on this port instead of ACUMOS_WEB_BIND's (the command line wins)."""
    return [PYTHON, "-m", "gunicorn", "-c", "acumos_portal/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
            "acumos_portal.wsgi"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Portal:
    """One portal on `data_dir`. start() runs what `make run` runs; crash() kills the server as the
    OOM killer or a power cut would; start() again is a restart on the same data."""

    def __init__(self, data_dir: Path, **env: str):
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
        self.env.update({"DJANGO_SETTINGS_MODULE": "acumos_portal.settings", "ACUMOS_DATA_DIR": str(self.data_dir),
                         "ACUMOS_ADMIN_PASSWORD": "admin-password-for-tests", "PYTHONUNBUFFERED": "1",
                         "ACUMOS_HOOK_PORTAL_URL": self.url, **env})  # where a hook's receiver pushes back
        # Not in the data directory: a test may fill that disk, and the log must still be written.
        handle, name = tempfile.mkstemp(prefix="acumos-portal-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        self.server: subprocess.Popen | None = None
        self.scheduler: subprocess.Popen | None = None

    # ------------------------------------------------------------ running it

    def start(self) -> None:
        for command in start_up_commands():
            self._run(command)
        self.scheduler = self._spawn(scheduler_command())
        self.server = self._spawn(server_command(self.port))
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"the portal exited with {self.server.returncode}\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/accounts/login/", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the portal did not answer within {READY_SECONDS} s\n{self.tail()}")

    def crash(self) -> None:
        """SIGKILL the server's processes at once, as a power cut or the OOM killer would (its model
        processes die with it: the sandbox's PDEATHSIG); then stop the scheduler, as `make run`'s
        trap does when the server is gone."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.server.pid, signal.SIGKILL)
        self.server.wait(timeout=10)
        _stop(self.scheduler)

    def stop(self) -> None:
        for process in (self.server, self.scheduler):
            if process is not None:
                _stop(process)

    def end_sandboxes(self) -> None:
        """Stop every sandbox this portal's data directory records (its local deployments' runners outlive a
        restart of the portal, as they should: a test that ends must not leave them running)."""
        self.python("from acumos_portal import sandbox\n"
                    "records = sandbox.records_dir()\n"
                    "for record in sandbox.all_records(records):\n"
                    "    sandbox.stop(record, records=records, grace=2)")

    def manage(self, *args: str) -> str:
        """A manage.py command on this portal's data (its stdout)."""
        return self._run([PYTHON, "manage.py", *args])

    def python(self, code: str) -> str:
        """Python code run with this portal's settings and database (`manage.py shell -c`)."""
        return self.manage("shell", "--no-imports", "-c", code)

    # ------------------------------------------------------------ its users

    def user_with_token(self, username: str) -> str:
        """A user (a data scientist) and the `Authorization` header its API token makes."""
        return self.users_with_tokens(username)[0]

    def users_with_tokens(self, *usernames: str) -> list[str]:
        """Users and the `Authorization` header each one's API token makes, in one manage.py run."""
        tokens = self.python(
            "from acumos_portal.accounts import services; from acumos_portal.accounts.models import User\n"
            f"for name in {list(usernames)!r}:\n"
            "    user = User.objects.filter(username=name).first() or "
            "User.objects.create_user(name, name + '@example.com', 'not-used-by-the-tests')\n"
            "    print(services.token_create(user=user, name='tests')[1])").split()
        return [f"{name}:{token}" for name, token in zip(usernames, tokens[-len(usernames):], strict=True)]

    # ------------------------------------------------------------ what it said

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 60) -> str:
        return "portal log (tail):\n" + "\n".join(self.log().splitlines()[-lines:])

    def _run(self, command: list[str]) -> str:
        done = subprocess.run(command, check=False, cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=120)
        with open(self.log_path, "a") as log:
            log.write(f"$ {' '.join(command[1:])}\n{done.stdout}{done.stderr}")
        if done.returncode:
            raise RuntimeError(f"{' '.join(command[1:])} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
        return done.stdout

    def _spawn(self, command: list[str]) -> subprocess.Popen:
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)


def _stop(process: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the process's group, then SIGKILL it; always reaps the process."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def running_portal(data_dir: Path | None = None, **env: str) -> Iterator[Portal]:
    """A portal started as `make run` starts it, on `data_dir` (else a new temporary directory,
    removed afterwards); stopped, whatever happens."""
    made = data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="acumos-portal-")) if made else data_dir
    portal = Portal(data_dir, **env)
    try:
        portal.start()
        yield portal
    finally:
        portal.stop()
        portal.end_sandboxes()
        if made:
            shutil.rmtree(data_dir, ignore_errors=True)
        portal.log_path.unlink(missing_ok=True)
