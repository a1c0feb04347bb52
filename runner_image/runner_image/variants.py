"""Canary and shadow candidates inside one runner: a second model, with the live model's interface, that
every worker holds beside the live one.

- canary: the candidate answers `weight` % of the requests (by a hash of X-Routing-Key into 10,000 buckets
  when `sticky` is set and the request has a key, else at random); its failures are the caller's answer.
- shadow: the live model answers every request; the candidate also answers `weight` % of them in a thread of
  each worker, from a bounded queue (a full queue drops and counts: the request never waits), and each of
  its answers is compared with the live one. Its answers are never returned.

How the workers agree (the state directory, runner_image.state):
- candidate.json describes the candidate (generation, mode, weight, sticky, the live generation it was set
  beside) or the last one and how it ended; it is written only under the swap lock, by the worker that
  answers the admin call (runner_image.variants_api). Each change bumps its `revision`.
- every worker's periodic thread calls follow(): it loads the candidate (sharing the live model object when the
  package is the same) or drops it, and writes variants/<pid>.json: what it holds, what it could not
  load, and its per-variant counts. The admin call waits for those reports, as a swap waits for
  workers/<pid>.json.
- a candidate belongs to the live model it was set beside: any swap (PUT /model, /proto, configuration,
  rollback) drops it. Each worker stops routing to it as soon as it serves another live generation; the
  first worker to see the swap finished marks it dropped and records that in the history.
- promotion is runtime.adopt: every worker switches to the slot it already holds (slot_for).

A request reads the held candidate once (one reference, like runtime.slot), so it is answered wholly by
one variant.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import random
import shutil
import threading
import time
import uuid
import weakref
from collections import deque
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from runner_image import metrics
from runner_image.codec import message_to_dict
from runner_image.errors import BadRequest, Conflict, ModelRejected, NotFound, NotReady, RunnerError
from runner_image.slot import ModelSlot, check_samples, load_slot

log = logging.getLogger("runner_image")

MODES = ("canary", "shadow")
BUCKETS = 10_000            # routing granularity: a weight is honoured to 0.01 %
HELD_STATES = ("active", "promoting")  # a candidate in these states is held by every worker
REL_TOLERANCE = 1e-6        # floats closer than this (relative) are the same answer
FLUSH_EVERY = 0.25          # seconds between two writes of a worker's counts (status changes: at once)


# ---------------------------------------------------------------- counting

# Latency histogram: bucket 0 is up to 10 us, bucket i up to 10 us * 1.25**i, the last one everything
# above ~60 s. A fixed set of buckets keeps the memory and the merge constant whatever the traffic; a
# quantile is read as its bucket's upper bound (at most 25 % above the true figure).
_LATENCY_FLOOR = 1e-5
_LATENCY_STEP = 1.25
_LATENCY_BUCKETS = 72


def latency_bucket(seconds: float) -> int:
    if seconds <= _LATENCY_FLOOR:
        return 0
    index = 1 + int(math.log(seconds / _LATENCY_FLOOR) / math.log(_LATENCY_STEP))
    return min(index, _LATENCY_BUCKETS - 1)


def latency_quantile(histogram: dict, q: float) -> float | None:
    """The upper bound (seconds) of the bucket holding the q-quantile, or None without data."""
    counts = {int(k): v for k, v in histogram.items()}
    total = sum(counts.values())
    if not total:
        return None
    rank, seen = max(1, math.ceil(q * total)), 0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= rank:
            return _LATENCY_FLOOR * _LATENCY_STEP ** index
    return None  # unreachable: the counts add up to total


_NUMBERS = ("requests", "errors", "compared", "agreed", "dropped")


def _empty_counts() -> dict:
    return {**dict.fromkeys(_NUMBERS, 0), "latency": {}}


class Meter:
    """One worker's counts for one candidate (its `epoch`, the candidate's id), per variant. Updated on the
    request path and by the shadow thread, so behind a lock; plain numbers, so a snapshot is cheap."""

    def __init__(self, epoch: str):
        self.epoch = epoch
        self._lock = threading.Lock()
        self._counts: dict[str, dict] = {}
        self.changed = False

    def _variant(self, variant: str) -> dict:
        counts = self._counts.get(variant)
        if counts is None:
            counts = self._counts[variant] = _empty_counts()
        return counts

    def answered(self, variant: str, seconds: float, failed: bool = False) -> None:
        bucket = str(latency_bucket(seconds))
        with self._lock:
            counts = self._variant(variant)
            counts["requests"] += 1
            counts["errors"] += failed
            counts["latency"][bucket] = counts["latency"].get(bucket, 0) + 1
            self.changed = True

    def compared(self, variant: str, agreed: bool) -> None:
        with self._lock:
            counts = self._variant(variant)
            counts["compared"] += 1
            counts["agreed"] += agreed
            self.changed = True

    def dropped(self, variant: str) -> None:
        with self._lock:
            self._variant(variant)["dropped"] += 1
            self.changed = True

    def take_changed(self) -> bool:
        """Whether anything was counted since the last call."""
        with self._lock:
            changed, self.changed = self.changed, False
            return changed

    def snapshot(self) -> dict:
        with self._lock:
            return {variant: {**counts, "latency": dict(counts["latency"])} for variant, counts in self._counts.items()}


def merge_counts(snapshots: list[dict]) -> dict:
    """Sum per-variant counts from several workers."""
    merged: dict[str, dict] = {}
    for snapshot in snapshots:
        for variant, counts in (snapshot or {}).items():
            total = merged.setdefault(variant, _empty_counts())
            for name in _NUMBERS:
                total[name] += int(counts.get(name, 0))
            for bucket, n in counts.get("latency", {}).items():
                total["latency"][bucket] = total["latency"].get(bucket, 0) + int(n)
    return merged


def summarize(counts: dict) -> dict:
    """The figures an operator reads for one variant (GET /model/candidate)."""
    requests, compared = counts["requests"], counts["compared"]
    figures = {"requests": requests, "errors": counts["errors"],
               "error_rate": round(counts["errors"] / requests, 6) if requests else None,
               "latency_ms": {name: _ms(latency_quantile(counts["latency"], q))
                              for name, q in (("p50", 0.5), ("p99", 0.99))}}
    if compared or counts["dropped"]:
        figures.update(compared=compared, agreed=counts["agreed"], dropped=counts["dropped"],
                       agreement_rate=round(counts["agreed"] / compared, 6) if compared else None)
    return figures


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def same_answer(live, other) -> bool:
    """Equal answers (message_to_dict of both); floats within REL_TOLERANCE of each other, NaN equal to NaN."""
    if isinstance(live, float) or isinstance(other, float):
        if isinstance(live, bool) or isinstance(other, bool) or not isinstance(live, (int, float)) \
                or not isinstance(other, (int, float)):
            return False
        if math.isnan(live) or math.isnan(other):
            return math.isnan(live) and math.isnan(other)
        return live == other or math.isclose(live, other, rel_tol=REL_TOLERANCE, abs_tol=0.0)
    if isinstance(live, dict) and isinstance(other, dict):
        return live.keys() == other.keys() and all(same_answer(live[k], other[k]) for k in live)
    if isinstance(live, list) and isinstance(other, list):
        return len(live) == len(other) and all(same_answer(a, b) for a, b in zip(live, other, strict=True))
    return type(live) is type(other) and live == other


# ---------------------------------------------------------------- what a worker holds

@dataclass(frozen=True)
class MeasuredSlot(ModelSlot):
    """A slot that counts its answers, failures and latency under a variant's name. What choose() hands
    out while a candidate is set (the raw slots stay what runtime.slot and slot_for hold)."""

    meter: Meter | None = field(default=None, repr=False, compare=False)
    variant: str = "live"
    raw: ModelSlot | None = field(default=None, repr=False, compare=False)  # the slot measured

    @classmethod
    def of(cls, slot: ModelSlot, meter: Meter, variant: str) -> MeasuredSlot:
        values = {f.name: getattr(slot, f.name) for f in dataclasses.fields(ModelSlot)}
        return cls(**values, meter=meter, variant=variant, raw=slot)

    def predict(self, method: str, request_msg):
        started = time.perf_counter()
        try:
            out = super().predict(method, request_msg)
        except BadRequest:  # the caller's fault, whichever variant read it: not the model's error
            raise
        except Exception:
            self.meter.answered(self.variant, time.perf_counter() - started, failed=True)
            raise
        self.meter.answered(self.variant, time.perf_counter() - started)
        return out

    def predict_batch(self, method: str, request_msgs: list) -> list:
        """runner_image.batching's joint call: each request counted, with the time the call took (what each
        of them waited). The raw slot answers, so that its fallback to predict() is not counted twice."""
        started = time.perf_counter()
        answers = self.raw.predict_batch(method, request_msgs)
        seconds = time.perf_counter() - started
        for answer in answers:
            if not isinstance(answer, BadRequest):
                self.meter.answered(self.variant, seconds, failed=isinstance(answer, BaseException))
        return answers


@dataclass(frozen=True)
class Held:
    """The candidate one worker holds, and how it routes: replaced whole on each change (one reference)."""

    id: str
    revision: int
    mode: str
    sticky: bool
    threshold: int           # buckets out of BUCKETS that go to the candidate
    slot: ModelSlot          # the candidate as loaded (what a promotion switches to)
    live: ModelSlot          # the live slot it was loaded beside: another one means a swap came in between
    measured_live: MeasuredSlot
    measured_candidate: MeasuredSlot
    meter: Meter

    @classmethod
    def make(cls, description: dict, slot: ModelSlot, live: ModelSlot, meter: Meter) -> Held:
        mode = description["mode"]
        return cls(id=description["id"], revision=description["revision"], mode=mode,
                   sticky=bool(description.get("sticky")), threshold=round(float(description["weight"]) * 100),
                   slot=slot, live=live, measured_live=MeasuredSlot.of(live, meter, "live"),
                   measured_candidate=MeasuredSlot.of(slot, meter, mode), meter=meter)

    def revised(self, description: dict) -> Held:
        return Held.make(description, self.slot, self.live, self.meter)

    def takes(self, routing_key: str | None) -> bool:
        """Whether this request goes to the candidate: the same key always lands in the same bucket (in every
        worker: the hash is keyed by the candidate's id, so each candidate splits the keys afresh)."""
        if self.threshold <= 0:
            return False
        if self.threshold >= BUCKETS:
            return True
        if self.sticky and routing_key:
            digest = hashlib.blake2b(routing_key.encode("utf-8", "surrogatepass"), digest_size=8,
                                     key=self.id.encode()[:64]).digest()
            bucket = int.from_bytes(digest, "big") % BUCKETS
        else:
            bucket = random.randrange(BUCKETS)
        return bucket < self.threshold


@dataclass(frozen=True)
class ShadowJob:
    held: Held
    method: str
    msg: object
    live_out: object


SHADOW_BATCH = 64  # most waiting shadow requests answered by one call


class ShadowQueue:
    """Requests waiting for the shadow candidate, bounded in count and bytes; one thread answers them. The
    thread starts with the first job and ends after a while without any (a worker without a shadow keeps
    none)."""

    IDLE_SECONDS = 10.0

    def __init__(self, max_items: int, max_bytes: int, work):
        self._max_items, self._max_bytes, self._work = max_items, max_bytes, work
        self._jobs: deque = deque()
        self._bytes = 0
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    def offer(self, job: ShadowJob, size: int) -> bool:
        """Queue the job, or return False at once when it does not fit (never waits)."""
        with self._ready:
            if len(self._jobs) >= self._max_items or self._bytes + size > self._max_bytes:
                return False
            self._jobs.append((job, size))
            self._bytes += size
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="runner-shadow", daemon=True)
                self._thread.start()
            self._ready.notify()
        return True

    def _run(self) -> None:
        while True:
            with self._ready:
                if not self._jobs:
                    self._ready.wait(self.IDLE_SECONDS)
                if not self._jobs:
                    self._thread = None
                    return
                # Every job waiting, up to a batch: the candidate answers them with one call where it can
                # (runner_image.batching's rule), so a shadow costs what its model's batched calls cost.
                jobs = [self._jobs.popleft() for _ in range(min(len(self._jobs), SHADOW_BATCH))]
                self._bytes -= sum(size for _, size in jobs)
            try:
                self._work([job for job, _ in jobs])
            except Exception:  # the shadow thread must survive anything: the next jobs may be fine
                log.exception("shadow predictions failed unexpectedly")


