"""Send a background task: to Celery when a broker is configured, else to a thread pool in this
process. Either way the task runs after the current transaction commits, and takes ids only."""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connection, connections, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

log = logging.getLogger(__name__)
_lock = threading.Lock()
_state: dict[str, ThreadPoolExecutor] = {}


def enqueue(task, *args) -> None:
    transaction.on_commit(lambda: _send_committed(task, args))


def _send_committed(task, args) -> None:
    """The rows are committed when this runs: a broker that is down must not turn the request into
    an error (whose cleanup would delete the files of a job that exists). The job stays pending
    and the reaper (onboarding.pipeline.reap_stale_jobs) sends it again."""
    try:
        send(task, *args)
    except KombuOperationalError:
        log.exception("could not send %s%s to the broker; the reaper will send it again", task.name, args)


def send(task, *args) -> None:
    if settings.CELERY_BROKER_URL:
        task.apply_async(args=args)
    else:
        _pool().submit(_run_in_thread, task, args)


def embedded() -> bool:
    return not settings.CELERY_BROKER_URL


def _pool() -> ThreadPoolExecutor:
    with _lock:
        if "executor" not in _state:
            _state["executor"] = ThreadPoolExecutor(max_workers=2, thread_name_prefix="acumos-job")
        return _state["executor"]


def shutdown() -> None:
    """Wait for the jobs on this process's thread pool to end, and drop the pool (the next job
    makes a new one): tests call it before their database goes."""
    with _lock:
        executor = _state.pop("executor", None)
    if executor is not None:
        executor.shutdown(wait=True, cancel_futures=False)


def _run_in_thread(task, args) -> None:
    close_old_connections()
    try:
        task.apply(args=args, throw=False)
    except Exception:  # the task records its own failure; this only keeps the pool alive
        log.exception("background task %s failed", task.name)
    finally:
        # Pool threads live long and are few: hold no connection between jobs (a held one also
        # keeps a test database from being dropped).
        connections.close_all()


@contextlib.contextmanager
def keep_alive(rows, on_exit=None):
    """Keep `rows.heartbeat` fresh while a long piece of work runs, so the reaper only takes work
    whose worker is gone, not work that is merely long (hashing gigabytes, a slow build)."""
    stop = threading.Event()
    interval = max(0.5, settings.ACUMOS_JOB_STALE_SECONDS / 4)

    def beat() -> None:
        try:
            while not stop.wait(interval):
                rows.update(heartbeat=timezone.now())
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        if on_exit is not None:
            on_exit()
