"""HTTP routes. Each handler parses the request, calls the slot or the runtime, formats the answer.

Predictions run inline on the event loop (small models answer in well under a millisecond of
Python; a thread hop would cost more than it saves); swaps run in a thread so that the loop keeps
answering with the old model while the new one loads; a proto a caller sends with its data is
compiled in a separate process (runner_image.compiler).
"""

from __future__ import annotations

import hmac
import json
import logging
import shutil
import tempfile
import time
import uuid
from contextlib import asynccontextmanager
from functools import wraps
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from runner_image import __version__, metrics, oip, openapi
from runner_image.codec import message_from_bytes, message_from_json, message_to_dict, message_to_json
from runner_image.compiler import ProtoCompiler, parse_data
from runner_image.errors import (
    BadRequest,
    Forbidden,
    ModelRejected,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    RunnerError,
    Unauthorized,
    UnsupportedMediaType,
)
from runner_image.package import ExtractLimits, validate_config
from runner_image.protos import cache as proto_cache
from runner_image.protos import check_proto_size, compile_proto
from runner_image.runtime import Runtime, inherit, stage_package
from runner_image.settings import Settings, token_sha256
from runner_image.slot import (
    CONFIG_FILE,
    MANIFEST_COPY,
    METADATA_FILE,
    MODEL_DIR,
    PACKAGE_FILE,
    PROTO_FILE,
    read_metadata,
)
from runner_image.state import write_json

log = logging.getLogger("runner_image")

PROTOBUF = "application/vnd.google.protobuf"
JSON = "application/json"
_PROTOBUF_TYPES = {PROTOBUF, "application/x-protobuf", "application/protobuf", "application/octet-stream"}
_JSON_TYPES = {JSON, "text/json"}


# ---------------------------------------------------------------- plumbing

def endpoint(route: str, admin: bool = False):
    """Error mapping, admin check, body limits and metrics, in one place for every route."""

    def decorate(fn):
        @wraps(fn)
        async def handler(request: Request) -> Response:
            started = time.perf_counter()
            app = request.app.state
            limited = request
            try:
                if admin:
                    require_admin(request, app.settings)
                limit = app.settings.max_upload_bytes if admin else app.settings.max_request_bytes
                limited = _limited(request, limit)
                response = await fn(limited, app.runtime)
            except RunnerError as exc:
                response = error_response(exc)
            except RecursionError:  # json.loads on "[[[[..." nests deeper than Python allows
                response = error_response(BadRequest("the JSON body is nested too deeply"))
            except Exception as exc:  # a bug here must still answer JSON and keep serving
                response = error_response(_unexpected(route, exc))
            finally:
                await limited.close()  # closes spooled multipart files at once
            metrics.observe(route, response.status_code, time.perf_counter() - started)
            return response

        return handler

    return decorate


def error_response(exc: RunnerError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers or None)


def _unexpected(route: str, exc: Exception) -> RunnerError:
    error_id = uuid.uuid4().hex[:12]
    log.error("unexpected error [%s] on %s", error_id, route, exc_info=exc)
    return RunnerError(f"internal error (error id {error_id}): {type(exc).__name__}: {exc}", {"error_id": error_id})


def require_admin(request: Request, settings: Settings) -> None:
    if not settings.admin_token_sha256:
        raise Forbidden("changes are disabled: the runner was started without RUNNER_ADMIN_TOKEN")
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("this endpoint changes the runner: send Authorization: Bearer <admin token>")
    if not hmac.compare_digest(token_sha256(token).encode(), settings.admin_token_sha256.encode()):
        raise Unauthorized("the admin token is wrong")


def _limited(request: Request, limit: int) -> Request:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body is {declared} bytes; the limit here is {limit}",
                              {"limit_bytes": limit})
    received = 0
    receive = request.receive

    async def counting_receive():
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise PayloadTooLarge(f"the request body exceeds the limit of {limit} bytes", {"limit_bytes": limit})
        return message

    return Request(request.scope, counting_receive)


def media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def content_kind(request: Request) -> str:
    kind = media_type(request.headers.get("content-type"))
    if kind in _JSON_TYPES:
        return "json"
    if kind in _PROTOBUF_TYPES:
        return "protobuf"
    raise UnsupportedMediaType(f"Content-Type {kind or '(none)'} is not supported; send {JSON} or {PROTOBUF}",
                               {"allowed": [JSON, PROTOBUF]})


