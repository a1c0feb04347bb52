"""The Open Inference Protocol (KServe v2) over HTTP: server and model health, metadata and inference.
Tensors <-> the model's proto messages are in runner_image.oip; the prediction itself in runner_image.serving.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runner_image import __version__, metrics, oip, serving
from runner_image.errors import BadRequest, NotFound, UnsupportedMediaType
from runner_image.runtime import Runtime
from runner_image.serving import REQUEST_ID_HEADER as REQUEST_ID
from runner_image.web import JSON, content_kind, endpoint


def _oip_slot(request: Request, runtime: Runtime):
    slot = runtime.active()
    name = request.path_params["name"]
    if name != slot.name:
        raise NotFound(f"no model named {name!r} here; this runner serves {slot.name!r}", {"model": name})
    return slot


@endpoint("v2")
async def v2_server(request: Request, runtime: Runtime) -> Response:
    return JSONResponse({"name": "acumos-runner", "version": __version__, "extensions": []})


@endpoint("v2")
async def v2_live(request: Request, runtime: Runtime) -> Response:
    return JSONResponse({"live": True})


@endpoint("v2")
async def v2_ready(request: Request, runtime: Runtime) -> Response:
    return JSONResponse({"ready": runtime.slot is not None}, status_code=200 if runtime.slot else 503)


@endpoint("v2")
async def v2_model(request: Request, runtime: Runtime) -> Response:
    slot = _oip_slot(request, runtime)
    method = request.query_params.get("method") or slot.proto.default_method
    return JSONResponse(oip.model_metadata(slot, method))


@endpoint("v2")
async def v2_model_ready(request: Request, runtime: Runtime) -> Response:
    _oip_slot(request, runtime)
    return JSONResponse({"name": request.path_params["name"], "ready": True})


@endpoint("v2_infer", metered=True)
async def v2_infer(request: Request, runtime: Runtime) -> Response:
    slot = _oip_slot(request, runtime)
    if content_kind(request) != "json":
        raise UnsupportedMediaType(f"the inference protocol takes {JSON}")
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    method = oip.requested_method(body) or slot.proto.default_method
    call = serving.Call(method, serving.request_id(request.headers.get(REQUEST_ID) or _body_id(body)),
                        request.headers.get(serving.ROUTING_KEY_HEADER))
    chosen = serving.choose(runtime, call)
    msg = oip.request_to_message(body, chosen[0].rpc(method).input)
    answered = serving.answer(runtime, call, msg, chosen)
    metrics.prediction(method)
    return JSONResponse(oip.response_body(answered.slot, method, answered.msg, body.get("id")),
                        headers={REQUEST_ID: call.request_id})


def _body_id(body) -> str | None:
    given = body.get("id") if isinstance(body, dict) else None
    return given if isinstance(given, str) else None




ROUTES = [
    Route("/v2", v2_server, methods=["GET"]),
    Route("/v2/health/live", v2_live, methods=["GET"]),
    Route("/v2/health/ready", v2_ready, methods=["GET"]),
    Route("/v2/models/{name}", v2_model, methods=["GET"]),
    Route("/v2/models/{name}/ready", v2_model_ready, methods=["GET"]),
    Route("/v2/models/{name}/infer", v2_infer, methods=["POST"]),
]
