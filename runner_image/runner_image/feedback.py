"""Feedback: ground truth joined, by request id, with the answer the runner gave, and the running quality
per method, generation and variant (accuracy for integer, string, bool and enum outputs; MAE and RMSE for
float outputs, as the output field's type says).

Any worker may have given the answer, so answers go to one SQLite database in the state directory
(state/stats/answers.sqlite, WAL mode): each worker appends its recent answers in batches from its periodic
thread (runner_image.stats), at most every 0.1 s; the last `feedback_keep_answers` answers, none older than
`feedback_max_age`, are kept. A feedback request first writes this worker's own pending answers, looks the
ids up, and waits up to FEEDBACK_WAIT seconds for ids another worker's batch may not have written yet;
then it records, in one transaction, each id once (a second feedback for an id is a duplicate, counted
once) and the quality counts beside it, so every worker reads the same totals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from runner_image import serving
from runner_image.errors import BadRequest, PayloadTooLarge
from runner_image.sketch import BYTES, CATEGORY, INTEGER, NUMBER
from runner_image.web import parse_json

MAX_ITEMS = 1000             # feedback items per request
MAX_BODY_BYTES = 1 << 20     # a feedback request body
MAX_ANSWER_VALUES = 1000     # output values kept per answer; a larger answer is kept as "too large"
FEEDBACK_WAIT = 1.0          # seconds an id not found yet is looked for again (another worker's batch)
_RETRY_EVERY = 0.05

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL, at REAL NOT NULL,
    method TEXT NOT NULL, generation INTEGER NOT NULL, variant TEXT NOT NULL, answer TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answer_ids (request_id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shapes (
    method TEXT NOT NULL, generation INTEGER NOT NULL, kinds TEXT NOT NULL, PRIMARY KEY (method, generation));
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (request_id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS quality (
    method TEXT NOT NULL, generation INTEGER NOT NULL, variant TEXT NOT NULL, field TEXT NOT NULL,
    kind TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0, correct INTEGER NOT NULL DEFAULT 0,
    abs_sum REAL NOT NULL DEFAULT 0, sq_sum REAL NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (method, generation, variant, field));
CREATE TABLE IF NOT EXISTS groups (
    method TEXT NOT NULL, generation INTEGER NOT NULL, variant TEXT NOT NULL,
    joined INTEGER NOT NULL DEFAULT 0, duplicate INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (method, generation, variant));
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0);
"""
_IDS_PRUNE_SECONDS = 60.0


# ---------------------------------------------------------------- the shared log

