"""The admin API of canary and shadow candidates (runner_image.variants does the work):

    PUT    /model/candidate          multipart like PUT /model (model, modelConfig, sample; proto only to say
                                     it is the live one) with fields mode, weight, sticky; or JSON
                                     {"generation": n, "mode", "weight", "sticky"} for a kept generation
    PATCH  /model/candidate          JSON {"weight"?, "mode"?, "sticky"?}: raise a canary's share in steps
    GET    /model/candidate          its description, the live model, per-variant figures of every worker
    POST   /model/candidate/promote  the candidate becomes the live model (a swap: history "promote")
    DELETE /model/candidate          abort: every worker drops it (history "abort")

Every field is checked here, with a message naming it and what is allowed; all five need the admin token.
"""

from __future__ import annotations

import math

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runner_image import swaps
from runner_image.errors import BadRequest, Conflict, UnsupportedMediaType
from runner_image.runtime import Runtime
from runner_image.slot import PROTO_FILE
from runner_image.variants import MODES
from runner_image.web import JSON, JSON_TYPES, endpoint, media_type, parse_json, read_capped, read_form

# The parts an uploaded candidate may carry. No metadata: a candidate answers as the live model does. A
# proto part must be the live one (the interface cannot change beside the live model).
UPLOAD_PARTS = {name: swaps.PARTS[name] for name in ("model", "modelConfig", "sample", "proto")}
SETTINGS = ("mode", "weight", "sticky")
JSON_BODY_LIMIT = 64 << 10
MAX_GENERATION = 999_999_999  # far beyond any runner's swaps; a larger number would only make a long path
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
MULTIPART = "multipart/form-data"


# ---------------------------------------------------------------- checking fields

def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_mode(value) -> str:
    if value not in MODES:
        raise BadRequest(f"'mode' must be one of {', '.join(MODES)}; got {_shown(value)}",
                         {"field": "mode", "allowed": list(MODES)})
    return value


def parse_weight(value, text: bool) -> float:
    wrong = BadRequest(f"'weight' must be a number from 0 to 100 (the percentage of requests the candidate "
                       f"answers); got {_shown(value)}", {"field": "weight", "minimum": 0, "maximum": 100})
    if not text and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise wrong
    try:
        number = float(value.strip() if text else value)
    except (ValueError, OverflowError):  # not a number, or an integer too large for a float
        raise wrong from None
    if not math.isfinite(number) or not 0 <= number <= 100:
        raise wrong
    return int(number) if number.is_integer() else number


def parse_sticky(value, text: bool) -> bool:
    if text and isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    if not text and isinstance(value, bool):
        return value
    allowed = "true or false" if not text else "true/false (or 1/0, yes/no, on/off)"
    raise BadRequest(f"'sticky' must be {allowed}; got {_shown(value)}", {"field": "sticky"})


def parse_generation(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_GENERATION:
        raise BadRequest(f"'generation' must be a whole number from 1 to {MAX_GENERATION} (a kept generation: "
                         f"GET /model lists them in its history); got {_shown(value)}", {"field": "generation"})
    return value


def parse_settings(values: dict, *, text: bool, partial: bool) -> dict:
    """mode, weight and sticky from a form (text) or a JSON object; all but sticky required unless `partial`."""
    if not partial:
        for name in ("mode", "weight"):
            if values.get(name) is None:
                raise BadRequest(f"'{name}' is required", {"field": name})
    elif not any(values.get(name) is not None for name in SETTINGS):
        raise BadRequest(f"send at least one of {', '.join(SETTINGS)}", {"allowed": list(SETTINGS)})
    parsed = {}
    if values.get("mode") is not None:
        parsed["mode"] = parse_mode(values["mode"])
    if values.get("weight") is not None:
        parsed["weight"] = parse_weight(values["weight"], text)
    if values.get("sticky") is not None:
        parsed["sticky"] = parse_sticky(values["sticky"], text)
    return parsed


def _refuse_unknown(given, allowed, what: str) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown {what} {_shown(unknown[0])}; allowed: {', '.join(allowed)}",
                         {"field": unknown[0], "allowed": list(allowed)})


