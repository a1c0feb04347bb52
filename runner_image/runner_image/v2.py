"""The Open Inference Protocol (KServe v2) over HTTP: server and model health, metadata, inference, and
the model repository endpoints. Tensors <-> the model's proto messages are in runner_image.oip, their
raw bytes in runner_image.oip_binary; the prediction itself in runner_image.serving.

What real clients send, and this module reads (NVIDIA's tritonclient.http, KServe's InferRequest):
- an inference body with no Content-Type, application/json or application/octet-stream, compressed or
  not (Content-Encoding gzip or deflate, inflated to at most the runner's max_request_bytes: 413 past);
- the binary tensor data extension: `Inference-Header-Content-Length: N` says the first N bytes are the
  JSON header and the rest the inputs that set `parameters.binary_data_size`, in order. The answer is
  binary the same way when the request asks (`parameters.binary_data_output`, or `binary_data` on one
  of the `outputs` it names), with the same header saying where its JSON ends.

Versions are generations. `/v2/models/{name}/versions/{v}[/ready|/infer]` answers for the generation
serving now and is 404 for any other (the message says which one serves); the unversioned paths take
whatever serves, a canary included.

The repository extension, in a runner that holds one model and hot-swaps it:
- `POST /v2/repository/index` lists that model, state READY (a runner that answers has it loaded);
- `POST /v2/repository/models/{name}/load` (admin token) is a no-op 200 for the model served: it is
  loaded. A load that carries a configuration or files is refused (400): a new model, proto or
  configuration goes in by a swap (PUT /model, /proto, /model/configuration), checked before it serves;
- `POST /v2/repository/models/{name}/unload` (admin token) is 409: a runner always serves a model.
  Roll back (POST /model/rollback) or swap in another instead; a canary or shadow candidate is
  stopped with DELETE /model/candidate.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runner_image import __version__, metrics, oip, oip_binary, serving
from runner_image.errors import BadRequest, Conflict, NotFound, RunnerError, UnsupportedMediaType
from runner_image.runtime import Runtime
from runner_image.serving import REQUEST_ID_HEADER as REQUEST_ID
from runner_image.web import JSON, JSON_TYPES, decoded_content, endpoint, media_type, parse_json, read_capped

EXTENSIONS = ["binary_tensor_data", "model_repository"]
OCTET_STREAM = "application/octet-stream"
# The body types an inference request may declare (tritonclient sends none; KServe octet-stream when binary).
_INFER_TYPES = (JSON, OCTET_STREAM)
_SMALL_BODY = 64 << 10  # the repository endpoints take at most a few parameters


def _oip_slot(request: Request, runtime: Runtime):
    slot = runtime.active()
    name = request.path_params["name"]
    if name != slot.name:
        raise NotFound(f"no model named {name!r} here; this runner serves {slot.name!r}", {"model": name})
    version = request.path_params.get("version")
    if version is not None and version != str(slot.generation):
        raise NotFound(f"model {name!r} has no version {version!r} serving here: versions are generations, and "
                       f"this runner serves generation {slot.generation}",
                       {"version": version, "serving": str(slot.generation)})
    return slot


@endpoint("v2", oip=True)
async def v2_server(request: Request, runtime: Runtime) -> Response:
    return JSONResponse({"name": "acumos-runner", "version": __version__, "extensions": EXTENSIONS})


@endpoint("v2", oip=True)
async def v2_live(request: Request, runtime: Runtime) -> Response:
    return JSONResponse({"live": True})


@endpoint("v2", oip=True)
async def v2_ready(request: Request, runtime: Runtime) -> Response:
    return JSONResponse({"ready": runtime.slot is not None}, status_code=200 if runtime.slot else 503)


@endpoint("v2", oip=True)
async def v2_model(request: Request, runtime: Runtime) -> Response:
    slot = _oip_slot(request, runtime)
    method = request.query_params.get("method") or slot.proto.default_method
    return JSONResponse(oip.model_metadata(slot, method))


@endpoint("v2", oip=True)
async def v2_model_ready(request: Request, runtime: Runtime) -> Response:
    _oip_slot(request, runtime)
    return JSONResponse({"name": request.path_params["name"], "ready": True})


# ---------------------------------------------------------------- inference

@endpoint("v2_infer", oip=True, metered=True)
async def v2_infer(request: Request, runtime: Runtime) -> Response:
    request_id = serving.request_id(request.headers.get(REQUEST_ID))
    try:
        return await _infer(request, runtime, request_id)
    except RunnerError as exc:  # an error answer carries the request id too
        exc.headers = {**exc.headers, REQUEST_ID: request_id}
        raise


async def _infer(request: Request, runtime: Runtime, request_id: str) -> Response:
    slot = _oip_slot(request, runtime)
    body, binary = await _read_infer_body(request, runtime.settings.max_request_bytes)
    _check_body_fields(body, slot)
    if REQUEST_ID not in request.headers and isinstance(body.get("id"), str):
        request_id = serving.request_id(body["id"])
    method = oip.requested_method(body) or slot.proto.default_method
    wanted = oip.wanted_outputs(body)
    call = serving.Call(method, request_id, request.headers.get(serving.ROUTING_KEY_HEADER))
    # A versioned path asks for the generation serving now: no canary answers it.
    chosen = (slot, "live") if "version" in request.path_params else serving.choose(runtime, call)
    msg = oip.request_to_message(body, chosen[0].rpc(method).input, binary)
    answered = await serving.answer_async(runtime, call, msg, chosen)
    header, raw = oip.response_parts(answered.slot, method, answered.msg, body.get("id"), wanted)
    metrics.prediction(method)
    if not raw:
        return JSONResponse(header, headers={REQUEST_ID: call.request_id})
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    return Response(b"".join([head, *raw]), media_type=OCTET_STREAM,
                    headers={REQUEST_ID: call.request_id, oip_binary.HEADER: str(len(head))})


async def _read_infer_body(request: Request, limit: int) -> tuple[dict, dict | None]:
    """The request's JSON header, and its binary inputs by index (None when it has none)."""
    kind = media_type(request.headers.get("content-type"))
    if kind and kind not in JSON_TYPES and kind != OCTET_STREAM:
        raise UnsupportedMediaType(f"Content-Type {kind} is not supported by the inference protocol; send "
                                   f"{JSON}, {OCTET_STREAM} (with {oip_binary.HEADER} for binary tensors) or none",
                                   {"allowed": list(_INFER_TYPES)})
    content = decoded_content(await request.body(), request.headers.get("content-encoding"), limit)
    length = oip_binary.json_header_length(request.headers.get(oip_binary.HEADER), len(content))
    view = memoryview(content)
    body = _json_header(content if length is None else bytes(view[:length]), length)
    inputs = body.get("inputs")
    if length is None or not isinstance(inputs, list):
        return body, None
    return body, oip_binary.binary_parts(inputs, view[length:])


