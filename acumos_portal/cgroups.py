"""Memory, process and CPU limits for a whole sandbox, through the kernel's control groups.

Rlimits are per process (and RLIMIT_NPROC is not enforced at all for a sandbox that maps to root),
so the limits a sandbox must not pass as a whole (its memory, its number of tasks) are a cgroup's.
Both layouts are handled: cgroup v2 (one unified tree, the controllers enabled in the parent's
cgroup.subtree_control) and v1 (one tree per controller). The group is made under the portal's
own group, so a portal that is itself confined stays within its own limits.

No Django here: the sandbox module passes the numbers in."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
GROUP_PARENT = "acumos-sandboxes"
CFS_PERIOD_US = 100_000


class CgroupUnavailable(Exception):
    """No writable cgroup with the memory and pids controllers: the message says what was found."""


@dataclass(frozen=True)
class Group:
    """One sandbox's group: a directory per v1 controller, or one v2 directory."""

    paths: tuple[Path, ...]
    version: int

    def enter(self, pid: int) -> None:
        """Move a process (and so all it starts later) into the group. Plain writes only: this is
        called between fork and exec."""
        for path in self.paths:
            with open(path / "cgroup.procs", "w") as procs:
                procs.write(str(pid))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.paths:
            with contextlib.suppress(OSError):
                found.update(int(line) for line in (path / "cgroup.procs").read_text().split())
        return found

    def out_of_memory_kills(self) -> int:
        """How many processes the kernel killed for passing the memory limit."""
        for path in self.paths:
            for name, key in (("memory.events", "oom_kill"), ("memory.oom_control", "oom_kill")):
                with contextlib.suppress(OSError):
                    for line in (path / name).read_text().splitlines():
                        field, _, value = line.partition(" ")
                        if field == key:
                            return int(value)
        return 0

    def peak_memory_bytes(self) -> int | None:
        """The most memory the group's processes held at once, as the kernel counted it (v2 memory.peak,
        v1 memory.max_usage_in_bytes); None where the kernel does not keep it. Read from outside the group:
        what runs in it cannot change it."""
        for path in self.paths:
            for name in ("memory.peak", "memory.max_usage_in_bytes"):
                with contextlib.suppress(OSError, ValueError):
                    return int((path / name).read_text().split()[0])
        return None

    def age(self) -> float:
        """Seconds since the group was made (its directory's change time)."""
        try:
            return time.time() - self.paths[0].stat().st_ctime
        except OSError:
            return 0.0

    def kill_all(self) -> None:
        for path in self.paths:
            kill = path / "cgroup.kill"
            if kill.exists():
                with contextlib.suppress(OSError):
                    kill.write_text("1")
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, wait: float = 5.0) -> None:
        """Remove the group once it is empty (a killed process leaves it a moment later)."""
        self.kill_all()
        deadline = time.monotonic() + wait
        for path in self.paths:
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.02)


def _own_group(controller: str) -> str:
    """This process's group in a v1 hierarchy (by controller) or in v2 (controller "")."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") if controller else controllers == "":
            return path.lstrip("/")
    return ""


def _v2_parent() -> Path | None:
    for mount in (ROOT, ROOT / "unified"):
        controllers = mount / "cgroup.controllers"
        if controllers.exists() and {"memory", "pids"} <= set(controllers.read_text().split()):
            return mount / _own_group("")
    return None


def _v1_parents() -> dict[str, Path] | None:
    parents = {}
    for controller in ("memory", "pids", "cpu"):
        mount = ROOT / controller
        if not (mount / "cgroup.procs").exists():
            if controller == "cpu":
                continue  # a CPU share is a nicety; memory and pids are the limits that must hold
            return None
        parents[controller] = mount / _own_group(controller)
    return parents


def create(name: str, *, memory_bytes: int, tasks: int, cpus: float | None) -> Group:
    """Make the group `name` with its limits, or raise CgroupUnavailable."""
    try:
        v2 = _v2_parent()
        if v2 is not None:
            return _create_v2(v2 / GROUP_PARENT, name, memory_bytes, tasks, cpus)
        v1 = _v1_parents()
        if v1 is not None:
            return _create_v1(v1, name, memory_bytes, tasks, cpus)
    except OSError as exc:
        raise CgroupUnavailable(f"the cgroup for the sandbox's limits could not be made: {exc}") from exc
    raise CgroupUnavailable("no cgroup with the memory and pids controllers is mounted at /sys/fs/cgroup")


def _create_v2(parent: Path, name: str, memory_bytes: int, tasks: int, cpus: float | None) -> Group:
    parent.mkdir(exist_ok=True)
    with contextlib.suppress(OSError):  # already on, or set by whoever delegated the tree
        (parent / "cgroup.subtree_control").write_text("+memory +pids +cpu")
    path = parent / name
    path.mkdir(exist_ok=True)
    (path / "memory.max").write_text(str(memory_bytes))
    with contextlib.suppress(OSError):
        (path / "memory.swap.max").write_text("0")
    (path / "pids.max").write_text(str(tasks))
    if cpus:
        with contextlib.suppress(OSError):
            (path / "cpu.max").write_text(f"{int(cpus * CFS_PERIOD_US)} {CFS_PERIOD_US}")
    return Group((path,), 2)


def _create_v1(parents: dict[str, Path], name: str, memory_bytes: int, tasks: int, cpus: float | None) -> Group:
    paths = []
    for controller, parent in parents.items():
        path = parent / GROUP_PARENT / name
        path.mkdir(parents=True, exist_ok=True)
        paths.append(path)
        if controller == "memory":
            (path / "memory.limit_in_bytes").write_text(str(memory_bytes))
            with contextlib.suppress(OSError):  # only where swap accounting is on
                (path / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
        elif controller == "pids":
            (path / "pids.max").write_text(str(tasks))
        elif controller == "cpu" and cpus:
            (path / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            (path / "cpu.cfs_quota_us").write_text(str(int(cpus * CFS_PERIOD_US)))
    return Group(tuple(paths), 1)


def find(name: str) -> Group | None:
    """The group of that name if it exists (to clean up after a crash)."""
    v2 = _v2_parent()
    if v2 is not None:
        path = v2 / GROUP_PARENT / name
        return Group((path,), 2) if path.exists() else None
    parents = _v1_parents() or {}
    paths = tuple(p / GROUP_PARENT / name for p in parents.values() if (p / GROUP_PARENT / name).exists())
    return Group(paths, 1) if paths else None


def names() -> set[str]:
    """Every sandbox group that exists now."""
    found: set[str] = set()
    parents = [v2] if (v2 := _v2_parent()) is not None else list((_v1_parents() or {}).values())
    for parent in parents:
        with contextlib.suppress(OSError):
            found.update(p.name for p in (parent / GROUP_PARENT).iterdir() if p.is_dir())
    return found