@dataclass(frozen=True)
class Staged:
    """A candidate generation built and checked by runtime.stage, not served yet."""

    slot: ModelSlot
    answers: dict
    checked: str
    based_on: int  # the live generation its unsent parts were taken from


# ---------------------------------------------------------------- the variants of one worker

class Variants:
    def __init__(self, runtime):
        self.runtime = runtime
        self._held: Held | None = None
        self._meter: Meter | None = None  # the counts of the last candidate held here (kept after it ends)
        self._failed: str | None = None   # a candidate this worker could not load: not retried
        self._error: str | None = None
        self._lock = threading.RLock()    # holding, dropping and reporting; never taken on the request path
        self._reported: dict | None = None
        self._flushed_at = 0.0
        settings = runtime.settings
        self._shadow = ShadowQueue(settings.shadow_queue_size, settings.shadow_queue_bytes, self._answer_shadow)
        _COLLECTOR.attach(self)
        metrics.add_shared_collector(_COLLECTOR)

    @property
    def candidate(self) -> ModelSlot | None:
        """The candidate's slot in this worker, or None."""
        held = self._held
        return held.slot if held else None

    # the request path ------------------------------------------------------
    def choose(self, call):
        """(slot, variant) for this call: the live model, or the canary for its share of traffic."""
        live = self.runtime.active()
        held = self._held
        if held is None or held.live is not live:  # no candidate, or a swap came in: the live model alone
            return live, "live"
        if held.mode == "canary" and held.takes(call.routing_key):
            return held.measured_candidate, "canary"
        return held.measured_live, "live"

    def after(self, slot, variant, call, msg, out) -> None:
        """Called after each answer: a shadow candidate answers the same request in the background."""
        held = self._held
        if held is None or held.mode != "shadow" or slot is not held.measured_live or not held.takes(call.routing_key):
            return
        if not self._shadow.offer(ShadowJob(held, call.method, msg, out), msg.ByteSize() + out.ByteSize()):
            held.meter.dropped("shadow")

    def _answer_shadow(self, jobs: list[ShadowJob]) -> None:
        held = self._held
        current = [job for job in jobs if held is not None and held.id == job.held.id and held.mode == "shadow"]
        for job in jobs:
            if job not in current:  # promoted, ended or now a canary
                job.held.meter.dropped("shadow")
        by_method: dict[str, list[ShadowJob]] = {}
        for job in current:
            by_method.setdefault(job.method, []).append(job)
        for method, group in by_method.items():
            self._answer_shadow_batch(held, method, group)

    @staticmethod
    def _answer_shadow_batch(held: Held, method: str, jobs: list[ShadowJob]) -> None:
        started = time.perf_counter()
        if held.slot.batchable and len(jobs) > 1:
            outs = held.slot.predict_batch(method, [job.msg for job in jobs])
        else:
            outs = [held.slot.predict_or_error(method, job.msg) for job in jobs]
        seconds = time.perf_counter() - started  # what each of them waited for its answer
        for job, out in zip(jobs, outs, strict=True):
            failed = isinstance(out, BaseException)  # only counted: nobody waits for this answer
            held.meter.answered("shadow", seconds, failed=failed)
            if not failed:
                held.meter.compared("shadow", same_answer(message_to_dict(job.live_out), message_to_dict(out)))

    def slot_for(self, generation: int):
        """The candidate's slot when it is `generation` and loaded in this worker, else None."""
        slot = self.candidate
        return slot if slot is not None and slot.generation == generation else None

    # following the other workers -------------------------------------------
    def follow(self) -> None:
        """Called by every worker's periodic thread: load or drop the candidate another worker set, share the counts."""
        with self._lock:  # read and applied together: a change written by this worker meanwhile is not undone
            description = self.runtime.state.candidate()
            self._apply(description)
            self._flush()
        if description and description.get("state") in HELD_STATES:
            self._settle(description)

    def _apply(self, description: dict | None) -> None:
        wanted = description if description and description.get("state") in HELD_STATES else None
        held = self._held
        if held is not None and (wanted is None or wanted["id"] != held.id):
            self._drop()
        elif held is not None:
            if held.revision != wanted["revision"]:
                self._held = held.revised(wanted)
                self._report()
            return
        if wanted is None or wanted["id"] == self._failed:
            return
        live = self.runtime.slot
        if live is None or live.generation != wanted["live_generation"]:
            return  # set beside another live model: it is being dropped (_settle), or promoted already
        try:
            slot = load_slot(self.runtime.state.generation_dir(wanted["generation"]), wanted["generation"], reuse=live)
        except Exception as exc:
            self._failed, self._error = wanted["id"], _reason(exc)
            log.error("could not load candidate generation %s: %s", wanted["generation"], self._error)
            self._report()
            return
        self._hold(wanted, slot, live)

    def _hold(self, description: dict, slot: ModelSlot, live: ModelSlot) -> None:
        if self._meter is None or self._meter.epoch != description["id"]:
            self._meter = Meter(description["id"])  # a new candidate: its counts start at zero
        self._held = Held.make(description, slot, live, self._meter)
        self._report()

    def _drop(self) -> None:
        self._held = None
        self._report()

    def _report(self, force: bool = True) -> None:
        """Write this worker's variants/<pid>.json: what it holds, at once; its counts, now and then."""
        held, meter = self._held, self._meter
        status = {"holding": held.id if held else None, "revision": held.revision if held else None,
                  "failed": self._failed, "error": self._error, "epoch": meter.epoch if meter else None}
        changed = meter.take_changed() if meter else False
        if not force and not changed and (status == self._reported or (self._reported is None and meter is None)):
            return  # nothing new (a worker that never held a candidate writes nothing)
        self._reported = status
        self._flushed_at = time.monotonic()
        counts = meter.snapshot() if meter else {}
        self.runtime.state.write_variant_report(self.runtime.pid, {**status, "counts": counts})
        if force:  # what it holds changed: a worker may be waiting for this report
            self.runtime.ring_others()

    def stop(self) -> None:
        """The worker is stopping: its counts since the last flush are written, not lost."""
        self._report(force=False)

    def _flush(self) -> None:
        if time.monotonic() - self._flushed_at >= FLUSH_EVERY:
            self._report(force=False)

    def _settle(self, description: dict) -> None:
        """Finish what a swap did to the candidate: a swap of the live model drops it; a promotion whose
        leader could not write its end is marked promoted. Whoever gets the swap lock first does it."""
        control = self.runtime.state.control()
        if control.get("staged"):
            return  # a swap is under way: look again once it has finished
        active = control.get("active")
        replaced = description["state"] == "active" and active != description["live_generation"]
        promoted = description["state"] == "promoting" and active == description["generation"]
        if not (replaced or promoted):
            return
        with contextlib.suppress(Conflict), self.runtime.state.swap_lock():
            current, control = self.runtime.state.candidate(), self.runtime.state.control()
            if current != description or control.get("staged") or control.get("active") != active:
                return  # changed meanwhile: the next round looks again
            if replaced:
                self._end(description, "dropped", "drop", f"generation {active} replaced the live model "
                          f"(generation {description['live_generation']}) the candidate was set beside")
            else:
                self._end(description, "promoted", None, "promoted")

    # the admin calls (runner_image.variants_api), each in a thread ----------
    def stage(self, action: str, build, check) -> Staged:
        """swaps.from_form's `apply`: build and check a candidate generation without serving it."""
        based_on = []

        def recording_build(directory, current):
            based_on.append(current.generation)
            build(directory, current)

        slot, answers, checked = self.runtime.stage(action, recording_build, check)
        return Staged(slot, answers, checked, based_on[0])

    def set_staged(self, staged: Staged, plan: dict) -> dict:
        """Make an uploaded candidate (runtime.stage's) the candidate of every worker."""
        try:
            with self.runtime.state.swap_lock():
                live = self.runtime.active()
                if staged.based_on != live.generation:
                    raise Conflict(f"the live model changed while the candidate was staged (generation "
                                   f"{live.generation} serves now, not {staged.based_on}); send the candidate again")
                return self._install(staged.slot, plan, live, source="upload", checked=staged.checked,
                                     answers=staged.answers)
        except BaseException:
            shutil.rmtree(staged.slot.directory, ignore_errors=True)  # never served nor recorded
            raise

    def set_kept(self, generation: int, plan: dict) -> dict:
        """Make a kept generation (one the runner served or staged before) the candidate of every worker."""
        with self.runtime.state.swap_lock():
            live = self.runtime.active()
            self.refuse_if_set()
            if generation == live.generation:
                raise Conflict(f"generation {generation} is the live model; a candidate must be another one",
                               {"generation": generation})
            directory = self.runtime.state.generation_dir(generation)
            if not directory.exists():
                kept = [g for g in self.runtime.state.existing_generations() if g != live.generation]
                raise NotFound(f"generation {generation} is not kept; kept: {kept or 'none but the live one'}",
                               {"generation": generation, "kept": kept})
            try:
                slot = load_slot(directory, generation, reuse=live)
            except RunnerError:
                raise
            except Exception as exc:  # a generation pruned meanwhile, or damaged on disk
                raise ModelRejected(f"generation {generation} cannot be loaded: {_reason(exc)}",
                                    {"generation": generation}) from exc
            check_interface(slot, live)
            answers = check_samples(slot, slot.manifest.samples)
            checked = "package sample" if slot.manifest.samples else "load only"
            return self._install(slot, plan, live, source="kept", checked=checked, answers=answers)

    def refuse_if_set(self) -> None:
        current = self.runtime.state.candidate()
        if current and current.get("state") in HELD_STATES:
            raise Conflict(f"a candidate is already set (generation {current['generation']}, {current['mode']} "
                           f"{current['weight']} %, state {current['state']}): promote it "
                           "(POST /model/candidate/promote) or remove it (DELETE /model/candidate) first",
                           {"candidate": current["generation"]})

    def _install(self, slot: ModelSlot, plan: dict, live: ModelSlot, *, source: str, checked: str,
                 answers: dict) -> dict:
        """Under the swap lock: write the description, hold it here, wait until every worker holds it."""
        started = time.monotonic()
        self.refuse_if_set()
        check_interface(slot, live)
        description = {
            "id": uuid.uuid4().hex, "revision": 1, "state": "active", "generation": slot.generation,
            "live_generation": live.generation, "mode": plan["mode"], "weight": plan["weight"],
            "sticky": plan.get("sticky", False), "name": slot.name, "flavour": slot.manifest.flavour,
            "sha256": slot.sha256, "source": source, "checked_with": checked, "set_at": _now(),
            "changed_at": None, "ended_at": None, "reason": None,
        }
        with self._lock:
            self.runtime.state.set_candidate(description)
            self.runtime.ring_others()
            self._prune_reports()
            self._failed = self._error = None
            self._hold(description, slot, live)
        try:
            self._wait_for_workers(lambda r: r.get("holding") == description["id"], failed=description["id"])
        except BaseException as exc:
            self._end(description, "failed", None, _reason(exc))
            raise
        self._record("candidate", description, started)
        return {**self.describe(), "checked_with": checked, "answers": answers}

    def change(self, changes: dict) -> dict:
        """PATCH: a new weight, mode or stickiness for the candidate, in every worker before answering."""
        with self.runtime.state.swap_lock():
            started = time.monotonic()
            current = self._current(for_what="change")
            description = {**current, **changes, "revision": current["revision"] + 1, "changed_at": _now()}
            self._write(description)
            self._record("weight", description, started)  # in effect now: the workers follow it even if late
            self._wait_for_workers(lambda r: r.get("holding") == description["id"]
                                   and (r.get("revision") or 0) >= description["revision"])
        return self.describe()

    def promote(self) -> dict:
        """The candidate becomes the live model in every worker (runtime.adopt), atomically per request."""
        with self.runtime.state.swap_lock():
            current = self._current(for_what="promote")
            held = self._held
            if held is None or held.id != current["id"]:
                raise NotReady("this worker does not hold the candidate yet; try again in a moment")
            promoting = {**current, "state": "promoting", "changed_at": _now()}
            self._write(promoting)
        try:
            entry = self.runtime.adopt("promote", held.slot)
        except BaseException:
            self._with_lock(lambda: self._restore(promoting, current))
            raise
        self._with_lock(lambda: self._finish_promotion(promoting))
        self._wait_for_workers(lambda r: r.get("holding") != current["id"], quiet=True)
        return {**entry, "candidate": self.runtime.state.candidate()}

    def _restore(self, promoting: dict, current: dict) -> None:
        if self.runtime.state.candidate() == promoting:
            self._write(current)

    def _finish_promotion(self, promoting: dict) -> None:
        found = self.runtime.state.candidate()
        if found and found["id"] == promoting["id"] and found["state"] in HELD_STATES:
            self._end(found, "promoted", None, "promoted")

    def abort(self) -> dict:
        """DELETE: the candidate is removed from every worker; its generation stays for the normal pruning."""
        with self.runtime.state.swap_lock():
            current = self._current(for_what="remove", promoting_too=True)
            self._end(current, "aborted", "abort", "aborted with DELETE /model/candidate")
        self._wait_for_workers(lambda r: r.get("holding") != current["id"])
        return self.describe()

    def _current(self, for_what: str, promoting_too: bool = False) -> dict:
        current = self.runtime.state.candidate()
        if not current or current.get("state") not in HELD_STATES:
            raise NotFound(f"there is no candidate to {for_what}; set one with PUT /model/candidate")
        if current["state"] == "promoting" and not promoting_too:
            raise Conflict(f"the candidate (generation {current['generation']}) is being promoted")
        return current

    def _end(self, description: dict, state: str, action: str | None, reason: str) -> None:
        """Under the swap lock: the candidate ends (every worker drops it), recorded in the history first, so
        whoever reads the ended state finds its entry there too."""
        if action:
            self._record(action, description, time.monotonic(), reason=reason)
        self._write({**description, "state": state, "ended_at": _now(), "reason": reason})

    def _write(self, description: dict) -> None:
        """Under the swap lock: write the description and apply it here in one step (see follow)."""
        with self._lock:
            self.runtime.state.set_candidate(description)
            self.runtime.ring_others()
            self._apply(description)

    def _record(self, action: str, description: dict, started: float, **extra) -> None:
        """A history entry shaped like a swap's (runtime._record): `generation` is the candidate's and
        `previous_generation` the live model it stands beside; `candidate` says how it was routed."""
        self.runtime.state.append_history({
            "generation": description["generation"], "action": action,
            "previous_generation": description["live_generation"], "at": _now(), "name": description["name"],
            "flavour": description["flavour"], "sha256": description["sha256"],
            "checked_with": description["checked_with"], "duration_ms": round((time.monotonic() - started) * 1000, 1),
            "workers": 1 + len(self.runtime.state.live_workers(exclude=self.runtime.pid)),
            "candidate": {k: description[k] for k in ("mode", "weight", "sticky")}, **extra,
        })

    def _with_lock(self, step) -> None:
        """Run `step` under the swap lock, waiting for it (another swap may hold it a moment)."""
        deadline = time.monotonic() + self.runtime.settings.swap_timeout
        while True:
            try:
                with self.runtime.state.swap_lock():
                    step()
                    return
            except Conflict:
                if time.monotonic() > deadline:
                    log.error("could not take the swap lock to finish a candidate change; the periodic threads will")
                    return
                time.sleep(self.runtime.settings.poll_interval)

    def _wait_for_workers(self, done, failed: str | None = None, quiet: bool = False) -> None:
        """Wait until every other live worker's report satisfies `done` (like runtime._wait_for_peers)."""
        settings = self.runtime.settings
        deadline = time.monotonic() + settings.swap_timeout
        while True:
            self.runtime.rung.clear()  # before reading: a report landing after the read still wakes the wait
            peers = self.runtime.state.live_workers(exclude=self.runtime.pid)
            reports = self.runtime.state.variant_reports()
            for pid in peers:
                report = reports.get(pid, {})
                if failed and report.get("failed") == failed:
                    raise ModelRejected(f"worker {pid} could not load the candidate: {report.get('error')}")
            late = [pid for pid in peers if not done(reports.get(pid, {}))]
            if not late:
                return
            if time.monotonic() > deadline:
                if quiet:
                    log.warning("workers %s did not follow the candidate change within %.0fs", late,
                                settings.swap_timeout)
                    return
                raise RunnerError(f"workers {late} did not follow the candidate change within "
                                  f"{settings.swap_timeout:.0f}s", status=504)
            self.runtime.rung.wait(settings.poll_interval / 2)

    def _prune_reports(self) -> None:
        """A new candidate: the reports of dead workers counted the last one, and count for nothing now."""
        live = set(self.runtime.state.live_workers())
        for pid in self.runtime.state.variant_reports():
            if pid not in live:
                self.runtime.state.remove_variant_report(pid)

    # what GET /model/candidate and /metrics show ---------------------------
    def describe(self) -> dict:
        description = self.runtime.state.candidate()
        live = self.runtime.active()
        answer = {"candidate": description, "live": {"generation": live.generation, "name": live.name},
                  "metrics": {}, "workers": {}}
        if description is None:
            return answer
        merged, holding = self.merged(description["id"])
        answer["metrics"] = {variant: summarize(counts) for variant, counts in sorted(merged.items())}
        answer["workers"] = {"total": 1 + len(self.runtime.state.live_workers(exclude=self.runtime.pid)),
                             "holding": holding}
        return answer

    def merged(self, epoch: str) -> tuple[dict, int]:
        """Every worker's counts for candidate `epoch` (this one's from memory, dead workers' last ones), and
        how many live workers hold it now."""
        reports = self.runtime.state.variant_reports()
        live = set(self.runtime.state.live_workers(exclude=self.runtime.pid))
        snapshots = [report.get("counts") for pid, report in reports.items()
                     if pid != self.runtime.pid and report.get("epoch") == epoch]
        meter = self._meter
        if meter is not None and meter.epoch == epoch:
            snapshots.append(meter.snapshot())
        held = self._held
        holding = sum(1 for pid in live if reports.get(pid, {}).get("holding") == epoch)
        holding += held is not None and held.id == epoch
        return merge_counts(snapshots), holding


