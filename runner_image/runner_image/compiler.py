"""Protos that callers send with their data (/getBinary, /getBinaryJSON), compiled off the event loop.

Why a process and not a thread: protoc already runs as a subprocess, but building the descriptor
pool and the message classes from its output is C code (upb) that holds the GIL, about 0.15 s per
MiB of proto (measured: 0.08 s for 0.5 MiB, 0.37 s for 2.4 MiB). In a thread, every prediction
would wait for it; and the classes (about 35 times the descriptors in memory) would stay in the
serving process. So the whole job, protoc, the pool, and turning the caller's data into the
message and its bytes, runs in a spawned worker process at a lower CPU priority, and only bytes
come back. The serving process never holds a class of a caller's proto; the worker keeps its own
cache of compiled protos, bounded in bytes.

Limits, all from Settings: the proto's size (413 before anything runs); at most
`proto_compile_concurrency` jobs at once in each of the runner's worker processes (1 by default, so
that on a small machine a core stays with the predictions); a bounded queue, and a bounded wait in
it, after which the caller gets 503 with Retry-After.

The proto needs no admin token: it changes nothing the runner serves, and these limits are what
keep it from costing the other callers anything.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import threading
import time
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor

from runner_image import protos
from runner_image.codec import message_from_json
from runner_image.csvcodec import message_from_csv
from runner_image.errors import Busy, ProtoError
from runner_image.settings import Settings

log = logging.getLogger("runner_image")

QUEUE_PER_SLOT = 8
"""Callers that may wait for each compile slot; more are told to come back at once (each holds its body)."""


def parse_data(cls, data: bytes, kind: str):
    """A CSV or JSON data file as one message of `cls`."""
    return message_from_csv(cls, data) if kind == "csv" else message_from_json(cls, data)


def encode_with_proto(raw_proto: bytes, data: bytes, data_kind: str, operation: str | None) -> bytes:
    """The caller's data as the serialized input message of `operation` in the caller's proto.
    Runs in the compile worker; RunnerErrors come back to the server whole (errors.RunnerError.__reduce__)."""
    proto = protos.compile_proto(raw_proto)
    rpc = proto.require_method(operation or proto.default_method)
    return parse_data(rpc.input, data, data_kind).SerializeToString()


class ProtoCompiler:
    """The compile worker pool of one server process, with its gate. Started on first use."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._gate: asyncio.Semaphore | None = None
        self._waiting = 0

    async def encode(self, raw_proto: bytes, data: bytes, data_kind: str, operation: str | None) -> bytes:
        protos.check_proto_size(len(raw_proto), self.settings.max_proto_bytes)
        await self._enter()
        try:
            future = self._pool().submit(encode_with_proto, raw_proto, data, data_kind, operation)
        except BaseException:
            self._gate.release()
            raise
        loop = asyncio.get_running_loop()
        # The slot is free when the job is, even if this caller went away: a job cannot be stopped
        # once the worker has it, and the gate must count what really runs.
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._gate.release))
        try:
            return await asyncio.wrap_future(future)
        except BrokenExecutor as exc:
            self._discard(future)
            raise ProtoError("compiling model.proto stopped the compile process; the proto was not used") from exc

    async def _enter(self) -> None:
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.settings.proto_compile_concurrency)
        wait = self.settings.proto_compile_wait
        if self._gate.locked() and self._waiting >= QUEUE_PER_SLOT * self.settings.proto_compile_concurrency:
            raise self._busy("every compile slot is taken and its queue is full")
        self._waiting += 1
        try:
            async with asyncio.timeout(wait):
                await self._gate.acquire()
        except TimeoutError:
            raise self._busy(f"no compile slot came free within {wait:g} s") from None
        finally:
            self._waiting -= 1

    def _busy(self, why: str) -> Busy:
        retry = max(1, math.ceil(self.settings.proto_compile_wait))
        return Busy(f"the runner is compiling other callers' protos: {why} "
                    f"(RUNNER_PROTO_COMPILE_CONCURRENCY={self.settings.proto_compile_concurrency}); "
                    f"try again in {retry} s, or use the served proto (/getBinaryDefault, /getBinaryJSONDefault)",
                    {"retry_after_seconds": retry})

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                # spawn, not fork: the server has threads (the anyio pool, the swap watcher) whose
                # locks a forked child could inherit held.
                self._executor = ProcessPoolExecutor(
                    max_workers=self.settings.proto_compile_concurrency,
                    mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                    initargs=(self.settings.proto_compile_nice, self.settings.proto_cache_bytes))
            return self._executor

    def _discard(self, future: Future) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            log.warning("the proto compile process stopped; a new one starts with the next caller proto")
            executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _start_worker(nice: int, cache_bytes: int) -> None:
    if nice:
        os.nice(nice)  # protoc, its child, inherits it too
    protos.cache.resize(cache_bytes)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True, name="parent-watch").start()


def _exit_with_parent(parent: int) -> None:
    """A killed server leaves no compile process behind (its queue's pipe does not close for it)."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)
