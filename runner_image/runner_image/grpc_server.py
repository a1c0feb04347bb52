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

What every call shares (raw bytes, metering, request ids, status codes, metrics) is in runner_image.grpc_calls.
"""

from __future__ import annotations

import logging

import grpc

from runner_image.grpc_calls import Doors
from runner_image.grpc_model import ModelService
from runner_image.grpc_oip import InferenceService
from runner_image.settings import HttpLimits

log = logging.getLogger("runner_image")
STOP_GRACE_SECONDS = 5


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
