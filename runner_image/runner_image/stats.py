"""Drift statistics: what every input and output field looked like, per method, generation and variant,
over tumbling time windows, shared between the worker processes through the state directory.

    stats/windows/<pid>-<token>/<start ms>.json   one worker's part of one window
    stats/reference/first-<method>-<generation>-<variant>.json, posted-<method>.json
    stats/answers.sqlite                          recent answers and the feedback joined to them

The request path (`record`) only appends to a bounded queue; the periodic thread (`flush`, every poll
interval) folds the queue into the current window: per field a `sketch.FieldStats` (a log-bucketed
histogram with 1 % relative accuracy and a cap on its buckets, merged moments, NaN and infinity counts for
numbers; top-K counts plus "other" for strings, bools and enums; both for integers). Every element of a
repeated field counts; nested messages are walked (4 levels) and their fields named by path (`rows.x`).
At most every `stats_flush_interval` a worker writes its current window (atomic replace); a closed window
is written once more, final. Readers merge every worker's files, those of workers gone too, until their
windows are older than the `stats_windows` kept. Windows start at multiples of their length since the
epoch, so every worker's parts of a window line up.

Drift scores compare the current windows with a reference (runner_image.drift): by default the first full
window of the generation (pinned to a file once closed, so that it outlives the windows kept), or a
reference set posted by the owner, or another generation's windows. Why these scores:
- Numbers: PSI over 10 bins at the reference's deciles, the Wasserstein-1 distance divided by the
  reference's standard deviation, and the two-sample Kolmogorov-Smirnov statistic against its critical
  value at 5 %. Wasserstein decides when both sides hold more than 1000 values (Evidently's default on large
  data); KS decides when either side holds fewer, as in Evidently. A distance needs many values to be
  read against a fixed bound: two samples of about 150 values from one normal distribution gave
  Wasserstein 0.10 to 0.22 (over its 0.1 bound) round after round, which fired drift alerts on a quiet
  deployment; KS's bound widens as samples shrink. KS is not used on large samples, where every test finds
  trivial differences (evidently#50). From these histograms it is stable: the CDFs are exact at bucket
  edges 1 % apart (whylogs#684's unstable p-values came from a lossy quantile sketch).
- Categories (and integers with at most 5 values, as Evidently treats them): the Jensen-Shannon distance,
  Evidently's default on large data, and Pearson's chi-squared test of homogeneity with its p-value, for
  small samples, where a test is what one wants.
Usual thresholds, returned beside each score: PSI 0.1 (0.25 major), Wasserstein 0.1, KS over its critical
value at p 0.05 (the threshold returned is that value), Jensen-Shannon 0.1, chi-squared p < 0.05. Below 30
values on either side no drift is declared.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.descriptor import FieldDescriptor as FD

from runner_image.codec import is_map, is_repeated
from runner_image.sketch import BYTES, CATEGORY, INTEGER, NUMBER, FieldStats
from runner_image.state import read_json, write_json

log = logging.getLogger("runner_image")

PENDING_MAX = 4096          # answers waiting for the watcher; beyond, record() drops and counts
MAX_GROUPS = 64             # method x generation x variant per window
MAX_FIELDS = 256            # field paths per group
MAX_DEPTH = 4               # nested messages walked
ANSWER_INTERVAL = 0.1       # seconds between a worker's batches of answers to the SQLite log
HOUSEKEEPING_INTERVAL = 2.0  # pin references, remove windows that aged out
MAX_PINNED = 64             # first-window references kept (the newest)
MIN_REFERENCE_VALUES = 100  # a first-window reference grows over the next windows until it holds these
MAX_REFERENCE_WINDOWS = 10  # ... or this many windows
INPUT, OUTPUT = "input.", "output."

_INTEGER_TYPES = {FD.TYPE_INT32, FD.TYPE_INT64, FD.TYPE_SINT32, FD.TYPE_SINT64, FD.TYPE_SFIXED32,
                  FD.TYPE_SFIXED64, FD.TYPE_UINT32, FD.TYPE_UINT64, FD.TYPE_FIXED32, FD.TYPE_FIXED64}


# ---------------------------------------------------------------- walking messages

SCALAR, OPTIONAL, REPEATED, MESSAGE, MESSAGES, MAP = range(6)


@dataclass(frozen=True)
class Step:
    """One field of a message, resolved once per message type: how to read it and what it is."""

    tag: int
    name: str
    path: str
    kind: str | None = None
    names: dict | None = None          # enum number -> name
    many: bool = False                 # several values per message (repeated, or inside a repeated)
    sub: tuple = ()                    # the steps of a nested message (or a map's message values)
    value_kind: str | None = None      # a map's scalar values
    value_names: dict | None = None


def kind_of(fd) -> tuple[str, dict | None]:
    if fd.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return NUMBER, None
    if fd.type in _INTEGER_TYPES:
        return INTEGER, None
    if fd.type == FD.TYPE_BYTES:
        return BYTES, None
    if fd.type == FD.TYPE_ENUM:
        return CATEGORY, {v.number: v.name for v in fd.enum_type.values}
    return CATEGORY, None  # string, bool


def plan(descriptor, prefix: str = "", depth: int = 0, many: bool = False) -> tuple[Step, ...]:
    steps = []
    for fd in descriptor.fields:
        path = prefix + fd.name
        if is_map(fd):
            steps.append(_map_step(fd, path, depth))
        elif fd.type == FD.TYPE_MESSAGE:
            if depth + 1 < MAX_DEPTH:
                repeated = is_repeated(fd)
                sub = plan(fd.message_type, path + ".", depth + 1, many or repeated)
                steps.append(Step(MESSAGES if repeated else MESSAGE, fd.name, path, many=many, sub=sub))
        else:
            kind, names = kind_of(fd)
            tag = REPEATED if is_repeated(fd) else (OPTIONAL if fd.has_presence else SCALAR)
            steps.append(Step(tag, fd.name, path, kind, names, many or tag == REPEATED))
    return tuple(steps)


def _map_step(fd, path: str, depth: int) -> Step:
    key_fd, value_fd = (fd.message_type.fields_by_name[n] for n in ("key", "value"))
    key_kind, _ = kind_of(key_fd)
    if value_fd.type == FD.TYPE_MESSAGE:
        sub = plan(value_fd.message_type, path + ".value.", depth + 1, True) if depth + 1 < MAX_DEPTH else ()
        return Step(MAP, fd.name, path, key_kind, many=True, sub=sub)
    value_kind, value_names = kind_of(value_fd)
    return Step(MAP, fd.name, path, key_kind, many=True, value_kind=value_kind, value_names=value_names)


def fold(steps: tuple[Step, ...], msg, group: Group) -> None:  # noqa: PLR0912 (one flat loop: it runs per answer)
    """Add every value of `msg` to `group`'s field statistics."""
    for step in steps:
        tag = step.tag
        value = getattr(msg, step.name)
        if tag == SCALAR:
            names = step.names
            group.adder(step.path, step.kind)(names.get(value, value) if names else value)
        elif tag == REPEATED:
            if value:
                add, names = group.adder(step.path, step.kind), step.names
                for item in value:
                    add(names.get(item, item) if names else item)
        elif tag == OPTIONAL:
            if msg.HasField(step.name):
                names = step.names
                group.adder(step.path, step.kind)(names.get(value, value) if names else value)
            else:
                group.missing(step.path, step.kind)
        elif tag == MESSAGE:
            if msg.HasField(step.name):
                fold(step.sub, value, group)
        elif tag == MESSAGES:
            for element in value:
                fold(step.sub, element, group)
        elif value:
            _fold_map(step, value, group)


