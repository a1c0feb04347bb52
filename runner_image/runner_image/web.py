"""HTTP plumbing every route shares: the `endpoint` decorator (admin-token check, body limits, error
mapping, metrics), content negotiation between JSON and protobuf, a compressed body's bounded
decompression, and multipart form reading.

It knows nothing of particular routes; server.py uses it for each of them, swaps.py to read a swap's parts.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
import zlib
from functools import wraps

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from runner_image import metrics
from runner_image.codec import message_from_bytes, message_from_json, message_to_json
from runner_image.errors import (
    BadRequest,
    Forbidden,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    RunnerError,
    Unauthorized,
    UnsupportedMediaType,
)
from runner_image.settings import Settings, token_sha256

log = logging.getLogger("runner_image")

PROTOBUF = "application/vnd.google.protobuf"
JSON = "application/json"
# Refused before the model ran: a metered request that ends in one of these gives its unit back.
# A model that failed (422, 500) counts: the model ran.
_UNSERVED = (BadRequest, NotFound, NotAcceptable, PayloadTooLarge, UnsupportedMediaType)
_PROTOBUF_TYPES = {PROTOBUF, "application/x-protobuf", "application/protobuf", "application/octet-stream"}
JSON_TYPES = {JSON, "text/json"}


def endpoint(route: str, admin: bool = False, metered: bool = False, oip: bool = False):
    """Error mapping, admin check, body limits and metrics, in one place for every route. A `metered`
    route takes a unit from the entitlement before it runs, when the runner meters (runner_image.meter).
    An `oip` route answers errors in the Open Inference Protocol's shape (RunnerError.to_oip_dict)."""

    def decorate(fn):
        @wraps(fn)
        async def handler(request: Request) -> Response:
            started = time.perf_counter()
            app = request.app.state
            limited = request
            taken = None
            try:
                if admin:
                    require_admin(request, app.settings)
                limit = app.settings.max_upload_bytes if admin else app.settings.max_request_bytes
                limited = _limited(request, limit)
                if metered and app.runtime.meter is not None:
                    taken = app.runtime.meter.take(app.runtime.active())
                response = await fn(limited, app.runtime)
            except RunnerError as exc:
                _give_back(app.runtime, taken, exc)
                response = error_response(exc, oip)
            except RecursionError:  # json.loads on "[[[[..." nests deeper than Python allows
                too_deep = BadRequest("the JSON body is nested too deeply")
                _give_back(app.runtime, taken, too_deep)
                response = error_response(too_deep, oip)
            except Exception as exc:  # a bug here must still answer JSON and keep serving
                response = error_response(_unexpected(route, exc), oip)
            finally:
                await limited.close()  # closes spooled multipart files at once
            seconds = time.perf_counter() - started
            metrics.observe(route, response.status_code, seconds)
            if admin:  # how long the runner took, the upload's reading included (a client subtracts it from its wait)
                response.headers["server-timing"] = f"app;dur={seconds * 1000:.1f}"
            return response

        return handler

    return decorate


def _give_back(runtime, taken: bytes | None, exc: RunnerError) -> None:
    if taken is not None and isinstance(exc, _UNSERVED):
        runtime.meter.give_back(taken)


def error_response(exc: RunnerError, oip: bool = False) -> JSONResponse:
    body = exc.to_oip_dict() if oip else exc.to_dict()
    return JSONResponse(body, status_code=exc.status, headers=exc.headers or None)


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


# Content-Encoding -> zlib's wbits: gzip framing, or zlib framing (what HTTP's "deflate" means).
CONTENT_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def decoded_content(body: bytes, coding: str | None, limit: int) -> bytes | bytearray:
    """`body` decompressed per its Content-Encoding, never to more than `limit` bytes: a small body that
    inflates past the limit (a zip bomb) is refused with 413 once the limit is reached, not inflated whole."""
    coding = (coding or "").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding not in CONTENT_CODINGS:
        raise UnsupportedMediaType(f"Content-Encoding {coding!r} is not supported; send gzip, deflate or none",
                                   {"field": "Content-Encoding", "allowed": ["gzip", "deflate", "identity"]})
    out = bytearray()
    remaining = body
    while remaining:  # gzip may hold several members one after the other
        inflater = zlib.decompressobj(CONTENT_CODINGS[coding])
        try:
            out += inflater.decompress(remaining, limit + 1 - len(out))
            while inflater.unconsumed_tail and len(out) <= limit:
                out += inflater.decompress(inflater.unconsumed_tail, limit + 1 - len(out))
        except zlib.error as exc:
            raise BadRequest(f"the body is not valid {coding} data: {exc}", {"field": "Content-Encoding"}) from exc
        if len(out) > limit:
            raise PayloadTooLarge(f"the request body inflates to more than the limit of {limit} bytes",
                                  {"limit_bytes": limit, "field": "Content-Encoding"})
        if not inflater.eof:
            raise BadRequest(f"the {coding} body is cut short", {"field": "Content-Encoding"})
        remaining = inflater.unused_data if coding != "deflate" else _no_trailer(inflater.unused_data)
    return out


def _no_trailer(unused: bytes) -> bytes:
    if unused:
        raise BadRequest(f"{len(unused)} bytes follow the end of the deflate data", {"field": "Content-Encoding"})
    return b""


def media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def content_kind(request: Request) -> str:
    kind = media_type(request.headers.get("content-type"))
    if kind in JSON_TYPES:
        return "json"
    if kind in _PROTOBUF_TYPES:
        return "protobuf"
    raise UnsupportedMediaType(f"Content-Type {kind or '(none)'} is not supported; send {JSON} or {PROTOBUF}",
                               {"allowed": [JSON, PROTOBUF]})


def accept_kind(request: Request, default: str) -> str:
    accepted = [media_type(part) for part in request.headers.get("accept", "").split(",") if part.strip()]
    for kind in accepted:
        if kind in JSON_TYPES:
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


async def read_capped(request: Request, limit: int) -> bytes:
    """The body of a route that takes little (settings, a rollback target): read no further than `limit`."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"this endpoint takes a body of at most {limit} bytes", {"limit_bytes": limit})
    return bytes(body)


def parse_json(raw: bytes, *, shape: str | None = None):
    """A JSON body, or a 400 that says what is wrong. With `shape` (what to send, in words), it must be an object."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}" + (f"; send {shape}" if shape else "")) from exc
    if shape is not None and not isinstance(value, dict):
        raise BadRequest(f"the body must be {shape}")
    return value


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
