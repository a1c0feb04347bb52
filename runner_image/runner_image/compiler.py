"""Protos that callers send with their data (/getBinary, /getBinaryJSON), compiled off the event loop.

Why a process and not a thread: protoc already runs as a subprocess, but building the descriptor
pool and the message classes from its output is C code (upb) that holds the GIL, about 0.15 s per
MiB of proto (measured: 0.08 s for 0.5 MiB, 0.37 s for 2.4 MiB). In a thread, every prediction
would wait for it; and the classes (about 35 times the descriptors in memory) would stay in the
serving process. So the whole job, protoc, the pool, and turning the caller's data into the
message and its bytes, runs in a worker process at a lower CPU priority, and only bytes come back.
The serving process never holds a class of a caller's proto; each worker keeps its own cache of
compiled protos, bounded in bytes.

Why not concurrent.futures.ProcessPoolExecutor: its queues need POSIX semaphores (/dev/shm), which
the portal's sandbox for local runners does not give, and a job it has started cannot be stopped.
A worker here is `python -m runner_image.compiler` with two pipes: the event loop writes a job and
reads the answer without a thread; a worker that takes too long is killed (with its protoc); a
worker whose server is gone reads end-of-file and exits.

Limits, all from Settings: the proto's size (413 before anything runs); at most
`proto_compile_concurrency` jobs at once in each of the runner's worker processes (1 by default, so
that on a small machine a core stays with the predictions); a short queue, and a bounded wait in
it, after which the caller gets 503 with Retry-After.

The proto needs no admin token: it changes nothing the runner serves, and these limits are what
keep it from costing the other callers anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import struct
import sys

from runner_image import errors, protos
from runner_image.codec import message_from_json
from runner_image.csvcodec import message_from_csv
from runner_image.errors import BadRequest, Busy, ProtoError, RunnerError
from runner_image.settings import Settings

log = logging.getLogger("runner_image")

QUEUE_PER_SLOT = 8
"""Callers that may wait for each compile slot; more are told to come back at once (each holds its body)."""
JOB_TIMEOUT_SECONDS = protos.PROTOC_TIMEOUT_SECONDS + 30
"""protoc has its own 30 s; the rest (the pool, the data) is a fraction of a second for 1 MiB."""

_JOB = struct.Struct(">III")  # lengths of: the job's JSON, the proto, the data
_ANSWER = struct.Struct(">BI")  # outcome, length of what follows
_DONE, _REFUSED, _FAILED = 0, 1, 2  # bytes; a RunnerError as JSON; an unexpected error's text


def parse_data(cls, data: bytes, kind: str):
    """A CSV or JSON data file as one message of `cls`."""
    return message_from_csv(cls, data) if kind == "csv" else message_from_json(cls, data)


def encode_with_proto(raw_proto: bytes, data: bytes, data_kind: str, operation: str | None) -> bytes:
    """The caller's data as the serialized input message of `operation` in the caller's proto (in a worker)."""
    proto = protos.compile_proto(raw_proto)
    rpc = proto.require_method(operation or proto.default_method)
    try:
        return parse_data(rpc.input, data, data_kind).SerializeToString()
    except RecursionError:  # json.loads on "[[[[..." nests deeper than Python allows
        raise BadRequest("the JSON file is nested too deeply") from None


class ProtoCompiler:
    """The compile workers of one server process, and the gate in front of them. Started on first use."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._idle: list[asyncio.subprocess.Process] = []
        self._busy: set[asyncio.subprocess.Process] = set()
        self._retiring: set[asyncio.Task] = set()
        self._gate: asyncio.Semaphore | None = None
        self._waiting = 0

    async def encode(self, raw_proto: bytes, data: bytes, data_kind: str, operation: str | None) -> bytes:
        protos.check_proto_size(len(raw_proto), self.settings.max_proto_bytes)
        await self._enter()
        try:
            worker = self._take_idle() or await self._start_worker()
            self._busy.add(worker)
            outcome, payload = await self._run(worker, raw_proto, data, data_kind, operation)
        finally:
            self._gate.release()
        return _result(outcome, payload)

    async def _enter(self) -> None:
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.settings.proto_compile_concurrency)
        wait = self.settings.proto_compile_wait
        if self._gate.locked() and self._waiting >= QUEUE_PER_SLOT * self.settings.proto_compile_concurrency:
            raise self._refusal("every compile slot is taken and its queue is full")
        self._waiting += 1
        try:
            async with asyncio.timeout(wait):
                await self._gate.acquire()
        except TimeoutError:
            raise self._refusal(f"no compile slot came free within {wait:g} s") from None
        finally:
            self._waiting -= 1

    def _refusal(self, why: str) -> Busy:
        retry = max(1, math.ceil(self.settings.proto_compile_wait))
        return Busy(f"the runner is compiling other callers' protos: {why} "
                    f"(RUNNER_PROTO_COMPILE_CONCURRENCY={self.settings.proto_compile_concurrency}); "
                    f"try again in {retry} s, or use the served proto (/getBinaryDefault, /getBinaryJSONDefault)",
                    {"retry_after_seconds": retry})

    def _take_idle(self) -> asyncio.subprocess.Process | None:
        while self._idle:
            worker = self._idle.pop()
            if worker.returncode is None:
                return worker
            _close(worker)  # it died while idle (killed, out of memory): leave it behind
        return None

    async def _start_worker(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "runner_image.compiler", str(self.settings.proto_compile_nice),
            str(self.settings.proto_cache_bytes), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            start_new_session=True)  # its own process group: a kill takes its protoc along

    async def _run(self, worker, raw_proto: bytes, data: bytes, data_kind: str, operation) -> tuple[int, bytes]:
        """One job on `worker`; the worker goes back to the idle list only if the job ended cleanly."""
        job = json.dumps({"kind": data_kind, "operation": operation}).encode()
        try:
            async with asyncio.timeout(JOB_TIMEOUT_SECONDS):
                worker.stdin.write(_JOB.pack(len(job), len(raw_proto), len(data)) + job + raw_proto + data)
                await worker.stdin.drain()
                outcome, length = _ANSWER.unpack(await worker.stdout.readexactly(_ANSWER.size))
                payload = await worker.stdout.readexactly(length)
        except TimeoutError:
            await self._retire(worker)
            raise ProtoError(f"compiling model.proto took longer than {JOB_TIMEOUT_SECONDS} s") from None
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self._retire(worker)
            log.warning("a proto compile process stopped (exit status %s); the next caller proto starts another",
                        worker.returncode)
            raise ProtoError("compiling model.proto stopped the compile process; the proto was not used") from exc
        except BaseException:  # cancelled mid-job: its answer would be the next caller's
            task = asyncio.get_running_loop().create_task(self._retire(worker))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
            raise
        self._busy.discard(worker)
        self._idle.append(worker)
        return outcome, payload

    async def _retire(self, worker) -> None:
        """Kill `worker` and its protoc (its own process group), and reap it."""
        self._busy.discard(worker)
        if worker.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
        await worker.wait()
        _close(worker)

    async def aclose(self) -> None:
        """Workers read end-of-file and leave; one that does not within a second is killed."""
        workers, self._idle = [*self._idle, *self._busy], []
        for worker in workers:
            worker.stdin.close()
        for worker in workers:
            try:
                await asyncio.wait_for(worker.wait(), 1)
            except TimeoutError:
                await self._retire(worker)
            _close(worker)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)


