"""gRPC beside HTTP, in every worker process: the model's own service (runner_image.grpc_model) and the Open
Inference Protocol's GRPCInferenceService (runner_image.grpc_oip), on `--grpc-port` (default 3331, 0: off).

Each uvicorn worker starts its own server in the app's lifespan, so it lives and dies with the worker; gRPC
sets SO_REUSEPORT on Linux, so every worker binds the same port and the kernel spreads connections
between them, as it does for HTTP.

grpc.aio on the worker's event loop (uvloop), not the thread-pool server (grpc.server with a
ThreadPoolExecutor). Measured on this 2-core machine while other test suites ran (load 6 to 12), one worker,
the `scale` model (y = 2x), p50 of 2,000 sequential calls, three rounds each, twice: aio 0.70 to 0.95 ms,
the thread pool 0.72 to 0.97 ms; 16 calls in flight from a grpc.aio client: aio 812 and 830 calls/s, the
thread pool 841 and 850 (both with unary handlers; the stream-unary form used now, for the message deadline
below, measured 0.81 to 1.02 ms). No difference the noise does not swallow. So the choice is made by what aio
keeps:
the runner's one execution model. Predictions run on the event loop, exactly as REST's do
(runner_image.server): gRPC requests join the same dynamic batches as REST's (runner_image.batching batches
what the loop reads in one turn; a thread could not join them), neither the model's code nor the request
path (the meter, the statistics, the variants) has to be safe for threads, and gRPC and REST predictions in
one process never fight for the GIL. A thread pool would also add a second bound (its threads) to think
about beside maximum_concurrent_rpcs.

Bounds: a message is at most max_request_bytes (RUNNER_MAX_REQUEST_BYTES, as an HTTP body; over it, gRPC
answers RESOURCE_EXHAUSTED before the runner sees it); a worker holds at most grpc_max_concurrent_rpcs calls
(RUNNER_GRPC_MAX_CONCURRENT_RPCS, 64; beyond, RESOURCE_EXHAUSTED), so at most that many messages; and a
call's message must arrive within RUNNER_BODY_TIMEOUT seconds (30), so a caller that opens calls and sends
nothing holds their slots no longer than that.

What every call shares is here: raw bytes in and out (each door parses with the classes of the slot it
chose, so garbage is a clear INVALID_ARGUMENT, not gRPC's INTERNAL "Exception deserializing request"),
metering, the request id (`x-request-id`) and the worker's pid (`x-runner-worker`) in the trailing
metadata, errors mapped to gRPC status codes, and the request metrics.
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
from runner_image.settings import HttpLimits
from runner_image.web import _UNSERVED  # the refusals that give a metered unit back: one list for both doors

log = logging.getLogger("runner_image")

WORKER_HEADER = "x-runner-worker"
ERROR_CODE_HEADER = "x-error-code"  # the runner's error code (e.g. usage_exhausted): finer than the status
STOP_GRACE_SECONDS = 5

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


# ---------------------------------------------------------------- lifecycle

def options(settings) -> list[tuple]:
    return [
        ("grpc.so_reuseport", 1),  # every worker binds the port (gRPC's default on Linux; said here, as meant)
        ("grpc.max_receive_message_length", settings.max_request_bytes),  # as the HTTP body limit
        ("grpc.max_send_message_length", -1),  # what the model answers is the model's business
    ]


async def start(runtime, settings):
    """The worker's gRPC server, serving; None when settings.grpc_port is 0."""
    if not settings.grpc_port:
        log.info("gRPC is off (--grpc-port 0)")
        return None
    from runner_image.grpc_model import ModelService
    from runner_image.grpc_oip import InferenceService

    server = grpc.aio.server(options=options(settings), maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs)
    doors = Doors(runtime, HttpLimits.from_env().body_timeout)
    inference = InferenceService(doors)
    # The inference service first: the model's service answers every other method, UNIMPLEMENTED included.
    server.add_generic_rpc_handlers((inference, ModelService(doors, inference.methods)))
    host = settings.grpc_host
    if ":" in host and not host.startswith("["):  # an IPv6 address (--host ::) is written in brackets
        host = f"[{host}]"
    address = f"{host}:{settings.grpc_port}"
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:
        raise SystemExit(f"gRPC cannot listen on {address} ({exc}): is another program using the port? "
                         "Choose another with --grpc-port, or 0 to turn gRPC off") from None
    await server.start()
    log.info("gRPC listening on %s", address)
    return server


async def stop(server) -> None:
    if server is not None:
        await server.stop(STOP_GRACE_SECONDS)  # calls under way may finish; new ones are refused