def _fold_map(step: Step, value, group: Group) -> None:
    add_key = group.adder(step.path + ".key", step.kind)
    if step.sub:
        for key, element in value.items():
            add_key(key)
            fold(step.sub, element, group)
        return
    if step.value_kind is None:
        for key in value:
            add_key(key)
        return
    add_value, names = group.adder(step.path + ".value", step.value_kind), step.value_names
    for key, element in value.items():
        add_key(key)
        add_value(names.get(element, element) if names else element)


def flatten(steps: tuple[Step, ...], msg, out: dict, kinds: dict) -> None:
    """{path: value, or a list for a field of several values}: an answer as feedback is compared with.
    Maps are left out (a truth for a map is not a metric this runner computes)."""
    for step in steps:
        value = getattr(msg, step.name)
        names = step.names
        if step.tag in (SCALAR, OPTIONAL, REPEATED):
            if step.tag == OPTIONAL and not msg.HasField(step.name):
                continue
            values = list(value) if step.tag == REPEATED else [value]
            if names:
                values = [names.get(v, v) for v in values]
            kinds[step.path] = step.kind
            if step.many:
                out.setdefault(step.path, []).extend(values)
            else:
                out[step.path] = values[0]
        elif step.tag == MESSAGE:
            if msg.HasField(step.name):
                flatten(step.sub, value, out, kinds)
        elif step.tag == MESSAGES:
            for element in value:
                flatten(step.sub, element, out, kinds)