def accept_kind(request: Request, default: str) -> str:
    accepted = [media_type(part) for part in request.headers.get("accept", "").split(",") if part.strip()]
    for kind in accepted:
        if kind in _JSON_TYPES:
            return "json"
        if kind in _PROTOBUF_TYPES:
            return "protobuf"
        if kind in ("*/*", "application/*"):
            return default
    if not accepted:
        return default
    raise NotAcceptable(f"cannot answer as {', '.join(accepted)}; accept {JSON} or {PROTOBUF}",
                        {"allowed": [JSON, PROTOBUF]})


def decode(cls, body: bytes, kind: str):
    return message_from_json(cls, body) if kind == "json" else message_from_bytes(cls, body)


def encode(msg, kind: str) -> Response:
    if kind == "json":
        return Response(message_to_json(msg), media_type=JSON)
    return Response(msg.SerializeToString(), media_type=PROTOBUF)


async def read_form(request: Request) -> dict:
    if media_type(request.headers.get("content-type")) != "multipart/form-data":
        raise UnsupportedMediaType("send multipart/form-data with the parts this endpoint takes",
                                   {"allowed": ["multipart/form-data"]})
    try:
        return await request.form(max_files=16, max_fields=32)
    except RunnerError:
        raise
    except Exception as exc:
        raise BadRequest(f"the multipart body cannot be read: {exc}") from exc


async def part_bytes(form, name: str, required: bool = True) -> bytes | None:
    value = form.get(name)
    if value is None:
        if required:
            raise BadRequest(f"the multipart part '{name}' is required", {"part": name})
        return None
    if isinstance(value, str):
        return value.encode()
    return await value.read()


def form_field(form, request: Request, name: str) -> str | None:
    value = form.get(name) if form is not None else None
    if isinstance(value, str) and value.strip():
        return value.strip()
    return request.query_params.get(name)


def operation_of(slot, proto, form, request) -> str:
    name = form_field(form, request, "operation") or proto.default_method
    proto.require_method(name)
    return name


# ---------------------------------------------------------------- predict and artifacts

@endpoint("predict")
async def predict(request: Request, runtime: Runtime) -> Response:
    slot = runtime.active()
    method = request.path_params["method"]
    rpc = slot.rpc(method)
    kind = content_kind(request)
    out_kind = accept_kind(request, kind)
    msg = decode(rpc.input, await request.body(), kind)
    answer = slot.predict(method, msg)
    metrics.prediction(method)
    return encode(answer, out_kind)


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
        method = operation_of(slot, slot.proto, form, request)
        msg = parse_data(slot.rpc(method).input, await part_bytes(form, data_part), data_kind)
        answer = slot.predict(method, msg)
        metrics.prediction(method)
        return encode(answer, accept_kind(request, "protobuf"))

    return handler


get_binary = endpoint("getBinary")(_binary_endpoint("csvFile", "csv", own_proto=True))
get_binary_default = endpoint("getBinary")(_binary_endpoint("csvFile", "csv", own_proto=False))
get_binary_json = endpoint("getBinary")(_binary_endpoint("jsonFile", "json", own_proto=True))
get_binary_json_default = endpoint("getBinary")(_binary_endpoint("jsonFile", "json", own_proto=False))
transform_csv_default = endpoint("transform")(_transform_default("csvFile", "csv"))
transform_json_default = endpoint("transform")(_transform_default("jsonFile", "json"))


# ---------------------------------------------------------------- swaps