def check_interface(slot: ModelSlot, live: ModelSlot) -> None:
    """A candidate answers the live model's requests: it must have the live model's proto, byte for byte."""
    if slot.sha256["proto"] != live.sha256["proto"]:
        raise Conflict("the candidate's interface differs from the live model's: its proto's sha256 is "
                       f"{slot.sha256['proto'][:16]}..., the live one's {live.sha256['proto'][:16]}... A canary "
                       "or shadow candidate must answer the same requests; change the interface with PUT /model",
                       {"candidate_proto_sha256": slot.sha256["proto"], "live_proto_sha256": live.sha256["proto"]})


def _reason(exc: BaseException) -> str:
    return exc.message if isinstance(exc, RunnerError) else f"{type(exc).__name__}: {exc}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---------------------------------------------------------------- Prometheus

class VariantCollector:
    """The merged per-variant figures of the candidate (or of the last one), for /metrics. One per process,
    reading the latest runtime's Variants (an in-process test makes several apps)."""

    def __init__(self):
        self._variants = None

    def attach(self, variants: Variants) -> None:
        self._variants = weakref.ref(variants)

    def collect(self):
        variants = self._variants() if self._variants else None
        description = variants.runtime.state.candidate() if variants else None
        if description is None:
            return
        merged, _ = variants.merged(description["id"])
        yield from _families(description, merged)

    def describe(self):  # no metrics known before the first scrape: keeps registration from calling collect()
        return []