async def _json_object(request: Request, allowed: tuple) -> dict:
    """The body as a JSON object of known keys, at most JSON_BODY_LIMIT bytes."""
    if media_type(request.headers.get("content-type")) not in JSON_TYPES:
        raise UnsupportedMediaType(f"send a JSON object ({JSON})", {"allowed": [JSON]})
    value = parse_json(await read_capped(request, JSON_BODY_LIMIT), shape=f"a JSON object with {', '.join(allowed)}")
    _refuse_unknown(value, allowed, "field")
    return value


# ---------------------------------------------------------------- routes

@endpoint("candidate", admin=True)
async def put_candidate(request: Request, runtime: Runtime) -> Response:
    kind = media_type(request.headers.get("content-type"))
    if kind == MULTIPART:
        return JSONResponse(await _from_upload(request, runtime))
    if kind in JSON_TYPES:
        body = await _json_object(request, ("generation", *SETTINGS))
        if body.get("generation") is None:
            raise BadRequest("'generation' is required (or send the candidate as multipart, like PUT /model)",
                             {"field": "generation"})
        generation = parse_generation(body["generation"])
        plan = parse_settings(body, text=False, partial=False)
        return JSONResponse(await runtime.run_first(runtime.variants.set_kept, generation, plan))
    raise UnsupportedMediaType(f"send {MULTIPART} (a new candidate, like PUT /model) or {JSON} "
                               '({"generation": n, ...}: a kept one)', {"allowed": [MULTIPART, JSON]})


async def _from_upload(request: Request, runtime: Runtime) -> dict:
    form = await read_form(request)
    _refuse_unknown(form.keys(), (*UPLOAD_PARTS, *SETTINGS), "part")
    for name in form:
        if len(form.getlist(name)) > 1:
            raise BadRequest(f"the part '{name}' is sent more than once", {"part": name})
    values = {}
    for name in SETTINGS:
        value = form.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"'{name}' must be a plain form field, not a file", {"field": name})
        values[name] = value
    plan = parse_settings(values, text=True, partial=False)
    if form.get("model") is None and form.get("modelConfig") is None:
        raise BadRequest("send the part 'model' (a model package), 'modelConfig' (a configuration), or both",
                         {"part": "model"})
    runtime.variants.refuse_if_set()  # before spooling and loading anything
    await _check_proto_part(form, runtime)
    staged = await swaps.from_form(request, runtime, "candidate", parts=UPLOAD_PARTS, required=(),
                                   apply=runtime.variants.stage)
    return await runtime.run_first(runtime.variants.set_staged, staged, plan)


async def _check_proto_part(form, runtime: Runtime) -> None:
    """A proto part must be the live one: refused here, before a model is loaded for nothing. (The staged
    candidate's proto is compared again, whatever was sent.)"""
    part = form.get("proto")
    if part is None:
        return
    if isinstance(part, str):
        data = part.encode()
    else:
        if part.size is not None and part.size > runtime.settings.max_proto_bytes:
            return  # swaps.from_form refuses it with the size limit
        data = await part.read()
        await part.seek(0)
    live = runtime.active()
    if data != (live.directory / PROTO_FILE).read_bytes():
        raise Conflict("the proto part differs from the live model's: a canary or shadow candidate must have "
                       "the live model's interface (change the interface with PUT /model)", {"part": "proto"})


@endpoint("candidate", admin=True)
async def patch_candidate(request: Request, runtime: Runtime) -> Response:
    body = await _json_object(request, SETTINGS)
    changes = parse_settings(body, text=False, partial=True)
    return JSONResponse(await runtime.run_first(runtime.variants.change, changes))


@endpoint("candidate", admin=True)
async def get_candidate(request: Request, runtime: Runtime) -> Response:
    return JSONResponse(await run_in_threadpool(runtime.variants.describe))


@endpoint("candidate", admin=True)
async def promote_candidate(request: Request, runtime: Runtime) -> Response:
    return JSONResponse(await runtime.run_first(runtime.variants.promote))


@endpoint("candidate", admin=True)
async def delete_candidate(request: Request, runtime: Runtime) -> Response:
    return JSONResponse(await runtime.run_first(runtime.variants.abort))


ROUTES = [
    Route("/model/candidate", put_candidate, methods=["PUT"]),
    Route("/model/candidate", patch_candidate, methods=["PATCH"]),
    Route("/model/candidate", get_candidate, methods=["GET"]),
    Route("/model/candidate", delete_candidate, methods=["DELETE"]),
    Route("/model/candidate/promote", promote_candidate, methods=["POST"]),
]