class AnswerLog:
    """Recent answers and the feedback joined to them, shared by every worker (one connection per worker).

    Answers are appended in the order they come (rowid order: sequential pages, a few microseconds an
    answer). They are indexed by request id only when feedback asks (answer_ids, filled from the rows not
    indexed yet, in key order): a random-key index kept up on every answer costs a page write per answer,
    and most runners never receive feedback."""

    def __init__(self, path: Path, keep: int, max_age: float):
        self.path = Path(path)
        self.keep = max(1, int(keep))
        self.max_age = float(max_age)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._shapes: set[tuple] = set()
        self._ids_pruned = time.monotonic()

    @contextlib.contextmanager
    def _connection(self):
        with self._lock:
            if self._db is None:
                self._db = _connect(self.path)
            yield self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def append(self, rows: list[tuple]) -> None:
        """rows: (request_id, at, (method, generation, variant), values, kinds) from the statistics fold."""
        records = [(request_id, at, *key, _answer_json(values, kinds)) for request_id, at, key, values, kinds in rows]
        shapes = {}
        for _, _, (method, generation, _variant), _, kinds in rows:
            if (method, generation) not in self._shapes:
                shapes[(method, generation)] = json.dumps(kinds)
        with self._connection() as db, _transaction(db):
            db.executemany("INSERT INTO answers (request_id, at, method, generation, variant, answer) "
                           "VALUES (?, ?, ?, ?, ?, ?)", records)
            db.executemany("INSERT OR IGNORE INTO shapes (method, generation, kinds) VALUES (?, ?, ?)",
                           [(*key, kinds) for key, kinds in shapes.items()])
        self._shapes.update(shapes)

    def lookup(self, ids: list[str]) -> dict[str, dict]:
        found = {}
        with self._connection() as db, _transaction(db):
            _index_new_answers(db)
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                marks = ",".join("?" * len(chunk))
                for request_id, method, generation, variant, answer, kinds in db.execute(
                        "SELECT a.request_id, a.method, a.generation, a.variant, a.answer, s.kinds "
                        "FROM answer_ids i JOIN answers a ON a.seq = i.seq AND a.request_id = i.request_id "
                        "LEFT JOIN shapes s ON s.method = a.method AND s.generation = a.generation "
                        f"WHERE i.request_id IN ({marks})", chunk):  # noqa: S608 (placeholders only)
                    found[request_id] = {"method": method, "generation": generation, "variant": variant,
                                         **_answer_from_json(answer, kinds)}
        return found

    def prune(self) -> None:
        """Keep the last `keep` answers, none older than `max_age` (every worker's housekeeping)."""
        oldest = time.time() - self.max_age
        with self._connection() as db, _transaction(db):
            for table, order in (("answers", "seq"), ("feedback", "rowid")):
                # rows come in time order: the first young enough row ends the old ones (no index on `at`)
                db.execute(f"DELETE FROM {table} WHERE {order} <= (SELECT max({order}) FROM {table}) - ?",  # noqa: S608
                           (self.keep,))
                db.execute(f"DELETE FROM {table} WHERE {order} < coalesce((SELECT {order} FROM {table} WHERE at >= ? "  # noqa: S608
                           f"ORDER BY {order} LIMIT 1), (SELECT max({order}) + 1 FROM {table}))", (oldest,))
            if time.monotonic() - self._ids_pruned > _IDS_PRUNE_SECONDS:  # a scan: not every round
                self._ids_pruned = time.monotonic()
                db.execute("DELETE FROM answer_ids WHERE seq < (SELECT coalesce(min(seq), 0) FROM answers)")

    def record(self, judged: list[tuple], unknown: int) -> list[str]:
        """Record each judged item once; returns the request ids that already had feedback (duplicates)."""
        duplicates = []
        now = time.time()
        with self._connection() as db, _transaction(db):
            for request_id, answer, comparisons in judged:
                key = (answer["method"], answer["generation"], answer["variant"])
                added = db.execute("INSERT OR IGNORE INTO feedback (request_id, at) VALUES (?, ?)",
                                   (request_id, now)).rowcount
                _count_group(db, key, joined=added, duplicate=1 - added)
                if not added:
                    duplicates.append(request_id)
                    continue
                for path, kind, pairs in comparisons:
                    _add_quality(db, key, path, kind, pairs)
            for name, n in (("joined", len(judged) - len(duplicates)), ("duplicate", len(duplicates)),
                            ("unknown", unknown)):
                db.execute("INSERT INTO counters (name, n) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET n = n + "
                           "excluded.n", (name, n))
        return duplicates

    def quality(self) -> dict:
        with self._connection() as db:
            counters = dict(db.execute("SELECT name, n FROM counters"))
            groups = {tuple(row[:3]): {"method": row[0], "generation": row[1], "variant": row[2], "joined": row[3],
                                       "duplicates": row[4], "fields": {}}
                      for row in db.execute("SELECT method, generation, variant, joined, duplicate FROM groups "
                                            "ORDER BY method, generation, variant")}
            for row in db.execute("SELECT method, generation, variant, field, kind, n, correct, abs_sum, sq_sum, "
                                  "skipped FROM quality ORDER BY field"):
                group = groups.get(tuple(row[:3]))
                if group is not None:
                    group["fields"][row[3]] = _metric(*row[4:9], skipped=row[9])
            kept = db.execute("SELECT count(*) FROM answers").fetchone()[0]
        return {"feedback": {name: counters.get(name, 0) for name in ("joined", "duplicate", "unknown")},
                "answers_kept": kept, "keep": self.keep, "max_age_seconds": self.max_age,
                "groups": list(groups.values())}


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout = 10000")  # before the first write: the other workers create it too
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")  # WAL: a crash may lose the last batches, never corrupt
    with _transaction(db):
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
    return db


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection):
    db.execute("BEGIN IMMEDIATE")  # the write lock at once: no upgrade deadlock between workers
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _index_new_answers(db) -> None:
    """Index the answers appended since the last time, by request id, in key order (one pass over the index's
    pages however many there are); a request id answered twice points to its latest answer."""
    row = db.execute("SELECT value FROM meta WHERE name = 'indexed_upto'").fetchone()
    upto = row[0] if row else 0
    top = db.execute("SELECT coalesce(max(seq), 0) FROM answers").fetchone()[0]
    if top <= upto:
        return
    db.execute("INSERT OR REPLACE INTO answer_ids (request_id, seq) SELECT request_id, seq FROM answers "
               "WHERE seq > ? ORDER BY request_id, seq", (upto,))
    db.execute("INSERT INTO meta (name, value) VALUES ('indexed_upto', ?) ON CONFLICT (name) DO UPDATE SET "
               "value = excluded.value", (top,))


