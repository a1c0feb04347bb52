"""How a background job runs, fails, retries and is reaped: the one answer, for every kind of job.

A job is a row (acumos_portal.models.JobRow: onboarding jobs, image builds, deployment operations)
and a task that takes its id. The task is sent after the transaction that made the row commits: to
Celery when a broker is configured, else to thread pools in this process. The task claims the row
with a conditional update (`claim`: a duplicate delivery does nothing), runs the work with a
heartbeat (`run_claimed`), retries a transient error with a bound (the task's retries, then the
reaper's, counted in the row's `attempts`), records a permanent one with its reason, and turns any
other exception into a failure with an error id. Each kind registers itself (`JobKind`, in its
app's `apps.py`); one reaper (`reap_all`, the `reap_jobs` command and schedule) fails the rows whose
worker stopped and sends again those whose task was lost, and the process that runs jobs on the
embedded default takes up at its start what a stopped one left (`resume_all`).

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
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from celery import current_app, shared_task
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, connections, transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from acumos_portal import capacity
from acumos_portal.choices import JobStatus

log = logging.getLogger(__name__)
QUICK_THREADS = 2
MODELS, QUICK = "models", "quick"
# Reentrant: a timer that fires submits its task (which makes a pool) under the lock, so that
# shutdown() never misses a task between its timer and its pool.
_lock = threading.RLock()
_pools: dict[str, ThreadPoolExecutor] = {}
_timers: set[threading.Timer] = set()


# ---------------------------------------------------------------- sending a task

def task_named(name: str):
    """A task by its name (the names are stable: tests/test_task_names.py). Services send their
    tasks by name, so a service never imports its own tasks module (which imports the service)."""
    return current_app.tasks[name]


def enqueue(task, *args) -> None:
    """Send `task` (a task or its name) with `args` once the current transaction commits."""
    task = task_named(task) if isinstance(task, str) else task
    transaction.on_commit(lambda: _send_committed(task, args))


def _send_committed(task, args) -> None:
    """The rows are committed when this runs: a broker that is down must not turn the request into
    an error (whose cleanup would delete the files of a job that exists). The job stays pending
    and the reaper (reap_all) sends it again."""
    try:
        send(task, *args)
    except KombuOperationalError:
        log.exception("could not send %s%s to the broker; the reaper will send it again", task.name, args)


def send(task, *args, countdown: float = 0) -> None:
    """Run `task(*args)` in the background, at once or in `countdown` seconds. `task` is a task
    object: callers with a name resolve it with task_named (tests replace this function)."""
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


# ---------------------------------------------------------------- the task shape

class Transient(Exception):
    """A hiccup that retrying can cure (storage or an engine out of reach, a busy database): the
    row goes back to pending and the task is sent again, TASK_RETRIES times, then by the reaper."""


TASK_RETRIES = 3


def job_task(name: str, **options):
    """The one shape of a job's task: it takes a row's id, is acknowledged only when done (a worker
    that dies leaves the message for another), and retries Transient with a growing pause."""
    return shared_task(name=name, acks_late=True, ignore_result=True, autoretry_for=(Transient,),
                       max_retries=TASK_RETRIES, retry_backoff=2, **options)


# ---------------------------------------------------------------- claiming and running

def claim(rows) -> bool:
    """Pending -> running in one conditional update, counting the attempt and naming this process:
    of two workers handed the same row (a duplicate delivery, the reaper's resend) one gets it."""
    now = timezone.now()
    changes = {"status": JobStatus.RUNNING, "started": now, "finished": None, "attempts": F("attempts") + 1,
               "claimed_by": this_process()}
    if _has_heartbeat(rows.model):
        changes["heartbeat"] = now
    return rows.filter(status=JobStatus.PENDING).update(**changes) > 0


def put_back(rows) -> None:
    """Undo this process's claim, for a retry: a claim left standing would hold the row until the
    reaper finds it stale."""
    rows.filter(status=JobStatus.RUNNING, claimed_by=this_process()).update(status=JobStatus.PENDING)


def run_claimed(row, work: Callable, *, fail: Callable[[object, str], None], permanent: tuple = (),
                transient: tuple = (), alive=None, what: str = "", where: str = ""):
    """Do `work(row)` for a row this process has claimed, keeping the heartbeat of `alive` (the row
    itself unless given) fresh; return what `work` returns, or None when it failed. A `permanent`
    exception fails the row with its message; a `transient` one, Transient or a busy database puts
    the row back and raises Transient (the task retries it) until the row's last attempt; anything
    else is a bug: logged with an error id that the failure names (`what` for the log, `where` for
    the sentence)."""
    rows = type(row).objects.filter(pk=row.pk)
    try:
        with keep_alive(rows if alive is None else alive):
            return work(row)
    except permanent as exc:
        fail(row, str(exc))
    except (Transient, *transient) as exc:
        _try_again_or_fail(row, rows, exc, fail)
    except Exception as exc:
        if not capacity.is_database_busy(exc):
            fail(row, internal_error(exc, what or f"{type(row).__name__} {row.pk}", where))
            return None
        _try_again_or_fail(row, rows, Transient(f"the database was busy: {exc}"), fail)
    return None


def _try_again_or_fail(row, rows, exc: Exception, fail) -> None:
    """A transient error: the row goes back to pending and Transient is raised, so the task tries
    again; on the row's last attempt (ACUMOS_JOB_MAX_ATTEMPTS claims) it fails, saying why."""
    if row.attempts >= settings.ACUMOS_JOB_MAX_ATTEMPTS:
        fail(row, f"gave up after {row.attempts} attempts: {exc}")
        return
    put_back(rows)
    if isinstance(exc, Transient):
        raise exc
    raise Transient(str(exc)) from exc


def internal_error(exc: Exception, what: str, where: str = "") -> str:
    """Log a bug with a fresh error id and return the sentence the job records: the person sees the
    id, and an operator finds the traceback by it."""
    error_id = uuid.uuid4().hex[:12]
    log.exception("%s failed [%s]", what, error_id)
    return f"internal error{where} (error id {error_id}): {exc}"


def finish(rows, status: str, **fields) -> None:
    rows.update(status=status, finished=timezone.now(), **fields)


def _has_heartbeat(model) -> bool:
    return any(f.name == "heartbeat" for f in model._meta.get_fields())


# ---------------------------------------------------------------- kinds of job, and the reaper

@dataclass(frozen=True)
class JobKind:
    """One kind of background job, as the reaper sees it. `fail(row, message)` records a failure
    (and tells whoever must know); `lost` narrows the pending rows the reaper may send again (those
    another flow sends, like an onboarding job's image build, are its own). A kind with a policy of
    its own (onboarding reaps step by step) gives `reaper(send)` and `resumer()` instead."""

    label: str
    model: type
    task: str
    fail: Callable[[object, str], None]
    lost: Q = field(default_factory=Q)
    stopped_message: str = ""
    reaper: Callable[[bool], list[str]] | None = None
    resumer: Callable[[], list[str]] | None = None

    def reap(self, *, send: bool = True) -> list[str]:
        return self.reaper(send) if self.reaper else reap(self, stale_before=_stale_cutoff(), send=send)

    def resume(self) -> list[str]:
        return self.resumer() if self.resumer else reap(self, stale_before=None, send=True)


KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> None:
    """Called by each app's AppConfig.ready(): the reaper then looks after its rows too."""
    KINDS[kind.label] = kind


def reap_all(*, send: bool = True) -> list[str]:
    """Every kind's stopped and lost jobs. `send=False` where the process would die with what it sent
    (a command on the embedded default: the server takes those up when it starts)."""
    return [action for kind in KINDS.values() for action in kind.reap(send=send)]


def resume_all() -> list[str]:
    """At the start of the process that runs the jobs (the embedded default's web server): every job
    a stopped process left is taken up now, not when it turns stale. A duplicate send is harmless."""
    actions = [action for kind in KINDS.values() for action in kind.resume()]
    for action in actions:
        log.info("interrupted job taken up: %s", action)
    return actions


def reap(kind: JobKind, *, stale_before, send: bool) -> list[str]:
    """Fail the running rows whose worker stopped (its heartbeat older than `stale_before`, or its
    process known to be gone), and send again the pending rows whose task was lost, up to
    ACUMOS_JOB_MAX_ATTEMPTS claims. `stale_before=None`: only gone processes count, and every
    pending row is sent (at start, nothing is in flight)."""
    running = kind.model.objects.filter(status=JobStatus.RUNNING)
    stopped = {row.pk: row for row in running if process_gone(row.claimed_by)}
    if stale_before is not None:
        quiet = Q(heartbeat__lt=stale_before) | Q(heartbeat__isnull=True, started__lt=stale_before)
        stopped.update((row.pk, row) for row in running.filter(quiet))
    actions = [_fail_stopped(kind, row) for row in stopped.values()]
    if send:
        actions += [_send_lost(kind, row) for row in _lost(kind, stale_before)]
    return [action for action in actions if action]


def _fail_stopped(kind: JobKind, row) -> str:
    # Conditional, like a claim: the row may have finished (or been claimed again) since it was read.
    if not kind.model.objects.filter(pk=row.pk, status=JobStatus.RUNNING, claimed_by=row.claimed_by).exists():
        return ""
    kind.fail(row, kind.stopped_message or f"the worker running this {kind.label} stopped")
    return f"{kind.label} {row.pk}: failed (its worker stopped)"


def _lost(kind: JobKind, stale_before):
    pending = kind.model.objects.filter(kind.lost, status=JobStatus.PENDING)
    if stale_before is None:
        return pending
    return pending.filter(Q(heartbeat__lt=stale_before) | Q(heartbeat__isnull=True, created__lt=stale_before))


def _send_lost(kind: JobKind, row) -> str:
    if row.attempts >= settings.ACUMOS_JOB_MAX_ATTEMPTS:
        kind.fail(row, f"this {kind.label} did not finish after {row.attempts} attempts; giving up")
        return f"{kind.label} {row.pk}: failed after {row.attempts} attempts"
    # The heartbeat moves on, so the reaper waits a full period before it sends it again.
    kind.model.objects.filter(pk=row.pk).update(heartbeat=timezone.now())
    send(task_named(kind.task), str(row.pk))
    return f"{kind.label} {row.pk}: sent again"


def _stale_cutoff():
    return timezone.now() - timedelta(seconds=settings.ACUMOS_JOB_STALE_SECONDS)