# ---------------------------------------------------------------- one window in memory

def _ignore(value) -> None:
    """The adder of a field over the cap: its values are not kept."""


class Group:
    """One method x generation x variant in one window."""

    __slots__ = ("requests", "first_seen", "fields", "adders", "top_k", "dropped_fields")

    def __init__(self, top_k: int, first_seen: float):
        self.requests = 0
        self.first_seen = first_seen
        self.fields: dict[str, FieldStats] = {}
        self.adders: dict = {}
        self.top_k = top_k
        self.dropped_fields = 0

    def adder(self, path: str, kind: str):
        add = self.adders.get(path)
        if add is None:
            stats = self._new_field(path, kind)
            add = self.adders[path] = stats.adder() if stats else _ignore
        return add

    def missing(self, path: str, kind: str) -> None:
        stats = self.fields.get(path) or self._new_field(path, kind)
        if stats is not None:
            stats.missing += 1

    def _new_field(self, path: str, kind: str) -> FieldStats | None:
        if path in self.fields:
            return self.fields[path]
        if len(self.fields) >= MAX_FIELDS:
            self.dropped_fields += 1
            return None
        stats = self.fields[path] = FieldStats(kind, self.top_k)
        return stats

    def to_json(self, key: tuple) -> dict:
        method, generation, variant = key
        return {"method": method, "generation": generation, "variant": variant, "requests": self.requests,
                "first_seen": self.first_seen, "dropped_fields": self.dropped_fields,
                "fields": {path: stats.to_json() for path, stats in self.fields.items()}}


class Window:
    __slots__ = ("start_ms", "groups", "dropped", "dirty")

    def __init__(self, start_ms: int):
        self.start_ms = start_ms
        self.groups: dict[tuple, Group] = {}
        self.dropped = 0  # answers not folded in: too many groups, or the queue was full
        self.dirty = True

    def group(self, key: tuple, top_k: int, at: float) -> Group | None:
        group = self.groups.get(key)
        if group is None:
            if len(self.groups) >= MAX_GROUPS:
                return None
            group = self.groups[key] = Group(top_k, at)
        return group

    def to_json(self, seconds: float, pid: int) -> dict:
        return {"version": 1, "start_ms": self.start_ms, "seconds": seconds, "pid": pid, "dropped": self.dropped,
                "groups": [group.to_json(key) for key, group in self.groups.items()]}


# ---------------------------------------------------------------- merged, as read back

