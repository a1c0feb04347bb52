"""The runner's state directory, shared by its worker processes.

    generations/<n>/   one model each: metadata.json, model.proto, modelpackage.zip,
                       manifest.json, config.json (when replaced), model/ (extracted)
    control.json       {"active": n, "staged": n | null}; written only under swap.lock
    history.json       every activation, newest last
    workers/<pid>.json what each worker serves and has prepared
    swap.lock          flock held by the worker leading a swap
    candidate.json     the canary or shadow candidate beside the live model, or the last one and how it
                       ended (runner_image.variants); written only under swap.lock
    variants/<pid>.json what each worker holds of the candidate, and its per-variant counts (kept after
                       the worker dies, so that merged counts do not drop)
    meter.bin, entitlement.json, entitlement-history.json
                       the metering of a licensed model (runner_image.meter), only with
                       RUNNER_REQUIRE_ENTITLEMENT=1

Every file is replaced atomically (write, fsync-free rename), so a reader never sees half.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from pathlib import Path

from runner_image.errors import Conflict

GENERATIONS = "generations"


def write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return default


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StateDir:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.generations = self.root / GENERATIONS
        self.workers = self.root / "workers"
        self.control_path = self.root / "control.json"
        self.history_path = self.root / "history.json"
        self.candidate_path = self.root / "candidate.json"
        self.variants = self.root / "variants"
        for directory in (self.generations, self.workers, self.variants):
            directory.mkdir(parents=True, exist_ok=True)

    # control -------------------------------------------------------------
    def control(self) -> dict:
        return read_json(self.control_path, {"active": None, "staged": None})

    def set_control(self, active: int | None, staged: int | None) -> None:
        write_json(self.control_path, {"active": active, "staged": staged})

    # generations ---------------------------------------------------------
    def generation_dir(self, generation: int) -> Path:
        return self.generations / f"{generation:06d}"

    def existing_generations(self) -> list[int]:
        return sorted(int(p.name) for p in self.generations.iterdir() if p.name.isdigit())

    def new_generation(self) -> tuple[int, Path]:
        """Claim the next number; called under the swap lock, so numbers never repeat."""
        known = self.existing_generations() + [e["generation"] for e in self.history()]
        generation = max(known, default=0) + 1
        path = self.generation_dir(generation)
        path.mkdir()
        return generation, path

    def prune(self, keep: int, protect: set[int]) -> None:
        existing = self.existing_generations()
        kept = set(existing[-keep:]) | protect
        for generation in existing:
            if generation not in kept:
                shutil.rmtree(self.generation_dir(generation), ignore_errors=True)

    # history -------------------------------------------------------------
    def history(self) -> list[dict]:
        return read_json(self.history_path, [])

    def append_history(self, entry: dict) -> None:
        write_json(self.history_path, self.history() + [entry])

    # workers -------------------------------------------------------------
    def write_worker(self, pid: int, info: dict) -> None:
        write_json(self.workers / f"{pid}.json", {**info, "pid": pid, "updated": time.time()})

    def remove_worker(self, pid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.workers / f"{pid}.json").unlink()

    def live_workers(self, exclude: int | None = None) -> dict[int, dict]:
        found = {}
        for path in self.workers.glob("*.json"):
            pid = int(path.stem)
            if not pid_alive(pid):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            if pid != exclude:
                found[pid] = read_json(path, {})
        return found

    # canary and shadow candidates (runner_image.variants) --------------------
    def candidate(self) -> dict | None:
        found = read_json(self.candidate_path, None)
        return found if isinstance(found, dict) else None

    def set_candidate(self, description: dict) -> None:
        """Called under the swap lock, like set_control."""
        write_json(self.candidate_path, description)

    def write_variant_report(self, pid: int, report: dict) -> None:
        write_json(self.variants / f"{pid}.json", {**report, "pid": pid, "updated": time.time()})

    def variant_reports(self) -> dict[int, dict]:
        """Every worker's report, dead workers' included (their last counts still count)."""
        found = {}
        for path in self.variants.glob("*.json"):
            if path.stem.isdigit():
                found[int(path.stem)] = read_json(path, {})
        return found

    def remove_variant_report(self, pid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.variants / f"{pid}.json").unlink()

    # locking -------------------------------------------------------------
    @contextlib.contextmanager
    def swap_lock(self):
        with open(self.root / "swap.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Conflict("another swap is in progress on this runner; try again when it finishes") from None
            yield  # closing the file releases the lock
