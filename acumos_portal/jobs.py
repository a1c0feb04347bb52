"""Send a background task: to Celery when a broker is configured, else to thread pools in this
process. Either way the task runs after the current transaction commits, and takes ids only.

Tasks that run a user's model (`runs_model=True` on the task) get workers of their own, so a slow
model never holds quick work: their own thread pool (ACUMOS_MODEL_THREADS) here, and with Celery
the queue ACUMOS_MODEL_QUEUE when it is set (then a worker must consume it). How many of one user's
models run at once is decided by the pipeline when it claims a step (onboarding.pipeline)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, connections, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

log = logging.getLogger(__name__)
QUICK_THREADS = 2
MODELS, QUICK = "models", "quick"
# Reentrant: a timer that fires submits its task (which makes a pool) under the lock, so that
# shutdown() never misses a task between its timer and its pool.
_lock = threading.RLock()
_pools: dict[str, ThreadPoolExecutor] = {}
_timers: set[threading.Timer] = set()


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


def send(task, *args, countdown: float = 0) -> None:
    """Run `task(*args)` in the background, at once or in `countdown` seconds."""
    if settings.CELERY_BROKER_URL:
        queue = settings.ACUMOS_MODEL_QUEUE if runs_model(task) else ""
        task.apply_async(args=args, countdown=countdown or None, **({"queue": queue} if queue else {}))
    elif countdown:
        _later(countdown, task, args)
    else:
        _submit(task, args)


def embedded() -> bool:
    return not settings.CELERY_BROKER_URL


def runs_model(task) -> bool:
    return getattr(task, "runs_model", False)


def _submit(task, args) -> None:
    _pool(MODELS if runs_model(task) else QUICK).submit(_run_in_thread, task, args)


def _pool(lane: str) -> ThreadPoolExecutor:
    with _lock:
        if lane not in _pools:
            size = max(1, settings.ACUMOS_MODEL_THREADS) if lane == MODELS else QUICK_THREADS
            _pools[lane] = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"acumos-{lane}")
        return _pools[lane]


def _later(delay: float, task, args) -> None:
    """A timer, not a sleeping pool thread: a task that waits holds no worker."""

    def fire() -> None:
        with _lock:
            if timer in _timers:  # not dropped by shutdown() meanwhile
                _timers.discard(timer)
                _submit(task, args)

    timer = threading.Timer(delay, fire)
    timer.daemon = True
    with _lock:
        _timers.add(timer)
    timer.start()


def shutdown() -> None:
    """Wait for the jobs running or queued on this process's threads, and drop the pools (the next
    job makes new ones): tests call it before their database goes. Tasks put off to later are
    dropped: their rows stay pending, and the reaper sends them again, as after a restart."""
    while True:
        with _lock:
            pools = list(_pools.values())
            _pools.clear()
            for timer in _timers:
                timer.cancel()
            _timers.clear()
        if not pools:
            return
        for pool in pools:  # a running task may send the next one meanwhile: hence the loop
            pool.shutdown(wait=True, cancel_futures=False)


def _forget_pools_in_child() -> None:
    """A forked child (a server that loads the app, then forks its workers) has none of its parent's
    threads: its pools and timers are the parent's, and must not be used. The lock is held across
    the fork, so the child never copies it taken by a thread it does not have."""
    _pools.clear()
    _timers.clear()
    _lock.release()


os.register_at_fork(before=_lock.acquire, after_in_parent=_lock.release, after_in_child=_forget_pools_in_child)


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
                try:
                    rows.update(heartbeat=timezone.now())
                except DatabaseError:  # busy or gone for a moment: the next beat tries again
                    log.warning("heartbeat missed", exc_info=True)
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


# ---------------------------------------------------------------- which process runs a job

def this_process() -> str:
    """This process as a claimant of work: host, pid and the pid's start time (a pid the kernel
    gives again later is another process)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def process_gone(claimant: str) -> bool:
    """True if `claimant` (this_process() of whoever claimed some work) was a process of this host
    that has ended; False while it runs, and for another host's (only its heartbeat tells)."""
    try:
        host, pid, started = claimant.rsplit(":", 2)
    except ValueError:  # not claimed (an older row): nothing to tell
        return False
    return host == socket.gethostname() and (not pid.isdigit() or _start_time(int(pid)) != started)


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat, field 22); "" if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return fields[19] if fields[0] != "Z" else ""  # a zombie has ended