def _answer_json(values: dict, kinds: dict) -> str:
    """The answer's scored values ({path: value or [values]}); an answer of too many values is kept as its
    size only (["too_large", n]): the log stays bounded in bytes, not only in answers."""
    scored = {path: value for path, value in values.items() if kinds.get(path) != BYTES}
    size = sum(len(v) if isinstance(v, list) else 1 for v in scored.values())
    if size > MAX_ANSWER_VALUES:
        return json.dumps(["too_large", size])
    return json.dumps(scored)  # the default encoder: options would make a new one each call


def _answer_from_json(answer: str, kinds: str | None) -> dict:
    values = json.loads(answer)
    if isinstance(values, list):
        return {"too_large": values[1]}
    return {"v": values, "k": json.loads(kinds) if kinds else {}}


def _count_group(db, key: tuple, joined: int, duplicate: int) -> None:
    db.execute("INSERT INTO groups (method, generation, variant, joined, duplicate) VALUES (?, ?, ?, ?, ?) "
               "ON CONFLICT (method, generation, variant) DO UPDATE SET joined = joined + excluded.joined, "
               "duplicate = duplicate + excluded.duplicate", (*key, joined, duplicate))


def _add_quality(db, key: tuple, path: str, kind: str, pairs: list[tuple]) -> None:
    n = correct = skipped = 0
    abs_sum = sq_sum = 0.0
    for predicted, truth in pairs:
        if kind == NUMBER:
            if not math.isfinite(predicted):
                skipped += 1
                continue
            error = predicted - truth
            abs_sum += abs(error)
            sq_sum += error * error
        else:
            correct += predicted == truth
        n += 1
    db.execute("INSERT INTO quality (method, generation, variant, field, kind, n, correct, abs_sum, sq_sum, skipped) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (method, generation, variant, field) DO UPDATE SET "
               "n = n + excluded.n, correct = correct + excluded.correct, abs_sum = abs_sum + excluded.abs_sum, "
               "sq_sum = sq_sum + excluded.sq_sum, skipped = skipped + excluded.skipped",
               (*key, path, kind, n, correct, abs_sum, sq_sum, skipped))


def _metric(kind: str, n: int, correct: int, abs_sum: float, sq_sum: float, *, skipped: int) -> dict:
    if kind == NUMBER:
        return {"kind": kind, "metric": "mae", "count": n, "skipped_not_finite": skipped,
                "mae": abs_sum / n if n else None, "rmse": math.sqrt(sq_sum / n) if n else None}
    return {"kind": kind, "metric": "accuracy", "count": n, "correct": correct, "accuracy": correct / n if n else None}


# ---------------------------------------------------------------- a feedback request

@dataclass(frozen=True)
class Item:
    index: int
    request_id: str
    truth: object


def parse_items(body: bytes) -> list[Item]:
    data = parse_json(body)
    items = data if isinstance(data, list) else [data]
    if not items:
        raise BadRequest('send {"request_id": ..., "truth": ...} or a non-empty list of them')
    if len(items) > MAX_ITEMS:
        raise BadRequest(f"at most {MAX_ITEMS} feedback items per request, got {len(items)}",
                         {"limit": MAX_ITEMS, "items": len(items)})
    return [_item(i, item, several=isinstance(data, list)) for i, item in enumerate(items)]


def _item(index: int, item, several: bool) -> Item:
    where = f"items[{index}]" if several else "the body"
    if not isinstance(item, dict):
        raise BadRequest(f'{where} must be a JSON object {{"request_id": ..., "truth": ...}}', {"item": index})
    unknown = sorted(set(item) - {"request_id", "truth"})
    if unknown:
        raise BadRequest(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: request_id, truth",
                         {"item": index, "field": unknown[0]})
    request_id = item.get("request_id")
    if not isinstance(request_id, str) or serving.request_id(request_id) != request_id:
        raise BadRequest(f"{where}.request_id must be the X-Request-Id of an answer (1-128 letters, digits, . _ : -)",
                         {"item": index, "field": "request_id"})
    if item.get("truth") is None:
        raise BadRequest(f"{where}.truth is missing: send the true value, or {{field: value}}",
                         {"item": index, "field": "truth"})
    return Item(index, request_id, item["truth"])


