"""Predicting rows on a running deployment with as few requests as the method's interface allows.

The runner's Open Inference Protocol endpoint (`GET /v2/models/<name>?method=`) says each input and output
field's tensor shape: `[-1]` for a field that holds many values (a `repeated` scalar, or a column of the one
repeated row message), `[1]` for a single value. When every input and output is `[-1]`, one message is many
rows (runner README, "How messages meet tabular models"), so a request carries up to ACUMOS_BATCH_REQUEST_ROWS
rows: `POST /v2/models/<name>/infer` with one tensor of n values per field, and the answer's tensors hold the
n predictions in order (RequestShape.COLUMNS). Otherwise one message is one row, and no request shape the
runner reads carries several (CSV takes one data line for single fields; /v2 refuses n values for a single
field): one request per row, ACUMOS_BATCH_CONCURRENCY in flight on kept-alive connections, which the
runner's dynamic batching answers with one model call per turn of its event loop (RequestShape.PER_ROW).

A request the runner refuses as a bad message (400), or whose model raised (500), is about its rows: it is cut
in two and each half sent again, down to the one row at fault, whose error (the runner's message) is that
row's; the others are predicted. 413 (too large) halves the request the same way. 401/403/404 are about the
job (licence refused, method gone) and fail it. A runner out of reach, 408, 429 or 503 is tried again a few
times, then the job's task retries it later (Transient)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
from django.conf import settings

from acumos_portal import jobs
from acumos_portal.api.refusals import Refused
from batch.choices import RequestShape
from deployment.runner_client import error_message

RETRIES = 4
ROW_LEVEL = (400, 500)  # the message, or the model on these rows
RETRYABLE = (408, 429, 502, 503, 504)
_FLOATS, _INTEGERS = ("FP16", "FP32", "FP64"), ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32",
                                                "UINT64")


class JobRefusedByRunner(Refused):
    """The runner refuses the job as a whole (a licence, an unknown method): no row can be predicted."""


class RunnerUnavailable(jobs.Transient):
    """Out of reach or busy after the retries: the task tries the job again later, from its checkpoint."""


class _RowsRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Interface:
    endpoint: str
    model: str
    method: str
    inputs: tuple[tuple[str, str], ...]  # (field, OIP datatype)
    outputs: tuple[str, ...]
    shape: str  # RequestShape

    @property
    def infer_url(self) -> str:
        return f"{self.endpoint}/v2/models/{self.model}/infer"


@dataclass(frozen=True)
class Outcome:
    """A row's answer: its output fields, or the error that kept it from one."""

    outputs: dict | None = None
    error: str = ""


def describe(endpoint: str, method: str) -> Interface:
    """The method's interface as the runner serving now declares it, and the request shape it allows."""
    metadata = _get_json(f"{endpoint}/model/artifacts/metadata")
    model = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(model, str) or not model:
        raise JobRefusedByRunner("the deployment's runner did not say its model's name", "deployment")
    methods = metadata.get("methods") or {}
    if method not in methods:
        raise JobRefusedByRunner(f"the deployment's model has no method {method!r}; it has "
                                 f"{', '.join(sorted(methods)) or 'none'}", "method")
    spec = _get_json(f"{endpoint}/v2/models/{model}", params={"method": method})
    inputs = tuple((t["name"], t["datatype"]) for t in spec["inputs"])
    outputs = tuple(t["name"] for t in spec["outputs"])
    many = all(t["shape"] == [-1] for t in [*spec["inputs"], *spec["outputs"]])
    return Interface(endpoint, model, method, inputs, outputs, RequestShape.COLUMNS if many else RequestShape.PER_ROW)