@dataclass
class Merged:
    """One method x generation x variant over some windows, every worker's part added."""

    method: str
    generation: int
    variant: str
    requests: int = 0
    first_seen: float = math.inf
    fields: dict[str, FieldStats] = field(default_factory=dict)
    windows: dict[int, int] = field(default_factory=dict)  # start ms -> requests
    dropped_fields: int = 0

    @property
    def key(self) -> tuple:
        return self.method, self.generation, self.variant

    def add(self, part: dict, start_ms: int, top_k: int) -> None:
        self.requests += part["requests"]
        self.first_seen = min(self.first_seen, part["first_seen"])
        self.windows[start_ms] = self.windows.get(start_ms, 0) + part["requests"]
        self.dropped_fields += part.get("dropped_fields", 0)
        merge_fields(self.fields, {p: FieldStats.from_json(d, top_k) for p, d in part["fields"].items()})


def merge_fields(into: dict[str, FieldStats], other: dict[str, FieldStats]) -> dict[str, FieldStats]:
    for path, stats in other.items():
        mine = into.get(path)
        if mine is None:
            into[path] = stats
        else:
            mine.merge(stats)
    return into


def fields_to_json(fields: dict[str, FieldStats]) -> dict:
    return {path: stats.to_json() for path, stats in fields.items()}


def fields_from_json(data: dict, top_k: int) -> dict[str, FieldStats]:
    return {path: FieldStats.from_json(d, top_k) for path, d in data.items()}


# ---------------------------------------------------------------- the worker's statistics

