"""The one way model code runs on the portal's host: in a bubblewrap sandbox, with pasta for the
network of a serving runner.

A model is code from a stranger (a cloudpickled function; a pickle runs code when it loads). Every
process that loads one here (the onboarding smoke test, each runner of the `local` target) is
started by `start` and nothing else. Inside, the model:
- sees read-only the Python runtime and the runner's packages, read-write only its own directory,
  and a private /tmp; nothing else of the host (no var/, database, settings, secret key, storage,
  home directory, other sandboxes);
- has its own PID namespace: it sees only its own processes, and when the sandbox ends the kernel
  kills every process in it, detached or not;
- runs as an unprivileged user (a host uid of its own when the portal is root, never root) with no
  capabilities, no new privileges, no further user namespaces,
  a system-call filter (acumos_portal.seccomp), an environment of only what the runner needs, and
  limits: memory and tasks for the whole sandbox (a cgroup), CPU time (smoke test) or CPU share
  (runner), file size, open files;
- has no network at all (smoke test); a serving runner may listen on its one port and connect nowhere:
  on the host's network fenced by Landlock (TCP bind on its port only, no TCP connect, no abstract
  Unix socket outside, and the seccomp guard refuses every other kind of socket), or, on kernels
  without Landlock's network rules, in a namespace of its own with only loopback, its port relayed by
  pasta.

Without bwrap (or pasta, or a usable cgroup) nothing runs: `Unavailable` names what to install.
Only `configured_limits` and `records_dir` read Django's settings; the rest takes what it is given."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from acumos_portal import cgroups, landlock, seccomp

SANDBOX_UID = 10001  # the uid a model sees when the portal is not root (as in the runner image)
HOST_UID_BASE, HOST_UID_SPAN = 1_500_000_000, 1_000_000  # a root portal's sandboxes: uids no user has
WORK = "/sandbox"  # the model's own directory inside
OWNER = "owner.json"  # in a workspace: the process that made it
OUTPUT = "output.log"  # beside work/, so the model writes it only through stdout and stderr
PR_SET_PDEATHSIG = 1
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,80}")
INSTALL = "apt-get install -y bubblewrap passt"


class Unavailable(Exception):
    """The sandbox cannot be made here: the message names what is missing and how to get it."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 2 << 30
    tasks: int = 256  # processes and threads, for the whole sandbox
    open_files: int = 1024
    file_bytes: int = 1 << 30
    tmp_bytes: int = 256 << 20
    cpu_seconds: int | None = None  # total CPU time per process: a smoke test, not a server
    cpus: float | None = None  # a share of the CPUs for a server (a cgroup quota)


@dataclass(frozen=True)
class Spec:
    """What to run and what it may touch. `name` is unique among live sandboxes ("smoke-<id>",
    "runner-<id>"); `directory` is the model's own (read-write, at /sandbox inside); `read_only`
    maps more host paths to where they appear inside; `port` makes it a serving runner."""

    name: str
    command: list[str]
    directory: Path
    read_only: dict[str, Path] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    limits: Limits = Limits()
    port: int | None = None
    listen_host: str = "127.0.0.1"
    ends_with_starter: bool = True  # a smoke test dies with its worker; a runner outlives it
    network: str = "auto"  # a runner's fence: "landlock", "pasta", or "auto" (Landlock where the kernel has it)


@dataclass(frozen=True)
class Record:
    """What finds a sandbox again (kept in `<records>/<name>.json`): the leader's pid and start time
    (so a reused pid is never signalled), and who started it (a dead owner's work is swept)."""

    name: str
    pid: int
    started: int
    owner_pid: int
    owner_started: int
    directory: str
    temporary: bool

    def alive(self) -> bool:
        return _start_time(self.pid) == self.started

    def owner_alive(self) -> bool:
        return _start_time(self.owner_pid) == self.owner_started


# ---------------------------------------------------------------- the site's settings

def configured_limits(**overrides) -> Limits:
    """The limits the site's settings give every sandbox, with a caller's own (a target's options)."""
    from django.conf import settings

    limits = Limits(memory_bytes=settings.ACUMOS_SANDBOX_MEMORY_MB << 20, tasks=settings.ACUMOS_SANDBOX_TASKS,
                    open_files=settings.ACUMOS_SANDBOX_OPEN_FILES, file_bytes=settings.ACUMOS_SANDBOX_FILE_MB << 20,
                    tmp_bytes=settings.ACUMOS_SANDBOX_TMP_MB << 20)
    return replace(limits, **{key: value for key, value in overrides.items() if value is not None})


