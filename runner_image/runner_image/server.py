"""HTTP routes, the Open Inference Protocol handlers and the app. Each handler parses the request, calls
the slot or the runtime, formats the answer; what every route shares (limits, the admin token, errors,
content negotiation) is in runner_image.web, and how a swap request becomes a candidate in
runner_image.swaps.

Predictions run inline on the event loop (small models answer in well under a millisecond of
Python; a thread hop would cost more than it saves); swaps run in a thread so that the loop keeps
answering with the old model while the new one loads; a proto a caller sends with its data is
compiled in a separate process (runner_image.compiler).
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from runner_image import grpc_server, metrics, openapi, serving, stats_api, swaps, v2
from runner_image.compiler import ProtoCompiler, parse_data
from runner_image.errors import BadRequest, Conflict, PayloadTooLarge
from runner_image.protos import cache as proto_cache
from runner_image.runtime import Runtime
from runner_image.serving import REQUEST_ID_HEADER as REQUEST_ID
from runner_image.settings import Settings, configure_logging
from runner_image.slot import METADATA_FILE
from runner_image.variants import HELD_STATES
from runner_image.variants_api import ROUTES as CANDIDATE_ROUTES
from runner_image.web import (
    JSON,
    JSON_TYPES,
    accept_kind,
    content_kind,
    decode,
    encode,
    endpoint,
    form_field,
    media_type,
    operation_of,
    parse_json,
    part_bytes,
    read_capped,
    read_form,
)

# ---------------------------------------------------------------- predict and artifacts

@endpoint("predict", metered=True)
async def predict(request: Request, runtime: Runtime) -> Response:
    call = serving.Call(request.path_params["method"], serving.request_id(request.headers.get(REQUEST_ID)),
                        request.headers.get(serving.ROUTING_KEY_HEADER))
    chosen = serving.choose(runtime, call)
    slot = chosen[0]
    kind = content_kind(request)
    out_kind = accept_kind(request, kind)
    msg = decode(slot.rpc(call.method).input, await request.body(), kind)
    answered = await serving.answer_async(runtime, call, msg, chosen)
    metrics.prediction(call.method)
    response = encode(answered.msg, out_kind)
    response.headers[REQUEST_ID] = call.request_id
    return response


@endpoint("artifacts")
async def artifact_metadata(request: Request, runtime: Runtime) -> Response:
    slot = runtime.active()
    return Response((slot.directory / METADATA_FILE).read_bytes(), media_type=JSON)


@endpoint("artifacts")
async def artifact_protobuf(request: Request, runtime: Runtime) -> Response:
    return PlainTextResponse(runtime.active().proto.text)


# ---------------------------------------------------------------- getBinary / transform*Default

def _binary_endpoint(data_part: str, data_kind: str, own_proto: bool):
    async def handler(request: Request, runtime: Runtime) -> Response:
        form = await read_form(request)
        data = await part_bytes(form, data_part)
        operation = form_field(form, request, "operation")
        if own_proto:
            raw_proto = await part_bytes(form, "proto")
            encoded = await request.app.state.compiler.encode(raw_proto, data, data_kind, operation)
        else:
            proto = runtime.active().proto
            rpc = proto.require_method(operation or proto.default_method)
            encoded = parse_data(rpc.input, data, data_kind).SerializeToString()
        return Response(encoded, media_type="application/octet-stream")

    return handler


def _transform_default(data_part: str, data_kind: str):
    async def handler(request: Request, runtime: Runtime) -> Response:
        form = await read_form(request)
        slot = runtime.active()
        call = serving.Call(operation_of(slot, slot.proto, form, request),
                            serving.request_id(request.headers.get(REQUEST_ID)),
                            request.headers.get(serving.ROUTING_KEY_HEADER))
        chosen = serving.choose(runtime, call)
        msg = parse_data(chosen[0].rpc(call.method).input, await part_bytes(form, data_part), data_kind)
        answered = await serving.answer_async(runtime, call, msg, chosen)
        metrics.prediction(call.method)
        response = encode(answered.msg, accept_kind(request, "protobuf"))
        response.headers[REQUEST_ID] = call.request_id
        return response

    return handler


get_binary = endpoint("getBinary")(_binary_endpoint("csvFile", "csv", own_proto=True))
get_binary_default = endpoint("getBinary")(_binary_endpoint("csvFile", "csv", own_proto=False))
get_binary_json = endpoint("getBinary")(_binary_endpoint("jsonFile", "json", own_proto=True))
get_binary_json_default = endpoint("getBinary")(_binary_endpoint("jsonFile", "json", own_proto=False))
transform_csv_default = endpoint("transform", metered=True)(_transform_default("csvFile", "csv"))
transform_json_default = endpoint("transform", metered=True)(_transform_default("jsonFile", "json"))


# ---------------------------------------------------------------- swaps

ROLLBACK_BODY_LIMIT = 4 << 10  # {"generation": n}

@endpoint("swap", admin=True)
async def put_model(request: Request, runtime: Runtime) -> Response:
    return JSONResponse(await swaps.from_form(request, runtime, "model", parts=swaps.PARTS, required=("model",)))


@endpoint("swap", admin=True)
async def put_proto(request: Request, runtime: Runtime) -> Response:
    parts = {k: swaps.PARTS[k] for k in ("proto", "metadata", "sample")}
    return JSONResponse(await swaps.from_form(request, runtime, "proto", parts=parts, required=("proto",)))


@endpoint("swap", admin=True)
async def put_configuration(request: Request, runtime: Runtime) -> Response:
    if media_type(request.headers.get("content-type")) in JSON_TYPES:
        return JSONResponse(await swaps.from_json_body(request, runtime))
    parts = {k: swaps.PARTS[k] for k in ("modelConfig", "sample")}
    return JSONResponse(await swaps.from_form(request, runtime, "configuration", parts=parts,
                                              required=("modelConfig",)))


def _transform(data_part: str, data_kind: str):
    async def handler(request: Request, runtime: Runtime) -> Response:
        answers: dict = {}
        parts = {**{k: swaps.PARTS[k] for k in ("model", "proto", "metadata", "modelConfig")}, data_part: "data"}
        await swaps.from_form(request, runtime, "transform", parts=parts, required=(data_part, "model"),
                              check_factory=swaps.transform_check(data_part, data_kind, answers))
        return encode(answers["msg"], accept_kind(request, "protobuf"))

    return handler


transform_csv = endpoint("transform", admin=True)(_transform("csvFile", "csv"))
transform_json = endpoint("transform", admin=True)(_transform("jsonFile", "json"))


@endpoint("swap", admin=True)
async def rollback(request: Request, runtime: Runtime) -> Response:
    body = await read_capped(request, ROLLBACK_BODY_LIMIT)
    target = None
    if body.strip():
        target = parse_json(body, shape='empty or {"generation": <number>}').get("generation")
        if target is not None and (not isinstance(target, int) or isinstance(target, bool) or target < 1):
            raise BadRequest("'generation' must be a whole number from 1", {"field": "generation"})
    return JSONResponse(await runtime.run_first(runtime.rollback, target))


@endpoint("model")
async def get_model(request: Request, runtime: Runtime) -> Response:
    slot = runtime.active()
    history = list(reversed(runtime.state.history()))
    workers = runtime.state.live_workers()
    candidate = runtime.state.candidate()  # what it is and how it is routed; its figures need the token
    return JSONResponse({"active": slot.describe(), "workers": len(workers) or 1, "history": history,
                         "candidate": candidate if candidate and candidate.get("state") in HELD_STATES else None})


# ---------------------------------------------------------------- entitlement (licensed models)

ENTITLEMENT_MAX_BYTES = 1 << 20
NOT_METERED = {"metered": False, "entitlement": None, "revoked": None, "problem": None, "used": 0, "refused": 0,
               "limit": None, "previous": []}


def _meter(runtime: Runtime):
    if runtime.meter is None:
        raise Conflict("this runner does not meter predictions: it was started without RUNNER_REQUIRE_ENTITLEMENT=1")
    return runtime.meter


@endpoint("entitlement", admin=True)
async def put_entitlement(request: Request, runtime: Runtime) -> Response:
    """Install a signed entitlement (verified, then written with the counts under the swap lock);
    not a new model generation, no sample runs."""
    meter = _meter(runtime)
    body = await request.body()
    if len(body) > ENTITLEMENT_MAX_BYTES:
        raise PayloadTooLarge(f"an entitlement is at most {ENTITLEMENT_MAX_BYTES} bytes",
                              {"limit_bytes": ENTITLEMENT_MAX_BYTES})
    document = parse_json(body)
    with runtime.state.swap_lock():
        entitlement = meter.install(document)
    return JSONResponse(entitlement.summary())


@endpoint("entitlement", admin=True)
async def delete_entitlement(request: Request, runtime: Runtime) -> Response:
    meter = _meter(runtime)
    with runtime.state.swap_lock():
        return JSONResponse(meter.revoke())


@endpoint("entitlement", admin=True)
async def get_usage(request: Request, runtime: Runtime) -> Response:
    return JSONResponse(runtime.meter.usage() if runtime.meter else NOT_METERED)


# ---------------------------------------------------------------- metrics and docs

async def metrics_endpoint(request: Request) -> Response:
    meter = request.app.state.runtime.meter
    if meter is not None:  # one count shared by every worker: read it when scraped, not per call
        metrics.entitlement_used(meter.used())
    payload, content_type = metrics.render()
    return Response(payload, media_type=content_type)


@endpoint("docs")
async def openapi_json(request: Request, runtime: Runtime) -> Response:
    return JSONResponse(openapi.document(runtime.active()))


@endpoint("docs")
async def docs_page(request: Request, runtime: Runtime) -> Response:
    return HTMLResponse(openapi.page(openapi.document(runtime.active())))


async def root(request: Request) -> Response:
    return RedirectResponse("/docs")


ROUTES = [
    Route("/", root),
    Route("/model/methods/{method}", predict, methods=["POST"]),
    Route("/model/artifacts/metadata", artifact_metadata, methods=["GET"]),
    Route("/model/artifacts/protobuf", artifact_protobuf, methods=["GET"]),
    Route("/model", get_model, methods=["GET"]),
    Route("/model", put_model, methods=["PUT"]),
    Route("/model/configuration", put_configuration, methods=["PUT"]),
    Route("/model/rollback", rollback, methods=["POST"]),
    Route("/model/entitlement", put_entitlement, methods=["PUT"]),
    Route("/model/entitlement", delete_entitlement, methods=["DELETE"]),
    Route("/model/entitlement", get_usage, methods=["GET"]),
    Route("/model/usage", get_usage, methods=["GET"]),
    Route("/proto", put_proto, methods=["PUT"]),
    Route("/getBinary", get_binary, methods=["POST"]),
    Route("/getBinaryDefault", get_binary_default, methods=["POST"]),
    Route("/getBinaryJSON", get_binary_json, methods=["POST"]),
    Route("/getBinaryJSONDefault", get_binary_json_default, methods=["POST"]),
    Route("/transformCSV", transform_csv, methods=["POST"]),
    Route("/transformCSVDefault", transform_csv_default, methods=["POST"]),
    Route("/transformJSON", transform_json, methods=["POST"]),
    Route("/transformJSONDefault", transform_json_default, methods=["POST"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs_page, methods=["GET"]),
    *v2.ROUTES,
    *stats_api.ROUTES,
    *CANDIDATE_ROUTES,
]


def create_app(settings: Settings | None = None, preloaded=None) -> Starlette:
    """The app; `preloaded` is a slot the serve command already loaded (saves a second load)."""
    if settings is None:  # a worker process spawned by uvicorn: it inherits no logging set-up
        configure_logging()
        settings = Settings.from_env()
    runtime = Runtime(settings)
    compiler = ProtoCompiler(settings)
    proto_cache.resize(settings.proto_cache_bytes)

    @asynccontextmanager
    async def lifespan(app):
        runtime.bind_loop(asyncio.get_running_loop())
        await run_in_threadpool(runtime.start, preloaded)
        grpc = await grpc_server.start(runtime, settings)  # None with --grpc-port 0
        yield
        await grpc_server.stop(grpc)
        await compiler.aclose()
        runtime.stop()

    app = Starlette(routes=ROUTES, lifespan=lifespan)
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.compiler = compiler
    return app
