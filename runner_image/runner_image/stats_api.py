"""HTTP routes of the drift statistics and feedback (appended to runner_image.server's ROUTES).

    GET    /model/statistics            per method/generation/variant/field summaries      admin
    GET    /model/statistics/drift      scores against a reference                        admin
    PUT    /model/statistics/reference  post a reference set (JSON rows or input messages) admin
    GET    /model/statistics/reference  the posted references, summarised                 admin
    DELETE /model/statistics/reference  remove one (?method=)                             admin
    POST   /model/feedback              ground truth for answers, by request id           (as predict)
    GET    /model/quality               accuracy, MAE, RMSE per generation and variant    admin

Reading needs the admin token: the statistics describe the callers' inputs (quantiles, frequent values),
and whoever may predict is not necessarily the model's owner. Feedback is open to whoever may predict: the
application that asked for a prediction is the one that learns the truth, and it should not need the
token that can replace the model. /metrics (public, as before) carries only the aggregate scores and
quality, never the distributions.
"""

from __future__ import annotations

import math
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runner_image import drift, feedback, tables
from runner_image.codec import fill_message, message_from_dict
from runner_image.errors import BadRequest, Conflict, ModelRejected, NotFound, PayloadTooLarge
from runner_image.runtime import Runtime
from runner_image.stats import fields_from_json, fields_of, fields_to_json
from runner_image.web import endpoint, parse_json

REFERENCE_MAX_BYTES = 16 << 20  # parsed JSON takes several times its size in memory
REFERENCE_MAX_ITEMS = 100_000
_VARIANT_MAX = 32


def _json(data) -> JSONResponse:
    """JSON has no NaN or infinity: a mean that overflowed, or a distance between infinities, is written as
    the codec writes such numbers ("NaN", "Infinity", "-Infinity")."""
    return JSONResponse(_finite(data))


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _stats(runtime: Runtime):
    stats = runtime.stats
    if not stats.enabled:
        raise Conflict("statistics are off on this runner (RUNNER_STATISTICS=0)")
    return stats