def records_dir() -> Path:
    from django.conf import settings

    return Path(settings.ACUMOS_SANDBOX_DIR) / "records"


def workspaces_dir() -> Path:
    """Where temporary sandboxes (smoke tests) get their directory; `sweep` looks here."""
    from django.conf import settings

    return Path(settings.ACUMOS_SANDBOX_DIR) / "work"


def workspace(root: Path, prefix: str) -> Path:
    """A new directory for a sandbox that lives as long as the process making it: it says who made
    it, so a sweep removes it once that process is gone (a worker killed mid-test)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{prefix}-{uuid.uuid4().hex[:20]}"
    path.mkdir()
    _write(path / OWNER, {"pid": os.getpid(), "started": _start_time(os.getpid())})
    return path


def _abandoned(path: Path) -> bool:
    try:
        owner = json.loads((path / OWNER).read_text())
    except (OSError, ValueError):
        return time.time() - path.stat().st_mtime > 3600  # made by an older portal, or half-made long ago
    return _start_time(owner["pid"]) != owner["started"]


# ---------------------------------------------------------------- the tools

def check_available(*, network: bool = False) -> None:
    """Raise Unavailable unless bwrap (and pasta, when it relays a port) can run here."""
    missing = [tool for tool in ("bwrap", "pasta" if network else "") if tool and not shutil.which(tool)]
    if missing:
        raise Unavailable(f"model code runs only in a sandbox, and {' and '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} not installed on this host: {INSTALL} "
                          "(bubblewrap and pasta from Debian), or deploy to a docker or kubernetes target")


def runtime_paths() -> list[Path]:
    """What the runner needs to start, read-only: this Python, its virtualenv, and the runner
    package wherever it is installed (an editable install lives outside site-packages)."""
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    spec = importlib.util.find_spec("runner_image")
    if spec is not None and spec.submodule_search_locations:
        paths.add(Path(next(iter(spec.submodule_search_locations))).resolve().parent)
    system = Path("/usr")
    return sorted(p for p in paths if p != system and system not in p.parents)


def python() -> str:
    """This interpreter, as the sandbox sees it (the same path: its prefix is bound in place)."""
    return sys.executable


# ---------------------------------------------------------------- the command

def host_uid(name: str) -> int | None:
    """The host uid a sandbox runs as when the portal is root: one of its own, no user's and not
    root (a uid 0 without capabilities still owns /proc/sys and every root-owned file). None when the
    portal is not root: bubblewrap then maps the model to the portal's own unprivileged uid."""
    if os.geteuid() != 0:
        return None
    return HOST_UID_BASE + int(hashlib.sha256(name.encode()).hexdigest(), 16) % HOST_UID_SPAN


def bwrap_args(spec: Spec, seccomp_fd: int | None = None) -> list[str]:
    uid = host_uid(spec.name)
    args = ["bwrap", *_namespaces(spec, uid), "--hostname", "model", "--clearenv", "--chdir", WORK]
    if spec.ends_with_starter or network_mode(spec) == "pasta":
        # Whatever ends bwrap's parent ends every process inside: pasta (which lives as long as the
        # sandbox), or the worker that started a smoke test. Not a runner's worker when bwrap is its
        # child (Landlock mode): a deployment outlives a worker's or `make run`'s restart.
        args.append("--die-with-parent")
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]  # acumos_portal.seccomp: calls no model needs answer EPERM
    args += ["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
             "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
             "--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", str(spec.limits.tmp_bytes), "--tmpfs", "/tmp",
             "--ro-bind", str(_identity_dir(spec.directory) / "passwd"), "/etc/passwd",
             "--ro-bind", str(_identity_dir(spec.directory) / "group"), "/etc/group"]
    binds = [(str(path), str(path)) for path in runtime_paths()] + [
        (str(outside), inside) for inside, outside in spec.read_only.items()]
    for parent in _parents(inside for _, inside in binds):
        args += ["--perms", "0755", "--dir", parent]  # bwrap would make them 0700, closed to the model
    for outside, inside in binds:
        args += ["--ro-bind", outside, inside]
    args += ["--bind", str(spec.directory / "work"), WORK]
    for name, value in _environment(spec).items():
        args += ["--setenv", name, value]
    return args + ["--", *_as_model(uid), *spec.command]