def _json_header(raw: bytes, length: int | None) -> dict:
    what = "request body" if length is None else f"JSON header (the first {length} bytes, per {oip_binary.HEADER})"
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest(f"the {what} must be a JSON object with 'inputs'", {"field": "inputs"})
    return body


def _check_body_fields(body: dict, slot) -> None:
    given = body.get("id")
    if given is not None and not isinstance(given, str):
        raise BadRequest("'id' must be a string (it is echoed back in the answer)", {"field": "id"})
    model = body.get("model_name")  # KServe's InferRequest.to_rest() repeats the model in the body
    if model is not None and model != slot.name:
        raise BadRequest(f"'model_name' is {model!r}, but the request is to {slot.name!r}", {"field": "model_name"})


# ---------------------------------------------------------------- model repository

@endpoint("v2", oip=True)
async def v2_repository_index(request: Request, runtime: Runtime) -> Response:
    body = await _small_json(request)
    ready = body.get("ready")
    if ready is not None and not isinstance(ready, bool):
        raise BadRequest("'ready' must be true or false", {"field": "ready"})
    slot = runtime.active()
    return JSONResponse([{"name": slot.name, "version": str(slot.generation), "state": "READY", "reason": ""}])


@endpoint("v2_repository", oip=True, admin=True)
async def v2_repository_load(request: Request, runtime: Runtime) -> Response:
    slot = _repository_model(request, runtime)
    parameters = (await _small_json(request)).get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest("'parameters' must be a JSON object", {"field": "parameters"})
    if parameters:
        raise BadRequest(f"load takes no parameters here (got {', '.join(sorted(parameters))}): this runner "
                         "serves the model it holds, already loaded; a new model, proto or configuration goes in "
                         "by a swap (PUT /model, PUT /proto, PUT /model/configuration)", {"field": "parameters"})
    return JSONResponse({"name": slot.name, "version": str(slot.generation), "state": "READY"})


@endpoint("v2_repository", oip=True, admin=True)
async def v2_repository_unload(request: Request, runtime: Runtime) -> Response:
    _repository_model(request, runtime)
    raise Conflict("a runner always serves one model and does not unload it: roll back (POST /model/rollback) "
                   "or swap in another (PUT /model); a canary or shadow candidate is stopped with "
                   "DELETE /model/candidate")


def _repository_model(request: Request, runtime: Runtime):
    slot = runtime.active()
    name = request.path_params["name"]
    if name != slot.name:
        raise NotFound(f"no model named {name!r} here; this runner serves {slot.name!r} (another model comes "
                       "in by a swap: PUT /model)", {"model": name})
    return slot


async def _small_json(request: Request) -> dict:
    """An optional JSON object body of at most _SMALL_BODY bytes, read no further than that."""
    raw = await read_capped(request, _SMALL_BODY)
    return parse_json(raw, shape="a JSON object") if raw.strip() else {}


ROUTES = [
    Route("/v2", v2_server, methods=["GET"]),
    Route("/v2/health/live", v2_live, methods=["GET"]),
    Route("/v2/health/ready", v2_ready, methods=["GET"]),
    Route("/v2/models/{name}", v2_model, methods=["GET"]),
    Route("/v2/models/{name}/ready", v2_model_ready, methods=["GET"]),
    Route("/v2/models/{name}/infer", v2_infer, methods=["POST"]),
    Route("/v2/models/{name}/versions/{version}", v2_model, methods=["GET"]),
    Route("/v2/models/{name}/versions/{version}/ready", v2_model_ready, methods=["GET"]),
    Route("/v2/models/{name}/versions/{version}/infer", v2_infer, methods=["POST"]),
    Route("/v2/repository/index", v2_repository_index, methods=["POST"]),
    Route("/v2/repository/models/{name}/load", v2_repository_load, methods=["POST"]),
    Route("/v2/repository/models/{name}/unload", v2_repository_unload, methods=["POST"]),
]
