"""Integration fixtures: a real Celery worker on Redis against the pytest-django test database,
and an S3-compatible store (moto_server). Every process started here runs in its own process
group and is killed at teardown; the Redis database is flushed before and after each test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.db import connection
from kombu import pools

from acumos_portal.celery import app as celery_app

from ..conftest import REPO
from ..waiting import wait_for  # noqa: F401  (the integration tests import it from here)

VENV_BIN = Path(sys.executable).parent
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Redis databases these tests may use, one per running test: each is claimed with a lock key, so
# two test runs on one machine (or in one tree) never flush or consume each other's tasks.
REDIS_DBS = range(11, 16)
REDIS_LOCK = "acumos-tests:lock"
WORKER_READY_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it; always reaps the process."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            proc.wait()


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


# ---------------------------------------------------------------- Redis and the Celery app

def reset_celery_connections() -> None:
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
    celery_app._pool = None
    if "amqp" in celery_app.__dict__:
        celery_app.amqp._producer_pool = None
    pools.reset()


def _claim_redis_db() -> redis.Redis:
    for db in REDIS_DBS:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
        if client.set(REDIS_LOCK, os.getpid(), nx=True, ex=3600):
            return client
        client.close()
    pytest.fail(f"every Redis database in {list(REDIS_DBS)} is in use by another test run")


@pytest.fixture
def redis_broker():
    """A Redis database of its own, empty, as broker URL; flushed again afterwards."""
    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT).ping()
    except redis.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379: run `bash scripts/ensure-services.sh`")
    client = _claim_redis_db()
    db = client.connection_pool.connection_kwargs["db"]
    for key in client.scan_iter():  # what a crashed run left (its lock has expired), all but our lock
        if key != REDIS_LOCK.encode():
            client.delete(key)
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    client.flushdb()  # the lock goes with it
    client.close()


@pytest.fixture
def celery_broker(settings, redis_broker):
    """This process sends tasks to Redis (as the portal does when CELERY_BROKER_URL is set)."""
    previous = celery_app.conf.broker_url
    settings.CELERY_BROKER_URL = redis_broker
    celery_app.conf.broker_url = redis_broker
    reset_celery_connections()
    yield redis_broker
    reset_celery_connections()
    celery_app.conf.broker_url = previous


# ---------------------------------------------------------------- the worker

def database_url() -> str:
    """The pytest-django test database (test_<name>), as a DATABASE_URL for another process."""
    db = connection.settings_dict
    user = quote(db.get("USER") or "")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class Worker:
    """One `celery worker` process (solo pool: the task runs in this very process)."""

    def __init__(self, proc: subprocess.Popen, log_path: Path):
        self.proc, self.log_path = proc, log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "worker log (tail):\n" + "\n".join(self.log().splitlines()[-lines:])

    def wait_ready(self) -> None:
        def ready():
            if self.proc.poll() is not None:
                pytest.fail(f"the celery worker exited with {self.proc.returncode}\n{self.tail()}")
            return " ready." in self.log()

        wait_for(ready, WORKER_READY_SECONDS, "the celery worker to be ready", diagnose=self.tail)

    def kill(self) -> None:
        """SIGKILL the worker process alone, as the OOM killer would (not its group)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def start_worker(transactional_db, settings, celery_broker, artifact_storage, tmp_path):
    """`start_worker(queues="celery", **env)` starts a worker on the test database, the Redis db and
    this test's artifact directory (ACUMOS_DATA_DIR/artifacts is the `artifact_storage` location)."""
    if connection.vendor != "postgresql":
        pytest.fail(f"a worker process cannot share this test database ({connection.vendor}): the tests must run on "
                    "PostgreSQL, and DATABASE_URL must be set before pytest-django loads the settings")
    data_dir = artifact_storage.parent
    assert artifact_storage == data_dir / "artifacts"
    temp_dir = tmp_path / "worker-tmp"
    settings.ACUMOS_SANDBOX_DIR = tmp_path / "sandboxes"  # the workers' and this test's: smoke-test workspaces
    temp_dir.mkdir()
    workers: list[Worker] = []

    def start(queues: str = "celery", **extra_env: str) -> Worker:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "ACUMOS_", "DATABASE_"))}
        env.update({
            "DJANGO_SETTINGS_MODULE": "acumos_portal.settings",
            "DATABASE_URL": database_url(),
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "CELERY_BROKER_URL": celery_broker,
            "ACUMOS_DATA_DIR": str(data_dir),
            "ACUMOS_SANDBOX_DIR": str(settings.ACUMOS_SANDBOX_DIR),
            "ACUMOS_SMOKE_TIMEOUT": str(settings.ACUMOS_SMOKE_TIMEOUT),
            "TMPDIR": str(temp_dir),
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        })
        log_path = tmp_path / f"worker-{len(workers) + 1}.log"
        cmd = [str(VENV_BIN / "celery"), "-A", "acumos_portal", "worker", "--pool=solo", "--concurrency=1",
               "--without-gossip", "--without-mingle", "-Q", queues, "--loglevel=INFO",
               "-n", f"test-worker-{len(workers) + 1}@%h"]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        worker = Worker(proc, log_path)
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:  # before pytest-django flushes the tables the workers write to
        worker.stop()


# ---------------------------------------------------------------- S3 (moto_server)

@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        def up():
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited:\n{log_path.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_for(up, 30, "moto_server to listen", interval=0.1)
        yield endpoint
    finally:
        stop_process(proc)