def _parents(paths) -> list[str]:
    """The directories above each bind's mount point, outermost first, once each."""
    found: list[str] = []
    for path in paths:
        for parent in reversed(Path(path).parents[:-1]):  # without "/"
            if str(parent) not in found and str(parent) not in ("/usr", "/tmp", "/etc", "/proc", "/dev"):
                found.append(str(parent))
    return found


def _namespaces(spec: Spec, uid: int | None) -> list[str]:
    network = [] if spec.port is not None else ["--unshare-net"]  # a runner uses pasta's namespace
    if uid is None:
        # Not root: a user namespace maps the model's uid to the portal's own (unprivileged) one.
        return ["--unshare-user", "--disable-userns", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
                "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try", *network]
    # Root: no user namespace (it would map the model to root outside); bubblewrap keeps only what
    # setpriv needs to become the sandbox's own uid, and setpriv drops even that before the model runs.
    return ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try", *network,
            "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]


def _as_model(uid: int | None) -> list[str]:
    if uid is None:
        return []
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--"]


def _environment(spec: Spec) -> dict[str, str]:
    """An allow-list: what Python and the runner need, and what the caller gives (RUNNER_*)."""
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORK, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "USER": "model", "LOGNAME": "model",
            "OMP_NUM_THREADS": str(max(1, int(spec.limits.cpus or os.cpu_count() or 1)))}
    return {**base, **spec.environment}


NETWORKS = ("auto", "landlock", "pasta")


def network_mode(spec: Spec) -> str | None:
    """How a serving runner is kept from the network: "landlock" (the host's network, fenced by the
    kernel: its port only, no connection out; no relay), or "pasta" (a namespace of its own with only
    loopback, the port relayed by pasta; for kernels before 6.12). None: no network at all."""
    if spec.port is None:
        return None
    if spec.network not in NETWORKS:
        raise ValueError(f"sandbox network {spec.network!r}: use one of {', '.join(NETWORKS)}")
    if spec.network == "auto":
        return "landlock" if landlock.available() else "pasta"
    return spec.network


def command(spec: Spec, pasta_log: Path | None = None, seccomp_fd: int | None = None) -> list[str]:
    """The host command line: bwrap, inside pasta's network namespace when it relays a port."""
    inner = bwrap_args(spec, seccomp_fd)
    if network_mode(spec) != "pasta":
        return inner
    # --netns-only: pasta makes the network namespace only; bwrap makes the rest. No --config-net:
    # the namespace has no interface but loopback, so the model can open no connection out of it.
    # -T/-U none: nothing of the host's loopback is forwarded in. -t: the served port, host to ns.
    # --runas 0: pasta needs root to make the namespace without a user namespace of its own.
    return ["pasta", "--runas", "0", "--netns-only", "--foreground", "--quiet",
            "--log-file", str(pasta_log or os.devnull),
            "--tcp-ns", "none", "--udp-ns", "none", "--udp-ports", "none",
            "--tcp-ports", f"{spec.listen_host}/{spec.port}", "--no-dhcp", "--no-ndp", "--no-dhcpv6", "--no-ra",
            "--", *inner]


def _identity_dir(directory: Path) -> Path:
    return directory / "etc"


def prepare(spec: Spec) -> None:
    """The sandbox's directory: work/ (read-write inside, owned by the sandbox's uid) and the user it
    runs as."""
    if not NAME.fullmatch(spec.name):
        raise ValueError(f"sandbox name {spec.name!r} must be lower-case letters, digits and dashes")
    work = spec.directory / "work"
    work.mkdir(parents=True, exist_ok=True)
    uid = host_uid(spec.name)
    if uid is not None:
        _own(work, uid)
        for path in spec.read_only.values():  # the model's own files (its bundle): readable by it
            _own(Path(path), uid)  # whatever their modes; the bind keeps them read-only
    inside = uid if uid is not None else SANDBOX_UID
    identity = _identity_dir(spec.directory)
    identity.mkdir(exist_ok=True)
    (identity / "passwd").write_text(f"model:x:{inside}:{inside}:model:{WORK}:/usr/sbin/nologin\n")
    (identity / "group").write_text(f"model:x:{inside}:\n")


def _own(root: Path, uid: int) -> None:
    """Hand the work directory (and what an earlier run left in it) to the sandbox's uid; links are
    changed themselves, never followed."""
    os.chown(root, uid, uid)
    for directory, names, files in os.walk(root):
        for name in names + files:
            os.chown(os.path.join(directory, name), uid, uid, follow_symlinks=False)


