"""What one worker process serves, and how every worker moves to a new model together.

A swap, led by the worker that received the request:
  1. stage: write the new generation directory (new parts, the rest linked from the active one)
  2. load it and check it (its sample, a sample sent with the request, or the data to transform)
  3. with other workers: mark it staged; each loads it beside the old one and says "prepared";
     any failure aborts the swap everywhere and the old model keeps serving
  4. mark it active; every worker switches its slot reference (one assignment) and says so
  5. record the swap in the history and answer
Each request reads the slot reference once, so it is served wholly by the old or the new model.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from runner_image import metrics
from runner_image.batching import Batcher
from runner_image.doorbell import Doorbell
from runner_image.errors import Conflict, ModelRejected, NotFound, NotReady, RunnerError
from runner_image.gil import LoopAside, urgent
from runner_image.meter import Meter
from runner_image.package import ExtractLimits, read_manifest_from_zip, safe_extract
from runner_image.settings import Settings
from runner_image.slot import (
    CONFIG_FILE,
    MANIFEST_COPY,
    METADATA_FILE,
    MODEL_DIR,
    PACKAGE_FILE,
    PROTO_FILE,
    ModelSlot,
    check_samples,
    load_slot,
)
from runner_image.state import StateDir, write_json
from runner_image.stats import Statistics
from runner_image.variants import Variants

log = logging.getLogger("runner_image")
Check = Callable[[ModelSlot], object]


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.state = StateDir(settings.state_dir)
        self.pid = os.getpid()
        self.slot: ModelSlot | None = None
        self._prepared: ModelSlot | None = None
        self._failed: int | None = None  # a staged generation this worker could not load: not retried
        self._waiting_to_switch = False  # prepared for a staged generation: urgent until the switch (_follow)
        self._leading = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._tender: threading.Thread | None = None
        self._poke = threading.Event()  # set on a ring: the periodic steps look now, not at their next round
        self._bell = Doorbell(self.state.root, self.pid)
        self._rung = threading.Event()  # set by the watcher when rung while this worker leads a swap
        self._aside = LoopAside(settings.swap_priority_ms / 1000)  # the event loop waits for a swap's steps
        # Only a runner that must meter has a meter: elsewhere a metered route tests this and goes on.
        self.meter: Meter | None = Meter(settings) if settings.require_entitlement else None
        self.variants = Variants(self)  # canary and shadow candidates beside the live model
        self.stats = Statistics(self)   # drift statistics, shared between workers by flushing
        self.batcher = Batcher(settings.batch_max_rows)  # one model call for the requests of one loop turn

    # lifecycle -----------------------------------------------------------
    def bind_loop(self, loop) -> None:
        """The event loop serving this worker's requests: it stands aside while a swap's steps run."""
        self._aside.bind(loop)

    async def run_first(self, step, *args):
        """An admin request's step (a swap, a rollback, a candidate change) in a thread, before the requests: the
        event loop waits for it, for at most RUNNER_SWAP_PRIORITY_MS (runner_image.gil)."""
        return await self._aside.run(step, *args)

    def start(self, preloaded: ModelSlot | None = None) -> None:
        active = self.state.control().get("active")
        if active is None:
            raise NotReady("the state directory has no active model (the serve command seeds it)")
        if preloaded is None or preloaded.generation != active:
            preloaded = load_slot(self.state.generation_dir(active), active)
        self._switch(preloaded)
        try:
            self.variants.follow()  # a candidate set before this worker started is held before it answers anything
        except Exception:  # the live model serves regardless; the periodic thread tries again
            log.exception("taking up the candidate at start failed")
        self._watcher = threading.Thread(target=self._watch, name="runner-swap-watcher", daemon=True)
        self._watcher.start()
        self._tender = threading.Thread(target=self._tend, name="runner-periodic", daemon=True)
        self._tender.start()

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        for thread in (self._watcher, self._tender):
            if thread:
                thread.join(timeout=2)
        self._urgent_until_switch(False)
        for name, last_step in (("candidate", getattr(self.variants, "stop", None)),
                                ("statistics", getattr(self.stats, "stop", None))):
            try:
                if last_step:
                    last_step()  # what this worker counted since its last flush
            except Exception:
                log.exception("the %s step at stop failed", name)
        self.state.remove_worker(self.pid)
        self._bell.close()
        if self.meter:
            self.meter.close()

    def active(self) -> ModelSlot:
        slot = self.slot
        if slot is None:
            raise NotReady("no model is loaded yet")
        return slot

    # swaps ---------------------------------------------------------------
    def swap(self, action: str, build: Callable[[Path, ModelSlot], None], check: Check | None = None) -> dict:
        """Stage a new generation with `build`, check it, and make every worker serve it."""
        with self._lead(), self.state.swap_lock():
            started = time.monotonic()
            phases = Phases(started)
            current = self.active()
            generation, directory = self.state.new_generation()
            try:
                build(directory, current)
                phases.mark("build")
                # The other workers load it while this one checks it; none serves it before the check passed.
                peers = self._announce(generation)
                candidate, answers, checked = self._load_and_check(directory, generation, current, check)
                phases.mark("load_and_check")
                self._activate_everywhere(candidate, peers, phases)
            except BaseException:
                self.state.set_control(active=current.generation, staged=None)
                shutil.rmtree(directory, ignore_errors=True)
                metrics.swap_failed(action)
                raise
            return self._record(action, candidate, current, started=started, checked=checked, answers=answers,
                                phases=phases)

    def stage(self, action: str, build: Callable[[Path, ModelSlot], None], check: Check | None = None):
        """A new generation built and checked in this worker, not served: (slot, answers, checked). What a
        canary or shadow candidate starts as (runner_image.variants); the caller owns its directory."""
        with self._lead(), self.state.swap_lock():
            return self._stage(action, build, check, self.active())

    def adopt(self, action: str, candidate: ModelSlot) -> dict:
        """Make every worker serve `candidate`, a generation already staged and checked (a promoted canary)."""
        with self._lead(), self.state.swap_lock():
            started = time.monotonic()
            current = self.active()
            if candidate.generation == current.generation:
                raise Conflict(f"generation {candidate.generation} is already serving")
            try:
                self._activate_everywhere(candidate)
            except BaseException:
                metrics.swap_failed(action)
                raise
            return self._record(action, candidate, current, started=started, checked="as a candidate", answers={})

    def _stage(self, action: str, build, check: Check | None, current: ModelSlot):
        generation, directory = self.state.new_generation()
        try:
            build(directory, current)
            return self._load_and_check(directory, generation, current, check)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            metrics.swap_failed(action)
            raise

    def rollback(self, target: int | None = None) -> dict:
        with self._lead(), self.state.swap_lock():
            started = time.monotonic()
            current = self.active()
            if target is None:
                target = self._previous_of(current.generation)
            directory = self.state.generation_dir(target)
            if target == current.generation:
                raise Conflict(f"generation {target} is already serving")
            if not directory.exists():
                raise NotFound(f"generation {target} is not kept any more (the runner keeps the last "
                               f"{self.settings.keep_generations})", {"generation": target})
            phases = Phases(started)
            try:
                peers = self._announce(target)  # as a swap: the others load it while this one checks it
                candidate, answers, checked = self._load_and_check(directory, target, current, None)
                phases.mark("load_and_check")
                self._activate_everywhere(candidate, peers, phases)
            except BaseException:
                self.state.set_control(active=current.generation, staged=None)
                raise
            return self._record("rollback", candidate, current, started=started, checked=checked, answers=answers,
                                phases=phases)

    @contextlib.contextmanager
    def _lead(self):
        # Non-blocking, like the cross-worker file lock: a second swap is refused, not queued.
        if not self._leading.acquire(blocking=False):
            raise Conflict("another swap is in progress on this runner; try again when it finishes")
        try:
            with self._first():
                yield
        finally:
            self._leading.release()

    @contextlib.contextmanager
    def _first(self):
        """A swap's steps before the requests: a short GIL switch interval, and the loop aside (runner_image.gil)."""
        with urgent(), self._aside():
            yield

    def _previous_of(self, generation: int) -> int:
        for entry in reversed(self.state.history()):
            if entry["generation"] == generation and entry.get("previous_generation"):
                return entry["previous_generation"]
        raise Conflict("there is no earlier model to roll back to")

    def _load_and_check(self, directory: Path, generation: int, current: ModelSlot, check: Check | None):
        candidate = load_slot(directory, generation, reuse=current)
        if check is not None:
            return candidate, check(candidate), "request"
        samples = candidate.manifest.samples
        answers = check_samples(candidate, samples)
        return candidate, answers, "package sample" if samples else "load only"

    def _announce(self, generation: int) -> set[int]:
        """Mark `generation` staged and ring the other workers to load it; returns who they are."""
        peers = set(self.state.live_workers(exclude=self.pid))
        if peers:
            self.state.set_control(active=self.active().generation, staged=generation)
            self._bell.ring(peers)
        return peers

    def _activate_everywhere(self, candidate: ModelSlot, peers: set[int] | None = None, phases=None) -> None:
        """Every worker loads `candidate` (announced already when `peers` is given), then all switch."""
        phases = phases or Phases(time.monotonic())
        old = self.active().generation
        if peers is None:
            peers = self._announce(candidate.generation)
        if peers:
            try:
                self._wait_for_peers("prepared", candidate.generation, fixed=peers)
            except BaseException:
                self.state.set_control(active=old, staged=None)
                raise
        phases.mark("others_loaded")
        self.state.set_control(active=candidate.generation, staged=None)
        self._switch(candidate)
        if peers:
            self._bell.ring(peers)
            self._wait_for_peers("active", candidate.generation, fixed=None)
        phases.mark("all_switched")

    def _wait_for_peers(self, key: str, generation: int, fixed: set[int] | None) -> None:
        deadline = time.monotonic() + self.settings.swap_timeout
        while True:
            self._rung.clear()  # before reading: a report landing after the read still wakes the wait below
            peers = self.state.live_workers(exclude=self.pid)
            if fixed is not None:
                peers = {pid: info for pid, info in peers.items() if pid in fixed}
            failed = {pid: i for pid, i in peers.items() if i.get("failed") == generation}
            if failed:
                pid, info = next(iter(failed.items()))
                raise ModelRejected(f"worker {pid} could not load the candidate: {info.get('error')}")
            if all(info.get(key) == generation for info in peers.values()):
                return
            if time.monotonic() > deadline:
                late = [pid for pid, info in peers.items() if info.get(key) != generation]
                raise RunnerError(f"workers {late} did not reach '{key}' for generation {generation} "
                                  f"within {self.settings.swap_timeout:.0f}s", status=504)
            self._rung.wait(self.settings.poll_interval / 2)

    def _switch(self, slot: ModelSlot) -> None:
        self.slot = slot  # the one atomic step: later requests see the new model
        self._prepared = None
        self._report(active=slot.generation)
        metrics.model_active(slot)

    def _record(self, action, candidate, previous, *, started, checked, answers, phases=None) -> dict:
        entry = {
            "generation": candidate.generation, "action": action, "previous_generation": previous.generation,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "name": candidate.name,
            "flavour": candidate.manifest.flavour, "sha256": candidate.sha256, "checked_with": checked,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
            "workers": 1 + len(self.state.live_workers(exclude=self.pid)),
        }
        if phases is not None:
            entry["phases_ms"] = phases.durations()
        self.state.append_history(entry)
        self.state.prune(self.settings.keep_generations, {candidate.generation, previous.generation})
        metrics.swap_done(action, entry["duration_ms"] / 1000)
        log.info("swapped to generation %s (%s) in %.1f ms", candidate.generation, action, entry["duration_ms"])
        return {**entry, "answers": answers}

    # following a swap led by another worker ------------------------------
    def _watch(self) -> None:
        """Follows swaps, and only that: always free to answer a ring. (With the periodic steps in this thread
        too, a ring under load waited for a statistics flush: 100-500 ms at the GIL's pace.)"""
        while not self._stop.is_set():
            rung = self._bell.wait(self.settings.poll_interval)
            if rung:
                self._rung.set()  # a thread waiting for the others' reports (a swap, a candidate) looks now
                self._poke.set()
            if self._leading.locked():
                continue
            try:
                # A ring is a swap's step (or a candidate's): taken with the loop aside, not at the GIL's pace.
                with self._first() if rung else contextlib.nullcontext():
                    self._follow(self.state.control())
            except Exception:  # the watcher must survive anything and keep serving
                log.exception("following the control file failed")

    def _tend(self) -> None:
        """The periodic steps, in a thread of their own: every poll interval, and at once after a ring."""
        while not self._stop.is_set():
            self._poke.wait(self.settings.poll_interval)
            self._poke.clear()
            if not self._leading.locked() and not self._stop.is_set():
                self._periodic()

    @property
    def rung(self) -> threading.Event:
        """Set when another worker rang this one; a thread waiting for the others' reports clears it, reads
        the reports, and waits on it (runner_image.variants waits so for a candidate change)."""
        return self._rung

    def ring_others(self) -> None:
        """Wake the other workers now: something they follow in the state directory changed."""
        self._bell.ring(self.state.live_workers(exclude=self.pid))

    def _periodic(self) -> None:
        """What every worker does now and then, beside following swaps (in the periodic thread)."""
        if self.meter:
            self._follow_entitlement()
        for name, step in (("candidate", self.variants.follow), ("statistics", self.stats.flush)):
            try:
                step()
            except Exception:  # the thread must survive anything and keep serving
                log.exception("the periodic %s step failed", name)

    def _follow_entitlement(self) -> None:
        try:
            self.meter.refresh()  # a document another worker installed: verified here, off the request path
        except Exception:
            log.exception("following the entitlement file failed")

    def _follow(self, control: dict) -> None:
        staged, active = control.get("staged"), control.get("active")
        current = self.slot
        prepared = self._prepared.generation if self._prepared else None
        must_prepare = staged and staged not in (prepared, self._failed)
        must_switch = active and current is not None and active != current.generation
        if must_prepare or must_switch:
            with self._first():
                if must_prepare:
                    self._prepare(staged)
                if must_switch:
                    prepared = self._prepared
                    if prepared is None or prepared.generation != active:
                        prepared = self._loaded(active) or load_slot(self.state.generation_dir(active), active,
                                                                     reuse=current)
                    self._switch(prepared)
        self._urgent_until_switch(bool(staged) and self._prepared is not None and self._prepared.generation == staged)

    def _urgent_until_switch(self, waiting: bool) -> None:
        """Between loading a staged generation and the leader's ring to switch, this worker keeps the short
        GIL switch interval: the ring is then answered within half a millisecond's wait for the GIL, not five."""
        if waiting != self._waiting_to_switch:
            (urgent.enter if waiting else urgent.leave)()
            self._waiting_to_switch = waiting

    def _loaded(self, generation: int) -> ModelSlot | None:
        """The generation when this worker holds it loaded already (as a canary or shadow candidate)."""
        return self.variants.slot_for(generation)

    def _prepare(self, generation: int) -> None:
        try:
            self._prepared = self._loaded(generation) or load_slot(self.state.generation_dir(generation), generation,
                                                                   reuse=self.slot)
            self._report(prepared=generation)
        except Exception as exc:
            self._failed = generation
            message = exc.message if isinstance(exc, RunnerError) else f"{type(exc).__name__}: {exc}"
            self._report(failed=generation, error=message)

    def _report(self, **info) -> None:
        slot = self.slot
        self.state.write_worker(self.pid, {"active": slot.generation if slot else None, **info})
        if self._watcher is not None:  # started: the others may be waiting for this report
            self._bell.ring(self.state.live_workers(exclude=self.pid))