async def _read(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes", {"limit_bytes": limit})
        chunks.append(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------- query parameters

def _selection(request: Request):
    """A filter on (method, generation, variant) from ?method=&generation=&variant=."""
    params = request.query_params
    method = params.get("method")
    variant = params.get("variant")
    generation = _whole(params, "generation", low=1)
    if variant is not None and not 0 < len(variant) <= _VARIANT_MAX:
        raise BadRequest("'variant' must be a variant name such as live or canary", {"field": "variant"})

    def select(key: tuple) -> bool:
        m, g, v = key
        return (method is None or m == method) and (generation is None or g == generation) and \
            (variant is None or v == variant)

    return select


def _whole(params, name: str, low: int, high: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
        limit = f"from {low} to {high}" if high else f"from {low}"
        raise BadRequest(f"'{name}' must be a whole number {limit}, got {raw!r}", {"field": name})
    return int(raw)


def _windows(request: Request, stats, default: int | None) -> int | None:
    given = _whole(request.query_params, "windows", low=1, high=stats.windows_kept)
    return given if given is not None else default


# ---------------------------------------------------------------- statistics and drift

@endpoint("statistics", admin=True)
async def get_statistics(request: Request, runtime: Runtime) -> Response:
    stats = _stats(runtime)
    select, windows = _selection(request), _windows(request, stats, None)
    await run_in_threadpool(stats.flush, True)  # this worker's latest first; the others' are at most a flush old
    return _json(await run_in_threadpool(drift.statistics_report, stats, select=select, windows=windows))


@endpoint("statistics", admin=True)
async def get_drift(request: Request, runtime: Runtime) -> Response:
    stats = _stats(runtime)
    select, windows = _selection(request), _windows(request, stats, 2)
    against = request.query_params.get("against")
    drift.parse_against(against)  # a 400 before any work
    await run_in_threadpool(stats.flush, True)
    report = await run_in_threadpool(drift.drift_report, stats, select=select, against=against, windows=windows)
    return _json(report)


# ---------------------------------------------------------------- posted reference sets

@endpoint("statistics", admin=True)
async def put_reference(request: Request, runtime: Runtime) -> Response:
    stats = _stats(runtime)
    body = await _read(request, REFERENCE_MAX_BYTES)
    slot = runtime.active()
    method, items, as_rows = _reference_body(body, slot.proto.default_method)
    cls = slot.rpc(method).input
    fields, count = await run_in_threadpool(_reference_fields, stats, cls, items, as_rows)
    data = {"kind": "posted", "method": method, "posted_at": drift.iso(time.time()), "requests": count,
            "items": "rows" if as_rows else "messages", "generation": slot.generation, "fields": fields_to_json(fields)}
    await run_in_threadpool(stats.write_reference, stats.posted_path(method), data)
    return _json(_describe_reference(data, stats))


def _reference_body(body: bytes, default_method: str) -> tuple[str, list, bool]:
    data = parse_json(body)
    if isinstance(data, list):
        data = {"messages": data}
    if not isinstance(data, dict):
        raise BadRequest('send {"method": ..., "rows": [...]} or {"method": ..., "messages": [...]} or a list of '
                         "input messages")
    unknown = sorted(set(data) - {"method", "rows", "messages"})
    if unknown or ("rows" in data) == ("messages" in data):
        raise BadRequest("the body takes 'method' (optional) and exactly one of 'rows' or 'messages'"
                         + (f"; unknown: {', '.join(unknown)}" if unknown else ""), {"field": (unknown or [None])[0]})
    as_rows = "rows" in data
    items = data["rows" if as_rows else "messages"]
    name = "rows" if as_rows else "messages"
    if not isinstance(items, list) or not items:
        raise BadRequest(f"'{name}' must be a non-empty JSON array", {"field": name})
    if len(items) > REFERENCE_MAX_ITEMS:
        raise BadRequest(f"at most {REFERENCE_MAX_ITEMS} {name} in a reference set, got {len(items)}",
                         {"field": name, "limit": REFERENCE_MAX_ITEMS})
    method = data.get("method", default_method)
    if not isinstance(method, str):
        raise BadRequest("'method' must be a method name", {"field": "method"})
    return method, items, as_rows


def _reference_fields(stats, cls, items: list, as_rows: bool):
    messages = _rows_to_messages(cls, items) if as_rows else \
        (message_from_dict(cls, item, f"messages[{i}]") for i, item in enumerate(items))
    return fields_of(messages, stats.top_k)


def _rows_to_messages(cls, rows: list):
    """A row is one set of column values: the message itself (single fields), one element of every
    repeated column, or one element of the repeated row message."""
    descriptor = cls.DESCRIPTOR
    try:
        shape = tables.input_shape(descriptor)
    except ModelRejected as exc:
        raise BadRequest(f"rows need a tabular input message ({exc.message}); send 'messages' instead") from exc
    for i, row in enumerate(rows):
        where = f"rows[{i}]"
        if not isinstance(row, dict):
            raise BadRequest(f"{where} must be a JSON object of column values", {"field": where})
        if shape == "single":
            yield message_from_dict(cls, row, where)
        elif shape == "columns":
            _scalars_only(row, where)
            yield message_from_dict(cls, {k: [v] for k, v in row.items()}, where)
        else:
            msg = cls()
            fill_message(getattr(msg, descriptor.fields[0].name).add(), row, where)
            yield msg


def _scalars_only(row: dict, where: str) -> None:
    for key, value in row.items():
        if isinstance(value, (list, dict)):
            raise BadRequest(f"field '{where}.{key}': a row holds one value per column", {"field": f"{where}.{key}"})


def _describe_reference(data: dict, stats) -> dict:
    fields = {path.split(".", 1)[1]: stats_summary for path, stats_summary in _summaries(data, stats).items()}
    return {k: v for k, v in data.items() if k != "fields"} | {"inputs": fields}


def _summaries(data: dict, stats) -> dict:
    return {path: f.summary() for path, f in fields_from_json(data["fields"], stats.top_k).items()}


@endpoint("statistics", admin=True)
async def get_references(request: Request, runtime: Runtime) -> Response:
    stats = _stats(runtime)
    found = []
    for path in sorted(stats.reference_dir.glob("posted-*.json")):
        data = stats.read_reference(path)
        if data:
            found.append(_describe_reference(data, stats))
    return _json({"references": found})


@endpoint("statistics", admin=True)
async def delete_reference(request: Request, runtime: Runtime) -> Response:
    stats = _stats(runtime)
    method = request.query_params.get("method") or runtime.active().proto.default_method
    path = stats.posted_path(method)
    if not path.exists():
        raise NotFound(f"no reference set was posted for method {method!r}", {"method": method})
    path.unlink()
    return JSONResponse({"deleted": method})


# ---------------------------------------------------------------- feedback and quality

@endpoint("feedback")
async def post_feedback(request: Request, runtime: Runtime) -> Response:
    stats = _stats(runtime)
    body = await _read(request, feedback.MAX_BODY_BYTES)
    return JSONResponse(await feedback.submit(stats, body))


@endpoint("quality", admin=True)
async def get_quality(request: Request, runtime: Runtime) -> Response:
    stats = _stats(runtime)
    return _json(await run_in_threadpool(stats.answers.quality))


ROUTES = [
    Route("/model/statistics", get_statistics, methods=["GET"]),
    Route("/model/statistics/drift", get_drift, methods=["GET"]),
    Route("/model/statistics/reference", put_reference, methods=["PUT"]),
    Route("/model/statistics/reference", get_references, methods=["GET"]),
    Route("/model/statistics/reference", delete_reference, methods=["DELETE"]),
    Route("/model/feedback", post_feedback, methods=["POST"]),
    Route("/model/quality", get_quality, methods=["GET"]),
]