# ---------------------------------------------------------------- running

def start(spec: Spec, *, records: Path, log: Path, temporary: bool = False) -> tuple[subprocess.Popen, Record]:
    """Start the sandbox and record it. `temporary`: its directory is removed when it is swept."""
    mode = network_mode(spec)
    check_available(network=mode == "pasta")
    if mode == "landlock" and not landlock.available():
        raise Unavailable(f"this kernel has no Landlock network rules (ABI {landlock.abi()}, 6 needed: Linux 6.12): "
                          "set ACUMOS_SANDBOX_NETWORK=pasta")
    prepare(spec)
    group = _group(spec, records)
    limits = _rlimits(spec.limits, own_uid=host_uid(spec.name) is not None)
    parent_dies = spec.ends_with_starter
    fenced_port = spec.port if mode == "landlock" else None

    def in_child() -> None:  # between fork and exec: plain calls only
        group.enter(os.getpid())
        for kind, value in limits:
            resource.setrlimit(kind, (value, value))
        if fenced_port is not None:
            landlock.restrict(fenced_port)
        if parent_dies and _LIBC is not None:
            # The thread that started it dies (a worker killed mid-test): so does the sandbox.
            _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    try:
        filter_fd = _seccomp_descriptor(network_guard=mode == "landlock")
    except BaseException:
        group.remove()
        raise
    try:
        with open(log, "ab") as out:
            process = subprocess.Popen(command(spec, log.with_name(log.name + ".net"), filter_fd),
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       env=_host_environment(), pass_fds=(filter_fd,), start_new_session=True,
                                       preexec_fn=in_child)  # noqa: PLW1509 (plain calls only)
    except BaseException:
        group.remove()
        raise
    finally:
        os.close(filter_fd)
    record = Record(spec.name, process.pid, _start_time(process.pid) or 0, os.getpid(), _start_time(os.getpid()) or 0,
                    str(spec.directory), temporary)
    records.mkdir(parents=True, exist_ok=True)
    _write(records / f"{spec.name}.json", asdict(record))
    return process, record


def _seccomp_descriptor(network_guard: bool) -> int:
    try:
        return seccomp.descriptor(network_guard)
    except seccomp.SeccompUnavailable as exc:
        raise Unavailable(f"the sandbox's system-call filter cannot be made: {exc}") from exc


def _host_environment() -> dict[str, str]:
    """bwrap and pasta themselves get a bare environment: no secret of the portal's reaches them."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def _group_name(records: Path, name: str) -> str:
    """Groups are global to the host: each portal (its records directory) names its own."""
    return f"{hashlib.sha256(str(records.resolve()).encode()).hexdigest()[:8]}-{name}"


def _group(spec: Spec, records: Path) -> cgroups.Group:
    try:
        return cgroups.create(_group_name(records, spec.name), memory_bytes=spec.limits.memory_bytes,
                              tasks=spec.limits.tasks, cpus=spec.limits.cpus)
    except cgroups.CgroupUnavailable as exc:
        raise Unavailable(f"{exc}: the sandbox's memory and process limits need one (run the portal as root, "
                          "or give its user a delegated cgroup)") from exc


def _rlimits(limits: Limits, own_uid: bool) -> list[tuple[int, int]]:
    chosen = [(resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_FSIZE, limits.file_bytes),
              (resource.RLIMIT_CORE, 0),

              # Virtual memory is a per-process backstop (a clean MemoryError); the cgroup holds the sum.
              (resource.RLIMIT_AS, max(limits.memory_bytes * 2, 4 << 30))]
    if limits.cpu_seconds:
        chosen.append((resource.RLIMIT_CPU, limits.cpu_seconds))
    if own_uid:
        # Counted per uid: a sandbox with a uid of its own is held to its tasks as by the cgroup
        # (root, that is bwrap, is not). With the portal's uid it would count the portal's too.
        chosen.append((resource.RLIMIT_NPROC, limits.tasks))
    return chosen


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()  # loaded here, not in the child


def peak_memory(records: Path, name: str) -> int | None:
    """The most memory this sandbox's processes held at once (None where the kernel does not say)."""
    group = cgroups.find(_group_name(records, name))
    return group.peak_memory_bytes() if group else None


def out_of_memory(records: Path, name: str) -> bool:
    """Did the kernel kill a process of this sandbox for passing its memory limit?"""
    group = cgroups.find(_group_name(records, name))
    return bool(group and group.out_of_memory_kills())