def judge(item: Item, answer: dict, several: bool) -> list[tuple]:
    """[(field, kind, [(answered, true), ...])] for one item, or a 400 naming the item and the field."""
    where = f"items[{item.index}].truth" if several else "truth"
    values, kinds = answer["v"], answer["k"]
    scored = sorted(values)
    truth = item.truth
    if not isinstance(truth, dict):
        if len(scored) != 1:
            raise BadRequest(f"{where}: the answer to {item.request_id!r} has several fields ({', '.join(scored)}); "
                             "send the truth as {field: value}", {"item": item.index, "field": "truth"})
        truth = {scored[0]: truth}
    if not truth:
        raise BadRequest(f"{where} names no field", {"item": item.index, "field": "truth"})
    return [_compare(f"{where}.{path}", item, path, kind=kinds.get(path), answered=values.get(path), truth=value)
            for path, value in truth.items()]


def _compare(where: str, item: Item, path: str, *, kind: str | None, answered, truth) -> tuple:
    if kind is None:
        raise BadRequest(f"{where}: the answer has no field {path!r} to compare (its fields: see the method's "
                         "output message; bytes and map fields are not scored)", {"item": item.index, "field": path})
    if isinstance(answered, list):
        if not isinstance(truth, list) or len(truth) != len(answered):
            got = f"{len(truth)} values" if isinstance(truth, list) else "one value"
            raise BadRequest(f"{where}: the answer has {len(answered)} values for {path!r}; send a list of as many "
                             f"(got {got})", {"item": item.index, "field": path})
        pairs = [(a, _truth_value(f"{where}[{i}]", item, path, kind=kind, answered=a, truth=t))
                 for i, (a, t) in enumerate(zip(answered, truth, strict=True))]
    else:
        pairs = [(answered, _truth_value(where, item, path, kind=kind, answered=answered, truth=truth))]
    return path, kind, pairs


def _truth_value(where: str, item: Item, path: str, *, kind: str, answered, truth):
    details = {"item": item.index, "field": path, "expected": kind}
    if kind == NUMBER:
        if isinstance(truth, bool) or not isinstance(truth, (int, float)) or not math.isfinite(truth):
            raise BadRequest(f"{where}: expected a finite number, got {truth!r}", details)
        return float(truth)
    if kind == INTEGER:
        if isinstance(truth, float) and truth.is_integer():
            return int(truth)
        if isinstance(truth, bool) or not isinstance(truth, int):
            raise BadRequest(f"{where}: expected an integer, got {truth!r}", details)
        return truth
    if kind == CATEGORY:
        expected = type(answered)  # str for strings and enum names, bool for bools
        if isinstance(truth, bool) != isinstance(answered, bool) or not isinstance(truth, expected):
            raise BadRequest(f"{where}: expected {'true or false' if expected is bool else 'a string'}, "
                             f"got {truth!r}", details)
        return truth
    raise BadRequest(f"{where}: field {path!r} ({kind}) is not scored", details)


async def submit(stats, body: bytes) -> dict:
    """Join each item with its answer and record it; the answer says which ids were unknown or repeated."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"a feedback body is at most {MAX_BODY_BYTES} bytes", {"limit_bytes": MAX_BODY_BYTES})
    several = body.lstrip()[:1] == b"["
    items = parse_items(body)
    await run_in_threadpool(stats.flush_answers)
    found = await _find_answers(stats.answers, sorted({item.request_id for item in items}))
    unknown = [item.request_id for item in items if item.request_id not in found]
    too_large = [item.request_id for item in items if "too_large" in found.get(item.request_id, {})]
    judged = [(item.request_id, found[item.request_id], judge(item, found[item.request_id], several))
              for item in items if item.request_id in found and item.request_id not in too_large]
    duplicates = await run_in_threadpool(stats.answers.record, judged, len(unknown))
    return {"received": len(items), "joined": len(judged) - len(duplicates), "duplicates": duplicates,
            "unknown": unknown, "too_large": too_large}


async def _find_answers(log: AnswerLog, ids: list[str]) -> dict[str, dict]:
    found = await run_in_threadpool(log.lookup, ids)
    deadline = time.monotonic() + FEEDBACK_WAIT
    missing = [i for i in ids if i not in found]
    while missing and time.monotonic() < deadline:
        await asyncio.sleep(_RETRY_EVERY)  # on the loop, not in a thread: a client's unknown ids hold no thread
        found.update(await run_in_threadpool(log.lookup, missing))
        missing = [i for i in ids if i not in found]
    return found
