"""acumos_portal.sandbox itself: nothing outlives a starter that dies, and a sweep removes what a
dead process left (its sandbox's processes, cgroup, record and directory)."""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from acumos_portal import cgroups, sandbox, seccomp

from .hostile import processes_with


def wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_sandbox_whose_starter_is_killed_leaves_nothing_after_a_sweep(tmp_path):
    records, work = tmp_path / "records", tmp_path / "work"
    marker = f"{5000 + time.monotonic_ns() % 3000}.{time.monotonic_ns() % 97 + 1}"
    starter = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from pathlib import Path
        from acumos_portal import sandbox
        directory = sandbox.workspace(Path({str(work)!r}), "smoke")
        spec = sandbox.Spec(name=directory.name, directory=directory, command=["/usr/bin/sleep", {marker!r}])
        sandbox.start(spec, records=Path({str(records)!r}), log=directory / "output.log", temporary=True)
        print("started", flush=True)
        time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout.readline().strip() == "started"
        assert wait_for(lambda: processes_with(marker)), "the sandboxed process runs"
        assert len(sandbox.all_records(records)) == 1 and len(list(work.iterdir())) == 1
    finally:
        starter.send_signal(signal.SIGKILL)  # the worker dies mid-test
        starter.wait()

    assert wait_for(lambda: not processes_with(marker)), "the sandbox outlived the process that started it"
    done = sandbox.sweep(records, keep=lambda record: True, workspaces=(work,))

    assert done and sandbox.all_records(records) == [] and list(work.iterdir()) == []
    assert not [name for name in cgroups.names() if name.endswith(done[0].split()[1].rstrip(":"))]