def stop(record: Record, *, records: Path, grace: float = 10.0) -> None:
    """End a sandbox: SIGTERM to the model's processes (a runner drains its requests), then SIGKILL
    to all that is left. Killing bwrap ends the namespace, and the kernel kills all in it."""
    if record.alive():
        for pid in _descendants(record.pid):
            if _command_name(pid) not in ("bwrap", "pasta"):  # they end when the model has ended
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while record.alive() and time.monotonic() < deadline:
            _reap(record.pid)
            time.sleep(0.05)
        _kill_tree(record.pid)
    finish(record, records=records)


def finish(record: Record, *, records: Path) -> None:
    """After the sandbox's leader has exited: nothing of it is left (processes, group, record, and a
    temporary directory)."""
    group = cgroups.find(_group_name(records, record.name))
    if group is not None:
        group.remove()
    if record.temporary:
        shutil.rmtree(record.directory, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (records / f"{record.name}.json").unlink()


def _kill_tree(pid: int) -> None:
    for each in [pid, *_descendants(pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(each, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat:
                children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, ...]."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def _start_time(pid: int) -> int | None:
    stat = _stat(pid)
    if stat is None or stat[0] in ("Z", "X"):  # a zombie has ended
        return None
    return int(stat[19])


def _write(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


@dataclass(frozen=True)
class Outcome:
    status: int | None  # None: the time ran out
    out_of_memory: bool  # the kernel killed a process of it for passing the memory limit
    collected: object  # what `collect` read from its directory
    peak_memory_bytes: int | None = None  # the most its processes held at once (the kernel's count)


def run(spec: Spec, *, records: Path, timeout: float, collect) -> Outcome:
    """Run a sandbox to its end, for at most `timeout` seconds. `collect(directory)` reads what it
    left (its report, its output in `output.log`) before the directory is removed: nothing of the
    sandbox is left afterwards, whatever happened (and a sweep removes it if this process dies)."""
    process, record = start(spec, records=records, log=spec.directory / OUTPUT, temporary=True)
    try:
        try:
            status = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            status = None
        out_of_memory_kills = out_of_memory(records, spec.name)
        peak = peak_memory(records, spec.name)
        _kill_tree(record.pid)  # nothing writes any more while it is read
        return Outcome(status, out_of_memory_kills, collect(spec.directory), peak)
    finally:
        stop(record, records=records, grace=0)
        process.wait()


# ---------------------------------------------------------------- finding and sweeping

def load(records: Path, name: str) -> Record | None:
    try:
        return Record(**json.loads((records / f"{name}.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def all_records(records: Path) -> list[Record]:
    found = []
    for path in sorted(records.glob("*.json")) if records.exists() else []:
        record = load(records, path.stem)
        if record is not None:
            found.append(record)
    return found


STARTING_SECONDS = 60  # longer than bwrap takes from its group to its record


def sweep(records: Path, keep, workspaces: tuple[Path, ...] = ()) -> list[str]:
    """What a dead process left: a sandbox whose starter died (a smoke test) or that `keep(record)`
    no longer wants (a runner of a deployment that is gone) is killed, and its group, record and
    temporary directory removed; so are groups with no record, and workspaces whose maker is gone."""
    done = []
    for record in all_records(records):
        # A temporary sandbox whose starter lives is the starter's to finish, even once it has
        # ended: its report is read after the process exits, and removing it then loses it.
        if record.temporary and not record.owner_alive():
            stop(record, records=records, grace=0)
            done.append(f"sandbox {record.name}: removed (the process that started it is gone)")
        elif not keep(record):
            stop(record, records=records, grace=0)
            done.append(f"sandbox {record.name}: removed (nothing wants it any more: its deployment is not live)")
    known = {_group_name(records, record.name) for record in all_records(records)}
    mine = _group_name(records, "")
    for name in {name for name in cgroups.names() if name.startswith(mine)} - known:
        group = cgroups.find(name)
        # start() makes the group before it writes the record: a young group may be one starting now.
        if group is not None and group.age() > STARTING_SECONDS:
            group.remove()
            done.append(f"sandbox group {name}: removed (no sandbox owns it)")
    for root in workspaces:
        for path in sorted(root.iterdir()) if root.exists() else []:
            if path.is_dir() and _abandoned(path):
                shutil.rmtree(path, ignore_errors=True)
                done.append(f"workspace {path.name}: removed (the process that made it is gone)")
    return done
