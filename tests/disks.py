"""A small disk of its own for the tests that fill one: a tmpfs (the tests run as root), and a
file that fills it to the byte."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

MIB = 1 << 20


@contextlib.contextmanager
def small_disk(mount: Path, size_mib: int) -> Iterator[Path]:
    """A tmpfs of `size_mib` MiB mounted on `mount` (made if missing), unmounted afterwards."""
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def fill(disk: Path, leave: int) -> Path:
    """A file on `disk` that leaves `leave` bytes free (remove it to free them)."""
    ballast = disk / "ballast"
    ballast.unlink(missing_ok=True)
    size = max(0, free_bytes(disk) - leave)
    with open(ballast, "wb") as out:
        while size:
            written = out.write(b"\0" * min(size, 4 * MIB))
            size -= written
        out.flush()
        os.fsync(out.fileno())
    return ballast


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