@pytest.mark.parametrize("network", ["landlock", "pasta"])
def test_a_runner_outlives_the_worker_that_started_it_until_it_is_swept(tmp_path, network):
    """A deployment's runner (ends_with_starter=False) keeps serving when the web worker or `make run`
    that started it stops, whichever way its network is fenced; the next start adopts it, and a
    sweep that does not keep it ends it."""
    if network == "landlock" and not sandbox.landlock.available():
        pytest.fail("this kernel has no Landlock network rules: the landlock case cannot run here", pytrace=False)
    records, work = tmp_path / "records", tmp_path / "work"
    marker = f"{5000 + time.monotonic_ns() % 3000}.{time.monotonic_ns() % 97 + 1}"
    starter = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from pathlib import Path
        from acumos_portal import sandbox
        directory = sandbox.workspace(Path({str(work)!r}), "runner")
        spec = sandbox.Spec(name=directory.name, directory=directory, command=["/usr/bin/sleep", {marker!r}],
                            port=sandbox_port, listen_host="127.0.0.1", network={network!r},
                            ends_with_starter=False)
        sandbox.start(spec, records=Path({str(records)!r}), log=directory / "output.log", temporary=True)
        print("started", flush=True)
        """).replace("sandbox_port", str(20000 + time.monotonic_ns() % 20000))], stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout.readline().strip() == "started"
        assert starter.wait(timeout=30) == 0  # the starter is gone
        time.sleep(1)
        assert processes_with(marker), "the runner died with the process that started it"
    finally:
        sandbox.sweep(records, keep=lambda record: False, workspaces=(work,))
    assert wait_for(lambda: not processes_with(marker)), "a sweep that does not keep it ends it"


def test_a_sweep_keeps_what_a_live_process_uses(tmp_path):
    live = sandbox.workspace(tmp_path / "work", "smoke")
    assert sandbox.sweep(tmp_path / "records", keep=lambda record: True, workspaces=(tmp_path / "work",)) == []
    assert live.exists()


def test_a_sweep_leaves_an_ended_sandbox_to_its_live_starter(tmp_path):
    """A smoke test reads its report after the model's process exits: a sweep in that moment (the
    schedule runs one every minute) must not remove the directory under the starter."""
    records, work = tmp_path / "records", tmp_path / "work"
    directory = sandbox.workspace(work, "smoke")
    spec = sandbox.Spec(name=directory.name, directory=directory,
                        command=["/bin/sh", "-c", f"echo done > {sandbox.WORK}/report.json"])
    process, record = sandbox.start(spec, records=records, log=directory / sandbox.OUTPUT, temporary=True)
    try:
        assert process.wait(timeout=30) == 0 and wait_for(lambda: not record.alive())

        assert sandbox.sweep(records, keep=lambda record: True, workspaces=(work,)) == []
        assert (directory / "work" / "report.json").read_text() == "done\n"
        assert [each.name for each in sandbox.all_records(records)] == [directory.name]
    finally:
        sandbox.stop(record, records=records, grace=0)
    assert not directory.exists() and sandbox.all_records(records) == []


def test_a_sweep_leaves_a_group_being_started_and_removes_it_once_it_is_old(tmp_path, monkeypatch):
    # start() makes the group, then the record: a sweep between the two must not kill the model.
    records = tmp_path / "records"
    name = sandbox._group_name(records, f"starting-{uuid.uuid4().hex[:8]}")
    group = cgroups.create(name, memory_bytes=64 << 20, tasks=16, cpus=None)
    try:
        assert sandbox.sweep(records, keep=lambda record: True) == []
        assert name in cgroups.names()

        monkeypatch.setattr(sandbox, "STARTING_SECONDS", 0)
        assert sandbox.sweep(records, keep=lambda record: True) == [
            f"sandbox group {name}: removed (no sandbox owns it)"]
        assert name not in cgroups.names()
    finally:
        group.remove()


def test_a_sandbox_runs_with_no_network_no_capabilities_and_only_its_own_processes(tmp_path):
    script = ("import os, socket; print(len(os.listdir('/proc/self/task')) > 0, "
              "[n for _, n in socket.if_nameindex()], os.getuid(), "
              "[l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapEff', 'NoNewPrivs'))], "
              "sorted(p for p in os.listdir('/proc') if p.isdigit()))")
    spec = sandbox.Spec(name="probe", directory=tmp_path / "sandbox", command=[sandbox.python(), "-c", script])
    outcome = sandbox.run(spec, records=tmp_path / "records", timeout=30,
                          collect=lambda directory: (directory / sandbox.OUTPUT).read_text())

    assert outcome.status == 0, outcome.collected
    uid = sandbox.host_uid("probe") or sandbox.SANDBOX_UID  # never root: a uid of its own when the portal is
    assert outcome.collected.strip() == f"True ['lo'] {uid} ['0000000000000000', '1'] ['1', '2']"
    assert not (tmp_path / "sandbox").exists() and sandbox.all_records(tmp_path / "records") == []


def test_without_bubblewrap_nothing_runs_and_the_message_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(sandbox.Unavailable, match="apt-get install -y bubblewrap passt"):
        sandbox.check_available(network=True)


def test_the_calls_no_model_needs_are_refused_inside(tmp_path):
    """io_uring, bpf, perf events, keyrings, ptrace and unshare answer EPERM; ordinary work goes on."""
    lib = seccomp._library()
    calls = {name: lib.seccomp_syscall_resolve_name(name.encode())
             for name in ("io_uring_setup", "bpf", "perf_event_open", "keyctl", "ptrace", "unshare", "kcmp")}
    new_user_namespace = {"clone": [lib.seccomp_syscall_resolve_name(b"clone"), seccomp.CLONE_NEWUSER],
                          "clone3": [lib.seccomp_syscall_resolve_name(b"clone3"), 0]}
    script = ("import ctypes, json, os, subprocess, threading; libc = ctypes.CDLL(None, use_errno=True); "
              f"print(json.dumps({{n: [libc.syscall(nr, 0, 0, 0, 0, 0), ctypes.get_errno()] "
              f"for n, nr in {calls!r}.items()}})); "
              f"print(json.dumps({{n: [libc.syscall(nr, a, 0, 0, 0, 0), ctypes.get_errno()] "
              f"for n, (nr, a) in {new_user_namespace!r}.items()}})); "
              "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join(); "
              "print(subprocess.run(['/usr/bin/true']).returncode, os.fork() and 'forked')")
    spec = sandbox.Spec(name="calls", directory=tmp_path / "sandbox", command=[sandbox.python(), "-c", script])
    outcome = sandbox.run(spec, records=tmp_path / "records", timeout=30,
                          collect=lambda directory: (directory / sandbox.OUTPUT).read_text())

    assert outcome.status == 0, outcome.collected
    refused = json.loads(outcome.collected.splitlines()[0])
    assert refused == dict.fromkeys(calls, [-1, errno.EPERM]), refused
    assert json.loads(outcome.collected.splitlines()[1]) == {"clone": [-1, errno.EPERM], "clone3": [-1, errno.ENOSYS]}
    assert "thread" in outcome.collected and "0 forked" in outcome.collected