class Phases:
    """Milliseconds each step of a swap took (in its history entry): where a slow swap spent its time."""

    def __init__(self, started: float):
        self._last = started
        self._ms: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self._ms[name] = round((now - self._last) * 1000, 1)
        self._last = now

    def durations(self) -> dict[str, float]:
        return dict(self._ms)


# ---------------------------------------------------------------- staging helpers

def link_or_copy(source: Path, target: Path) -> None:
    """Hard links make proto and configuration swaps cheap; copy where links are not possible."""
    if source.is_dir():
        shutil.copytree(source, target, copy_function=_link_file)
    else:
        _link_file(source, target)


def _link_file(source, target) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def stage_package(directory: Path, package: Path, limits: ExtractLimits) -> None:
    """Put a model package in place: check its manifest, extract it safely, keep the zip."""
    manifest = read_manifest_from_zip(package)
    safe_extract(package, directory / MODEL_DIR, limits)
    if not (directory / MODEL_DIR / manifest.model).exists():
        raise ModelRejected(f"runner.json names model {manifest.model!r}, which is not in the zip")
    write_json(directory / MANIFEST_COPY, manifest.to_dict())
    if package != directory / PACKAGE_FILE:
        shutil.move(str(package), directory / PACKAGE_FILE)


def inherit(directory: Path, current: ModelSlot, names: tuple[str, ...]) -> None:
    """Link the parts a swap does not replace from the generation serving now."""
    for name in names:
        source = current.directory / name
        if source.exists() and not (directory / name).exists():
            link_or_copy(source, directory / name)


def seed(state: StateDir, bundle_dir: Path, limits: ExtractLimits) -> int:
    """Make generation 1 (or the next one) from a bundle directory and mark it active."""
    missing = [n for n in (METADATA_FILE, PROTO_FILE, PACKAGE_FILE) if not (bundle_dir / n).is_file()]
    if missing:
        raise SystemExit(f"{bundle_dir} is not a model bundle: missing {', '.join(missing)}")
    generation, directory = state.new_generation()
    try:
        for name in (METADATA_FILE, PROTO_FILE):
            shutil.copy2(bundle_dir / name, directory / name)
        shutil.copy2(bundle_dir / PACKAGE_FILE, directory / ".incoming.zip")
        stage_package(directory, directory / ".incoming.zip", limits)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    state.set_control(active=generation, staged=None)
    return generation


def record_seed(state: StateDir, slot: ModelSlot) -> None:
    state.append_history({
        "generation": slot.generation, "action": "start", "previous_generation": None,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "name": slot.name,
        "flavour": slot.manifest.flavour, "sha256": slot.sha256, "checked_with": "load only",
        "duration_ms": 0.0, "workers": 0,
    })


__all__ = ["Runtime", "stage_package", "inherit", "seed", "record_seed", "CONFIG_FILE"]