def _families(description: dict, merged: dict):
    requests = CounterMetricFamily("runner_variant_requests", "Predictions answered by each variant of the "
                                   "current (or last) canary/shadow candidate, all workers", labels=["variant"])
    errors = CounterMetricFamily("runner_variant_errors", "Predictions a variant failed", labels=["variant"])
    latency = GaugeMetricFamily("runner_variant_latency_seconds", "Prediction latency quantiles per variant "
                                "(upper bound of a 25 % wide bucket)", labels=["variant", "quantile"])
    compared = CounterMetricFamily("runner_shadow_compared", "Shadow answers compared with the live one")
    agreed = CounterMetricFamily("runner_shadow_agreed", "Shadow answers equal to the live one")
    dropped = CounterMetricFamily("runner_shadow_dropped", "Requests the shadow could not take (queue full)")
    ratio = GaugeMetricFamily("runner_shadow_agreement_ratio", "Share of compared shadow answers equal to the live one")
    weight = GaugeMetricFamily("runner_candidate_weight_percent", "The candidate's share of traffic, while set",
                               labels=["mode", "generation"])
    for variant, counts in sorted(merged.items()):
        requests.add_metric([variant], counts["requests"])
        errors.add_metric([variant], counts["errors"])
        for q in ("0.5", "0.99"):
            value = latency_quantile(counts["latency"], float(q))
            if value is not None:
                latency.add_metric([variant, q], value)
    shadow = merged.get("shadow")
    if shadow:
        compared.add_metric([], shadow["compared"])
        agreed.add_metric([], shadow["agreed"])
        dropped.add_metric([], shadow["dropped"])
        if shadow["compared"]:
            ratio.add_metric([], shadow["agreed"] / shadow["compared"])
    if description.get("state") in HELD_STATES:
        weight.add_metric([description["mode"], str(description["generation"])], float(description["weight"]))
    yield from (requests, errors, latency, compared, agreed, dropped, ratio, weight)


_COLLECTOR = VariantCollector()