class Upload:
    """The parts of a swap request, spooled to a private temp dir (never held whole in memory)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="runner-upload-"))
        self.files: dict[str, Path] = {}

    async def take(self, form, name: str, target: str) -> None:
        value = form.get(name)
        if value is None:
            return
        path = self.dir / target
        with open(path, "wb") as out:
            if isinstance(value, str):
                out.write(value.encode())
            else:
                while chunk := await value.read(1 << 20):
                    out.write(chunk)
        self.files[name] = path

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _builder(upload: Upload, limits: ExtractLimits):
    """Returns build(directory, current): new parts from the upload, the rest from `current`."""

    def build(directory: Path, current) -> None:
        files = upload.files
        if "proto" in files:
            compile_proto(files["proto"].read_bytes())  # fail fast with protoc's message
            shutil.move(str(files["proto"]), directory / PROTO_FILE)
        if "metadata" in files:
            read_metadata(files["metadata"])
            shutil.move(str(files["metadata"]), directory / METADATA_FILE)
        if "model" in files:
            stage_package(directory, files["model"], limits)
        if "modelConfig" in files:
            _stage_config(directory, files["modelConfig"])
        inherit(directory, current, (PROTO_FILE, METADATA_FILE, PACKAGE_FILE, MANIFEST_COPY, MODEL_DIR))
        if "model" not in files and "modelConfig" not in files:
            inherit(directory, current, (CONFIG_FILE,))

    return build


def _stage_config(directory: Path, path: Path) -> None:
    try:
        config = json.loads(path.read_bytes())
    except ValueError as exc:
        raise BadRequest(f"modelConfig is not valid JSON: {exc}", {"part": "modelConfig"}) from exc
    validate_config(config, source="modelConfig", root="")
    write_json(directory / CONFIG_FILE, config)


def _sample_check(upload: Upload):
    """A check from the request's `sample` part: {method: request} or one request for the first method."""
    if "sample" not in upload.files:
        return None
    try:
        sample = json.loads(upload.files["sample"].read_bytes())
    except ValueError as exc:
        raise BadRequest(f"the sample part is not valid JSON: {exc}", {"part": "sample"}) from exc
    if not isinstance(sample, dict):
        raise BadRequest("the sample part must be a JSON object", {"part": "sample"})

    def check(candidate):
        from runner_image.slot import check_samples

        per_method = sample if sample and set(sample) <= set(candidate.proto.methods) else {
            candidate.proto.default_method: sample}
        return check_samples(candidate, per_method)

    return check


async def _swap(request: Request, runtime: Runtime, action: str, *, parts: dict, required: tuple,
                check_factory=None):
    form = await read_form(request)
    missing = [p for p in required if form.get(p) is None]
    if missing:
        raise BadRequest(f"the multipart part '{missing[0]}' is required", {"part": missing[0]})
    upload = Upload()
    try:
        for name, target in parts.items():
            await upload.take(form, name, target)
        if "proto" in upload.files:
            check_proto_size(upload.files["proto"].stat().st_size, runtime.settings.max_proto_bytes)
        check = check_factory(upload, form, request) if check_factory else _sample_check(upload)
        limits = ExtractLimits(max_bytes=runtime.settings.max_package_bytes)
        return await run_in_threadpool(runtime.swap, action, _builder(upload, limits), check)
    finally:
        upload.cleanup()


_PARTS = {"model": "modelpackage.zip", "proto": "model.proto", "metadata": "metadata.json",
          "modelConfig": "config.json", "sample": "sample.json"}


@endpoint("swap", admin=True)
async def put_model(request: Request, runtime: Runtime) -> Response:
    return JSONResponse(await _swap(request, runtime, "model", parts=_PARTS, required=("model",)))


@endpoint("swap", admin=True)
async def put_proto(request: Request, runtime: Runtime) -> Response:
    parts = {k: _PARTS[k] for k in ("proto", "metadata", "sample")}
    return JSONResponse(await _swap(request, runtime, "proto", parts=parts, required=("proto",)))


@endpoint("swap", admin=True)
async def put_configuration(request: Request, runtime: Runtime) -> Response:
    if media_type(request.headers.get("content-type")) in _JSON_TYPES:
        return JSONResponse(await _swap_config_body(request, runtime))
    parts = {k: _PARTS[k] for k in ("modelConfig", "sample")}
    return JSONResponse(await _swap(request, runtime, "configuration", parts=parts, required=("modelConfig",)))


async def _swap_config_body(request: Request, runtime: Runtime) -> dict:
    upload = Upload()
    try:
        path = upload.dir / "config.json"
        path.write_bytes(await request.body())
        upload.files["modelConfig"] = path
        limits = ExtractLimits(max_bytes=runtime.settings.max_package_bytes)
        return await run_in_threadpool(runtime.swap, "configuration", _builder(upload, limits), None)
    finally:
        upload.cleanup()


def _transform_check(data_part: str, data_kind: str, answers: dict):
    def factory(upload: Upload, form, request):
        data = upload.files[data_part].read_bytes()

        def check(candidate):
            method = operation_of(candidate, candidate.proto, form, request)
            try:
                msg = parse_data(candidate.rpc(method).input, data, data_kind)
                answers["method"], answers["msg"] = method, candidate.predict(method, msg)
            except BadRequest:
                raise
            except RunnerError as exc:
                raise ModelRejected(f"the new model failed on the data: {exc.message}", exc.details) from exc
            return {method: message_to_dict(answers["msg"])}

        return check

    return factory