def _get_json(url: str, **kwargs):
    for attempt in range(RETRIES):
        try:
            response = requests.get(url, timeout=settings.ACUMOS_BATCH_TIMEOUT, allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            _pause_or_give_up(attempt, f"the deployment could not be reached: {exc}")
            continue
        if response.status_code in RETRYABLE:
            _pause_or_give_up(attempt, f"the deployment answered HTTP {response.status_code}")
            continue
        if response.status_code != 200:
            raise JobRefusedByRunner(f"the deployment answered {url} with HTTP {response.status_code}: "
                                     f"{error_message(response.content, response.status_code)}", "deployment")
        return response.json()
    raise AssertionError("unreachable")


def _pause_or_give_up(attempt: int, why: str) -> None:
    if attempt == RETRIES - 1:
        raise RunnerUnavailable(why)
    time.sleep(0.5 * 2 ** attempt)


# ---------------------------------------------------------------- predicting

class Predictor:
    """Predicts lists of rows (dicts by column) on one deployment, from several threads, each with its own
    kept-alive session. Use as a context manager."""

    def __init__(self, interface: Interface):
        self.interface = interface
        self.requests = 0  # how many were sent (the bench and the tests read it)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, settings.ACUMOS_BATCH_CONCURRENCY),
                                        thread_name_prefix="batch-predict")
        self._sessions: list[requests.Session] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._pool.shutdown(wait=True, cancel_futures=True)
        for session in self._sessions:
            session.close()

    def predict(self, rows: list[dict]) -> list[Outcome]:
        """One Outcome per row, in order."""
        if self.interface.shape == RequestShape.COLUMNS:
            size = max(1, settings.ACUMOS_BATCH_REQUEST_ROWS)
            chunks = [rows[i:i + size] for i in range(0, len(rows), size)]
            return [outcome for part in self._pool.map(self._isolating, chunks) for outcome in part]
        return [part[0] for part in self._pool.map(self._isolating, [[row] for row in rows])]

    def _isolating(self, rows: list[dict]) -> list[Outcome]:
        """The rows' outcomes; a refused request is halved until the rows at fault stand alone."""
        try:
            return [Outcome(outputs=outputs) for outputs in self._call(rows)]
        except _RowsRefused as refused:
            if len(rows) == 1:
                return [Outcome(error=refused.message if refused.status != 413 else
                                f"the row alone is too large for the runner: {refused.message}")]
            middle = len(rows) // 2
            return self._isolating(rows[:middle]) + self._isolating(rows[middle:])

    def _call(self, rows: list[dict]) -> list[dict]:
        body = json.dumps(self._body(rows), separators=(",", ":"), allow_nan=False, default=str).encode()
        for attempt in range(RETRIES):
            with self._lock:
                self.requests += 1
            try:
                response = self._session().post(self.interface.infer_url, data=body,
                                                timeout=settings.ACUMOS_BATCH_TIMEOUT, allow_redirects=False,
                                                stream=True, headers={"Content-Type": "application/json"})
                with response:
                    content = _read_capped(response)
            except requests.RequestException as exc:
                _pause_or_give_up(attempt, f"the deployment could not be reached: {exc}")
                continue
            status = response.status_code
            if status == 200:
                return self._rows_of(json.loads(content), len(rows))
            if status in RETRYABLE:
                _pause_or_give_up(attempt, f"the deployment answered HTTP {status}")
                continue
            if status in (*ROW_LEVEL, 413):
                raise _RowsRefused(status, error_message(content, status))
            raise JobRefusedByRunner(f"the deployment refused the job: HTTP {status}: {error_message(content, status)}",
                                     "deployment")
        raise AssertionError("unreachable")

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False
            with self._lock:
                self._sessions.append(session)
        return session

    def _body(self, rows: list[dict]) -> dict:
        return {"inputs": [{"name": name, "datatype": datatype, "shape": [len(rows)],
                            "data": [coerce(row.get(name), datatype) for row in rows]}
                           for name, datatype in self.interface.inputs],
                "parameters": {"method": self.interface.method}}

    def _rows_of(self, answer: dict, n: int) -> list[dict]:
        tensors = {t["name"]: t["data"] for t in answer.get("outputs", [])}
        if self.interface.shape == RequestShape.PER_ROW:  # one row: a single value, or the field's values
            return [{name: data[0] if len(data) == 1 else data for name, data in tensors.items()}]
        if any(len(data) != n for data in tensors.values()):
            raise JobRefusedByRunner(f"the model answered {n} rows with outputs of another length: its answer is "
                                     "not one prediction per row, so a batch cannot join them", "method")
        names = list(tensors)
        return [{name: tensors[name][i] for name in names} for i in range(n)]


def coerce(value, datatype: str):
    """A cell as the tensor's datatype wants it, when it reads as one (CSV cells are text); else as it is,
    and the runner's refusal names what is wrong with it."""
    if not isinstance(value, str):
        return value
    try:
        if datatype in _FLOATS:
            return float(value)
        if datatype in _INTEGERS:
            return int(value)
    except ValueError:
        return value
    if datatype == "BOOL" and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    return value


def _read_capped(response: requests.Response) -> bytes:
    limit, chunks, size = settings.ACUMOS_BATCH_ANSWER_LIMIT, [], 0
    for chunk in response.iter_content(1 << 16):
        size += len(chunk)
        if size > limit:
            raise JobRefusedByRunner(f"the runner's answer is larger than {limit} bytes (ACUMOS_BATCH_ANSWER_LIMIT)",
                                     "deployment")
        chunks.append(chunk)
    return b"".join(chunks)