class Statistics:
    """One worker's statistics: the queue the request path appends to, the window being filled, and the
    reading of every worker's windows (runner_image.drift builds the reports from them)."""

    def __init__(self, runtime):
        self.runtime = runtime
        settings = runtime.settings
        self.enabled = bool(settings.statistics)
        self.window_ms = max(1, round(settings.stats_window_seconds * 1000))
        self.windows_kept = max(2, settings.stats_windows)
        self.top_k = max(1, settings.stats_top_k)
        self.write_interval = settings.stats_flush_interval
        self.root = Path(settings.state_dir) / "stats"
        self.windows_dir = self.root / "windows"
        self.reference_dir = self.root / "reference"
        self.worker_dir = self.windows_dir / f"{os.getpid()}-{secrets.token_hex(4)}"
        self.pid = os.getpid()
        self._pending: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._reading = threading.Lock()
        self._window: Window | None = None
        self._closed: list[Window] = []
        self._answer_rows: list[tuple] = []
        self._plans: dict = {}
        self._next_write = self._next_answers = self._next_housekeeping = 0.0
        self._seen: dict[tuple, float] = {}   # keys this worker served, for pinning their first window
        self._pinned: set[tuple] = set()
        self._cache: dict[Path, tuple] = {}   # window file -> (mtime_ns, size, parsed)
        self.dropped = 0
        self.fold_errors = 0
        self.answers = None
        if self.enabled:
            from runner_image.feedback import AnswerLog  # the SQLite log only where statistics are on

            for directory in (self.windows_dir, self.reference_dir):
                directory.mkdir(parents=True, exist_ok=True)
            self.answers = AnswerLog(self.root / "answers.sqlite", settings.feedback_keep_answers,
                                     settings.feedback_max_age)
            weakref.finalize(self, self.answers.close)  # the runtime has no stop hook for statistics
            COLLECTOR_TARGET.attach(self)

    @property
    def window_seconds(self) -> float:
        return self.window_ms / 1000

    # the request path ------------------------------------------------------
    def record(self, slot, variant, call, msg, out) -> None:
        """Called after each answer, on the request path: must stay cheap (an append)."""
        if not self.enabled:
            return
        pending = self._pending
        if len(pending) >= PENDING_MAX and not self._fold_here():
            self.dropped += 1
            return
        pending.append((time.time(), slot.generation, variant, call.method, call.request_id, msg, out))

    def _fold_here(self) -> bool:
        """The queue is full (the periodic thread skips its rounds while this worker leads a swap): fold it on the
        request path, once per PENDING_MAX answers, unless the periodic thread is at it."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._fold_pending()
        finally:
            self._lock.release()
        return True

    # the periodic thread ---------------------------------------------------
    def flush(self, force: bool = False) -> None:
        """Called by every worker's periodic thread: fold what was recorded, and now and then share it."""
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            self._fold_pending()
            if self._answer_rows and (force or now >= self._next_answers):
                self._write_answers()
                self._next_answers = now + ANSWER_INTERVAL
            if force or now >= self._next_write:
                self._write_windows()
                self._next_write = now + self.write_interval
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + HOUSEKEEPING_INTERVAL
            self._housekeeping()

    def stop(self) -> None:
        """The worker is stopping (runtime.stop): what it recorded since the last write is written, not lost."""
        self.flush(force=True)

    def flush_answers(self) -> None:
        """What feedback does first: this worker's answers so far into the shared log."""
        if not self.enabled:
            return
        with self._lock:
            self._fold_pending()
            if self._answer_rows:
                self._write_answers()

    def _fold_pending(self) -> None:
        pending = self._pending
        while pending:
            at, generation, variant, method, request_id, msg, out = pending.popleft()
            try:
                self._fold_one(at, (method, generation, variant), request_id, msg, out)
            except Exception:  # a message this code cannot walk must not stop the others
                self.fold_errors += 1
                if self.fold_errors == 1:
                    log.exception("statistics could not fold an answer (further failures are only counted)")
        if self.dropped and self._window is not None:
            self._window.dropped += self.dropped
            self._window.dirty = True
            self.dropped = 0

    def _fold_one(self, at: float, key: tuple, request_id: str, msg, out) -> None:
        window = self._window_at(at)
        group = window.group(key, self.top_k, at)
        window.dirty = True
        if group is None:
            window.dropped += 1
            return
        if key not in self._seen:
            self._remember(key, at)
        group.requests += 1
        fold(self._plan(msg.DESCRIPTOR, INPUT), msg, group)
        fold(self._plan(out.DESCRIPTOR, OUTPUT), out, group)
        values: dict = {}
        kinds: dict = {}
        flatten(self._plan(out.DESCRIPTOR, ""), out, values, kinds)
        self._answer_rows.append((request_id, at, key, values, kinds))
        if len(self._answer_rows) > PENDING_MAX * 4:  # the log cannot be written: keep the newest
            del self._answer_rows[:PENDING_MAX]

    def _plan(self, descriptor, prefix: str) -> tuple[Step, ...]:
        steps = self._plans.get((descriptor, prefix))
        if steps is None:
            if len(self._plans) > 256:  # descriptors of generations long gone
                self._plans.clear()
            steps = self._plans[(descriptor, prefix)] = plan(descriptor, prefix)
        return steps

    def _remember(self, key: tuple, at: float) -> None:
        if len(self._seen) >= MAX_PINNED:
            self._seen.pop(next(iter(self._seen)))
        self._seen[key] = at

    def _window_at(self, at: float) -> Window:
        start = int(at * 1000) // self.window_ms * self.window_ms
        window = self._window
        if window is None or start > window.start_ms:
            if window is not None:
                self._closed.append(window)
                del self._closed[:-4]  # a disk that refuses writes must not make the list grow
            window = self._window = Window(start)
        return window  # a late answer from just before the turn counts in the new window

    # writing -----------------------------------------------------------------
    def _write_windows(self) -> None:
        try:
            self.worker_dir.mkdir(parents=True, exist_ok=True)
            while self._closed:
                self._write_window(self._closed[0])
                self._closed.pop(0)
            if self._window is not None and self._window.dirty:
                self._write_window(self._window)
        except OSError:
            log.exception("statistics could not be written to %s", self.worker_dir)

    def _write_window(self, window: Window) -> None:
        path = self.worker_dir / f"{window.start_ms}.json"
        data = json.dumps(window.to_json(self.window_seconds, self.pid), separators=(",", ":"))
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(data)
        os.replace(tmp, path)
        window.dirty = False

    def _write_answers(self) -> None:
        rows, self._answer_rows = self._answer_rows, []
        try:
            self.answers.append(rows)
        except Exception:
            log.exception("statistics could not write answers to the feedback log")
            self._answer_rows = rows + self._answer_rows

    # housekeeping ----------------------------------------------------------
    def _housekeeping(self) -> None:
        try:
            self._remove_old_windows()
            self._pin_references()
            self.answers.prune()
        except Exception:
            log.exception("statistics housekeeping failed")

    def horizon_ms(self, now: float | None = None) -> int:
        """Windows starting before this have aged out."""
        current = int((now or time.time()) * 1000) // self.window_ms * self.window_ms
        return current - (self.windows_kept - 1) * self.window_ms

    def _remove_old_windows(self) -> None:
        horizon = self.horizon_ms()
        for directory in list(self.windows_dir.iterdir()):
            files = list(directory.glob("*.json"))
            for path in files:
                if _start_of(path) < horizon:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            if directory != self.worker_dir and not any(directory.glob("*.json")):
                shutil.rmtree(directory, ignore_errors=True)  # a worker gone, its windows aged out

    def _pin_references(self) -> None:
        unpinned = [key for key in self._seen if key not in self._pinned]
        if not unpinned:
            return
        merged = self.merged_windows()
        for key in unpinned:
            if self.pinned_path(key).exists() or self._pin_first_window(key, merged):
                self._pinned.add(key)
            elif key not in merged:  # its windows aged out before one was full: it never will be
                del self._seen[key]
        self._pinned &= set(self._seen)
        self._prune_pinned()

    def _pin_first_window(self, key: tuple, merged_windows: dict) -> bool:
        reference, settled = first_window(self, key, merged_windows.get(key))
        if not settled:
            return False
        self.write_reference(self.pinned_path(key), {**reference, "fields": fields_to_json(reference["fields"])})
        return True

    def _prune_pinned(self) -> None:
        pinned = sorted(self.reference_dir.glob("first-*.json"), key=lambda p: p.stat().st_mtime)
        for path in pinned[:-MAX_PINNED]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # reading -----------------------------------------------------------------
    def window_files(self) -> list[dict]:
        """Every worker's window parts still kept, parsed (each file is parsed again only when it changed)."""
        with self._reading:  # the periodic thread's housekeeping and the routes' threads share the cache
            return self._window_files()

    def _window_files(self) -> list[dict]:
        horizon = self.horizon_ms()
        found = []
        seen_paths = set()
        for path in self.windows_dir.glob("*/*.json"):
            if _start_of(path) < horizon:
                continue
            seen_paths.add(path)
            data = self._parsed(path)
            if data is not None:
                found.append(data)
        for path in set(self._cache) - seen_paths:
            del self._cache[path]
        return found

    def _parsed(self, path: Path) -> dict | None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        cached = self._cache.get(path)
        if cached and cached[:2] == (stat.st_mtime_ns, stat.st_size):
            return cached[2]
        try:
            data = json.loads(path.read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        self._cache[path] = (stat.st_mtime_ns, stat.st_size, data)
        return data

    def merged_windows(self, since_ms: int | None = None, select=None) -> dict[tuple, dict[int, Merged]]:
        """key -> window start -> Merged (that window, every worker's part), for windows from `since_ms`."""
        merged: dict[tuple, dict[int, Merged]] = {}
        for data in self.window_files():
            start = data["start_ms"]
            if since_ms is not None and start < since_ms:
                continue
            for part in data["groups"]:
                key = (part["method"], part["generation"], part["variant"])
                if select is not None and not select(key):
                    continue
                by_start = merged.setdefault(key, {})
                target = by_start.get(start) or by_start.setdefault(start, Merged(*key))
                target.add(part, start, self.top_k)
        return merged

    def merged(self, since_ms: int | None = None, select=None) -> dict[tuple, Merged]:
        """key -> Merged over every window from `since_ms`."""
        out: dict[tuple, Merged] = {}
        for key, by_start in self.merged_windows(since_ms, select).items():
            total = out[key] = Merged(*key)
            for start in sorted(by_start):
                part = by_start[start]
                total.requests += part.requests
                total.first_seen = min(total.first_seen, part.first_seen)
                total.windows[start] = part.requests
                total.dropped_fields += part.dropped_fields
                merge_fields(total.fields, part.fields)
        return out

    def dropped_total(self) -> int:
        return sum(data.get("dropped", 0) for data in self.window_files())

    def workers_reporting(self) -> int:
        return len({data.get("pid") for data in self.window_files()})

    # references --------------------------------------------------------------
    def pinned_path(self, key: tuple) -> Path:
        method, generation, variant = key
        return self.reference_dir / f"first-{_safe(method)}-{generation}-{_safe(variant)}.json"

    def posted_path(self, method: str) -> Path:
        return self.reference_dir / f"posted-{_safe(method)}.json"

    def read_reference(self, path: Path) -> dict | None:
        return read_json(path, None)

    def write_reference(self, path: Path, data: dict) -> None:
        self.reference_dir.mkdir(parents=True, exist_ok=True)
        write_json(path, data)

    def pinned_for_generation(self, method: str, generation: int) -> list[dict]:
        found = []
        for path in self.reference_dir.glob(f"first-{_safe(method)}-{generation}-*.json"):
            data = read_json(path, None)
            if data and data.get("method") == method and data.get("generation") == generation:
                found.append(data)
        return found


def iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


def copy_field(stats: FieldStats, top_k: int) -> FieldStats:
    """A copy to merge into (merging changes the target, and the parts are read again)."""
    return FieldStats.from_json(stats.to_json(), top_k)


def first_window(stats: Statistics, key: tuple, by_start: dict[int, Merged] | None, now: float | None = None):
    """(reference, settled): the first full window of `key` with data (grown over the next windows until it
    holds MIN_REFERENCE_VALUES), and whether it is final (closed long enough for every worker's last
    write). A window is full when it starts after the key was first seen."""
    if not by_start:
        return None, False
    now_ms = (now or time.time()) * 1000
    first_seen_ms = min(m.first_seen for m in by_start.values()) * 1000
    width = stats.window_ms
    used: list[int] = []
    fields: dict[str, FieldStats] = {}
    requests = 0
    complete = False
    for start in sorted(s for s in by_start if s >= first_seen_ms):
        if start + width > now_ms:
            break  # still open
        used.append(start)
        requests += by_start[start].requests
        merge_fields(fields, {p: copy_field(f, stats.top_k) for p, f in by_start[start].fields.items()})
        if max((f.count for f in fields.values()), default=0) >= MIN_REFERENCE_VALUES or \
                len(used) >= MAX_REFERENCE_WINDOWS:
            complete = True
            break
    if not used:
        return None, False
    grace_ms = (2 * stats.write_interval + 1.0) * 1000
    settled = complete and used[-1] + width + grace_ms <= now_ms
    method, generation, variant = key
    reference = {"kind": "first-window", "method": method, "generation": generation, "variant": variant,
                 "from": iso(used[0] / 1000), "to": iso((used[-1] + width) / 1000), "windows": len(used),
                 "requests": requests, "fields": fields, "provisional": not settled}
    return reference, settled


def fields_of(messages, top_k: int) -> tuple[dict[str, FieldStats], int]:
    """The input statistics of some messages (a posted reference set), as a window would keep them."""
    group = Group(top_k, time.time())
    plans: dict = {}
    for msg in messages:
        steps = plans.get(msg.DESCRIPTOR) or plans.setdefault(msg.DESCRIPTOR, plan(msg.DESCRIPTOR, INPUT))
        fold(steps, msg, group)
        group.requests += 1
    return group.fields, group.requests


def _start_of(path: Path) -> int:
    try:
        return int(path.stem)
    except ValueError:
        return 0


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", str(name))[:100]


# ---------------------------------------------------------------- for /metrics

class _Latest:
    """The Statistics of this process's newest runtime (tests make several), for the Prometheus collector
    in runner_image.drift, which reads it at each scrape."""

    def __init__(self):
        self._ref = None

    def attach(self, stats: Statistics) -> None:
        self._ref = weakref.ref(stats)

    def get(self) -> Statistics | None:
        return self._ref() if self._ref else None


COLLECTOR_TARGET = _Latest()