def _close(worker: asyncio.subprocess.Process) -> None:
    # asyncio's Process has no close(); its transport, collected unclosed, warns and may touch a closed loop.
    worker._transport.close()


def _result(outcome: int, payload: bytes) -> bytes:
    if outcome == _DONE:
        return payload
    if outcome == _REFUSED:
        error = json.loads(payload)
        cls = getattr(errors, error["type"], None)
        if not (isinstance(cls, type) and issubclass(cls, RunnerError)):
            cls = RunnerError
        raise cls(error["message"], error["details"], error["status"])
    raise RuntimeError(f"the proto compile process failed: {payload.decode(errors='replace')}")  # 500, logged


# ---------------------------------------------------------------- the worker process

def serve_jobs(nice: int, cache_bytes: int) -> None:
    """Answer jobs from stdin until it closes. Answers go to a private copy of stdout; fd 1 itself
    becomes stderr, so that nothing else printed here can break the framing."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    jobs = sys.stdin.buffer
    if nice:
        os.nice(nice)  # protoc, its child, inherits it too
    protos.cache.resize(cache_bytes)
    while header := jobs.read(_JOB.size):
        if len(header) < _JOB.size:
            return
        job_length, proto_length, data_length = _JOB.unpack(header)
        job = json.loads(jobs.read(job_length))
        raw_proto, data = jobs.read(proto_length), jobs.read(data_length)
        outcome, payload = _answer(raw_proto, data, job["kind"], job["operation"])
        answers.write(_ANSWER.pack(outcome, len(payload)) + payload)
        answers.flush()


def _answer(raw_proto: bytes, data: bytes, kind: str, operation: str | None) -> tuple[int, bytes]:
    try:
        return _DONE, encode_with_proto(raw_proto, data, kind, operation)
    except RunnerError as exc:
        return _REFUSED, json.dumps({"type": type(exc).__name__, "message": exc.message, "details": exc.details,
                                     "status": exc.status}).encode()
    except Exception as exc:  # a bug: the server answers 500 with an error id, the worker goes on
        return _FAILED, f"{type(exc).__name__}: {exc}".encode()


if __name__ == "__main__":
    serve_jobs(int(sys.argv[1]), int(sys.argv[2]))