def _transform(data_part: str, data_kind: str):
    async def handler(request: Request, runtime: Runtime) -> Response:
        answers: dict = {}
        parts = {**{k: _PARTS[k] for k in ("model", "proto", "metadata", "modelConfig")}, data_part: "data"}
        await _swap(request, runtime, "transform", parts=parts, required=(data_part, "model"),
                    check_factory=_transform_check(data_part, data_kind, answers))
        return encode(answers["msg"], accept_kind(request, "protobuf"))

    return handler


transform_csv = endpoint("transform", admin=True)(_transform("csvFile", "csv"))
transform_json = endpoint("transform", admin=True)(_transform("jsonFile", "json"))


@endpoint("swap", admin=True)
async def rollback(request: Request, runtime: Runtime) -> Response:
    body = await request.body()
    target = None
    if body.strip():
        try:
            target = json.loads(body).get("generation")
        except (ValueError, AttributeError) as exc:
            raise BadRequest('the body must be empty or {"generation": <number>}') from exc
        if target is not None and (not isinstance(target, int) or isinstance(target, bool) or target < 1):
            raise BadRequest("'generation' must be a whole number from 1", {"field": "generation"})
    return JSONResponse(await run_in_threadpool(runtime.rollback, target))


@endpoint("model")
async def get_model(request: Request, runtime: Runtime) -> Response:
    slot = runtime.active()
    history = list(reversed(runtime.state.history()))
    workers = runtime.state.live_workers()
    return JSONResponse({"active": slot.describe(), "workers": len(workers) or 1, "history": history})


# ---------------------------------------------------------------- open inference protocol

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


@endpoint("v2_infer")
async def v2_infer(request: Request, runtime: Runtime) -> Response:
    slot = _oip_slot(request, runtime)
    if content_kind(request) != "json":
        raise UnsupportedMediaType(f"the inference protocol takes {JSON}")
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    method = _infer_method(body) or slot.proto.default_method
    msg = oip.request_to_message(body, slot.rpc(method).input)
    answer = slot.predict(method, msg)
    metrics.prediction(method)
    return JSONResponse(oip.response_body(slot, method, answer, body.get("id")))


def _infer_method(body) -> str | None:
    parameters = body.get("parameters") if isinstance(body, dict) else None
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise BadRequest("'parameters' must be a JSON object", {"field": "parameters"})
    method = parameters.get("method")
    if method is not None and not isinstance(method, str):
        raise BadRequest("'parameters.method' must be a method name (a string)", {"field": "parameters.method"})
    return method


# ---------------------------------------------------------------- metrics and docs

async def metrics_endpoint(request: Request) -> Response:
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
    Route("/proto", put_proto, methods=["PUT"]),
    Route("/getBinary", get_binary, methods=["POST"]),
    Route("/getBinaryDefault", get_binary_default, methods=["POST"]),
    Route("/getBinaryJSON", get_binary_json, methods=["POST"]),
    Route("/getBinaryJSONDefault", get_binary_json_default, methods=["POST"]),
    Route("/transformCSV", transform_csv, methods=["POST"]),
    Route("/transformCSVDefault", transform_csv_default, methods=["POST"]),
    Route("/transformJSON", transform_json, methods=["POST"]),
    Route("/transformJSONDefault", transform_json_default, methods=["POST"]),
    Route("/v2", v2_server, methods=["GET"]),
    Route("/v2/health/live", v2_live, methods=["GET"]),
    Route("/v2/health/ready", v2_ready, methods=["GET"]),
    Route("/v2/models/{name}", v2_model, methods=["GET"]),
    Route("/v2/models/{name}/ready", v2_model_ready, methods=["GET"]),
    Route("/v2/models/{name}/infer", v2_infer, methods=["POST"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs_page, methods=["GET"]),
]


def create_app(settings: Settings | None = None, preloaded=None) -> Starlette:
    """The app; `preloaded` is a slot the serve command already loaded (saves a second load)."""
    if settings is None:  # a worker process spawned by uvicorn: it inherits no logging set-up
        from runner_image.cli import configure_logging

        configure_logging()
        settings = Settings.from_env()
    runtime = Runtime(settings)
    compiler = ProtoCompiler(settings)
    proto_cache.resize(settings.proto_cache_bytes)

    @asynccontextmanager
    async def lifespan(app):
        await run_in_threadpool(runtime.start, preloaded)
        yield
        await compiler.aclose()
        runtime.stop()

    app = Starlette(routes=ROUTES, lifespan=lifespan)
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.compiler = compiler
    return app
