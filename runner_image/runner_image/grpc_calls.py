"""What every gRPC method shares (runner_image.grpc_server serves them): raw bytes in and out (each door
parses with the classes of the slot it chose, so garbage is a clear INVALID_ARGUMENT, not gRPC's INTERNAL
"Exception deserializing request"), metering, the request id (`x-request-id`) and the worker's pid
(`x-runner-worker`) in the trailing metadata, errors mapped to gRPC status codes, and the request metrics.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable

import grpc

from runner_image import metrics, serving
from runner_image.errors import BadRequest, NotFound, RunnerError, UsageRefused
from runner_image.web import _UNSERVED  # the refusals that give a metered unit back: one list for both doors

log = logging.getLogger("runner_image")

WORKER_HEADER = "x-runner-worker"
ERROR_CODE_HEADER = "x-error-code"  # the runner's error code (e.g. usage_exhausted): finer than the status

# The runner's HTTP statuses as gRPC codes (and back, for the metrics, which count both doors alike).
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND, 406: grpc.StatusCode.INVALID_ARGUMENT,
    408: grpc.StatusCode.DEADLINE_EXCEEDED, 409: grpc.StatusCode.ABORTED, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT, 422: grpc.StatusCode.FAILED_PRECONDITION,
    500: grpc.StatusCode.INTERNAL, 503: grpc.StatusCode.UNAVAILABLE, 504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


class Unimplemented(NotFound):
    """A method this runner does not serve: gRPC's UNIMPLEMENTED (404 in the metrics)."""

    code = "unimplemented"


def status_code(exc: RunnerError) -> grpc.StatusCode:
    if isinstance(exc, Unimplemented):
        return grpc.StatusCode.UNIMPLEMENTED
    if isinstance(exc, UsageRefused) and exc.code == "usage_exhausted":
        return grpc.StatusCode.RESOURCE_EXHAUSTED  # a quota used up, as gRPC names it
    return _CODES.get(exc.status, grpc.StatusCode.INTERNAL)


class Exchange:
    """One call as a door sees it: the caller's metadata in, the request id it is answered under."""

    def __init__(self, context):
        # `-bin` keys carry bytes: none of the runner's keys is one, so only text values are read.
        self.metadata = {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}
        self.request_id = serving.request_id(self.metadata.get(serving.REQUEST_ID_HEADER))

    def identify(self, given: str | None) -> None:
        """Take the request id a message carries (the OIP's `id`) when the metadata gave none."""
        if serving.REQUEST_ID_HEADER not in self.metadata and given:
            self.request_id = serving.request_id(given)

    @property
    def routing_key(self) -> str | None:
        return self.metadata.get(serving.ROUTING_KEY_HEADER)

    def call(self, method: str) -> serving.Call:
        return serving.Call(method, self.request_id, self.routing_key)

    def reply_metadata(self, error: RunnerError | None = None) -> tuple:
        metadata = ((serving.REQUEST_ID_HEADER, self.request_id), (WORKER_HEADER, str(os.getpid())))
        return (*metadata, (ERROR_CODE_HEADER, error.code)) if error is not None else metadata


Respond = Callable[[bytes, Exchange], Awaitable[bytes]]


class MessageTimeout(RunnerError):
    """A call whose request message did not arrive in time: DEADLINE_EXCEEDED (408 in the metrics)."""

    status = 408
    code = "request_timeout"


class Doors:
    """What every method handler shares: the worker's runtime, and how long a request message may take."""

    def __init__(self, runtime, receive_timeout: float):
        self.runtime = runtime
        self.receive_timeout = receive_timeout

    def unary(self, route: str, respond: Respond, metered: bool = False) -> grpc.RpcMethodHandler:
        """A unary method (raw bytes in and out) answered by `await respond(request bytes, exchange)` on the
        event loop, like a REST handler. A `metered` one takes a unit from the entitlement once
        the message is in, and gives it back when the call is refused before the model ran (web.endpoint)."""
        runtime, timeout = self.runtime, self.receive_timeout

        async def behaviour(requests, context) -> bytes:
            started = time.perf_counter()
            exchange = Exchange(context)
            taken = None
            try:
                raw = await _request_message(context, timeout)
                if metered and runtime.meter is not None:
                    taken = runtime.meter.take(runtime.active())
                reply = await respond(raw, exchange)
            except RunnerError as exc:
                failure = exc
            except RecursionError:  # a message nested deeper than Python allows
                failure = BadRequest("the message is nested too deeply")
            except Exception as exc:  # a bug here must still answer with a status and keep serving
                failure = _unexpected(route, exc)
            else:
                context.set_trailing_metadata(exchange.reply_metadata())
                metrics.observe(route, 200, time.perf_counter() - started)
                return reply
            if taken is not None and isinstance(failure, _UNSERVED):
                runtime.meter.give_back(taken)
            metrics.observe(route, failure.status, time.perf_counter() - started)
            await context.abort(status_code(failure), failure.message, exchange.reply_metadata(failure))
            raise AssertionError("context.abort returns only by raising")  # pragma: no cover

        # Stream-unary, for unary calls (the wire is the same): a unary handler is called only once the message
        # is in, and a caller who never sends it would hold one of the server's call slots for as long as it
        # liked; here the message is awaited with a deadline, like an HTTP body (RUNNER_BODY_TIMEOUT).
        return grpc.stream_unary_rpc_method_handler(behaviour)


async def _request_message(context, timeout: float) -> bytes:
    """The call's one request message (raw bytes); a second one, from a streaming caller, is not read."""
    try:
        raw = await asyncio.wait_for(context.read(), timeout)
    except TimeoutError:
        raise MessageTimeout(f"the request message did not arrive within {timeout:g} s (RUNNER_BODY_TIMEOUT)",
                             {"timeout_seconds": timeout}) from None
    if raw is grpc.aio.EOF:
        raise BadRequest("the call carried no request message; each method takes one")
    return raw


def _unexpected(route: str, exc: Exception) -> RunnerError:
    error_id = uuid.uuid4().hex[:12]
    log.error("unexpected error [%s] on %s", error_id, route, exc_info=exc)
    return RunnerError(f"internal error (error id {error_id}): {type(exc).__name__}: {exc}", {"error_id": error_id})
