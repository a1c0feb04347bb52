"""Compile a .proto at run time into message classes, with no restart and no generated files.

protoc (from grpcio-tools) runs in a subprocess so that its error text can be returned to the
caller verbatim and a protoc crash cannot take the server down. Each compiled proto gets its own
DescriptorPool: two protos that both declare `package x; message In` never collide.

This module compiles in the calling process. The server uses it for the protos it serves (the
bundle's, and an admin's swap); a proto a caller sends with its data (/getBinary) is compiled by
runner_image.compiler in a separate process, through the same function.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import grpc_tools
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from runner_image.errors import NotFound, PayloadTooLarge, ProtoError

PROTO_FILE_NAME = "model.proto"
PROTOC_TIMEOUT_SECONDS = 30
PROTOC_ERROR_LINES = 20
DEFAULT_CACHE_BYTES = 4 << 20


@dataclass(frozen=True)
class RpcMethod:
    name: str
    input: type
    output: type


@dataclass(frozen=True)
class CompiledProto:
    text: str
    sha256: str
    package: str
    service_name: str
    methods: dict[str, RpcMethod] = field(repr=False)
    messages: dict[str, type] = field(repr=False)
    weight: int = field(default=0, compare=False)
    """Bytes of the descriptors protoc produced: what the cache counts. The classes built from them
    take roughly 35 times that in memory (measured: a 2.5 MiB descriptor set added 90 MiB RSS)."""

    def method(self, name: str) -> RpcMethod | None:
        return self.methods.get(name)

    def require_method(self, name: str) -> RpcMethod:
        """The rpc `name` names, or a 404 that lists the ones the proto has."""
        rpc = self.methods.get(name)
        if rpc is None:
            raise NotFound(f"unknown operation {name!r}; the proto has: {', '.join(self.methods)}",
                           {"operation": name, "methods": list(self.methods)})
        return rpc

    @property
    def default_method(self) -> str:
        return next(iter(self.methods))


class ProtoCache:
    """Compiled protos by the sha256 of their text, least recently used first out, bounded in bytes
    (CompiledProto.weight) rather than in entries: a few big protos must not hold gigabytes."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, CompiledProto] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def used_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> CompiledProto | None:
        with self._lock:
            compiled = self._entries.get(digest)
            if compiled is not None:
                self._entries.move_to_end(digest)
            return compiled

    def put(self, compiled: CompiledProto) -> None:
        if compiled.weight > self.max_bytes:
            return  # bigger than the whole budget: used once, never kept
        with self._lock:
            if compiled.sha256 in self._entries:
                return
            self._entries[compiled.sha256] = compiled
            self._bytes += compiled.weight
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.weight

    def resize(self, max_bytes: int) -> None:
        with self._lock:
            self.max_bytes = max_bytes
            while self._entries and self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.weight


cache = ProtoCache()


def check_proto_size(size: int, limit: int, setting: str = "RUNNER_MAX_PROTO_BYTES") -> None:
    """413 for a proto over `limit` bytes, before protoc or a descriptor pool spends anything on it."""
    if size > limit:
        raise PayloadTooLarge(f"model.proto is {size} bytes; the limit is {limit} bytes ({setting})",
                              {"part": "proto", "limit_bytes": limit, "size_bytes": size})


def compile_proto(text: str | bytes) -> CompiledProto:
    """Compile proto source; identical text is compiled once per process while it stays in the cache."""
    if isinstance(text, bytes):
        text = _decode_proto(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    cached = cache.get(digest)
    if cached is not None:
        return cached
    compiled = _build(text, digest, _run_protoc(text))
    cache.put(compiled)
    return compiled


def _decode_proto(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtoError(f"model.proto is not UTF-8 text (byte {exc.start})") from exc


def _well_known_include_dir() -> str:
    return os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")


def _run_protoc(text: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="runner-proto-") as tmp:
        Path(tmp, PROTO_FILE_NAME).write_text(text, encoding="utf-8")
        out = Path(tmp, "descriptor.pb")
        cmd = [
            sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp}", f"-I{_well_known_include_dir()}",
            "--include_imports", f"--descriptor_set_out={out}", PROTO_FILE_NAME,
        ]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=PROTOC_TIMEOUT_SECONDS, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ProtoError("protoc did not finish in time") from exc
        if result.returncode != 0:
            message = _first_lines((result.stderr or result.stdout).strip().replace(tmp + "/", ""))
            raise ProtoError(f"model.proto does not compile: {message}", {"protoc": message})
        return out.read_bytes()


def _first_lines(message: str, keep: int = PROTOC_ERROR_LINES) -> str:
    """protoc's first errors: a big broken proto would otherwise make an answer as big as itself."""
    lines = message.splitlines()
    if len(lines) <= keep:
        return message
    return "\n".join([*lines[:keep], f"(and {len(lines) - keep} more lines)"])


def _build(text: str, digest: str, serialized: bytes) -> CompiledProto:
    fds = descriptor_pb2.FileDescriptorSet.FromString(serialized)
    pool = descriptor_pool.DescriptorPool()
    for file_proto in fds.file:
        pool.Add(file_proto)
    classes = message_factory.GetMessages(list(fds.file), pool=pool)
    file_desc = pool.FindFileByName(PROTO_FILE_NAME)
    _check_proto3(file_desc)
    service = _pick_service(file_desc)
    # GetMessageClass, not `classes`: an rpc may take a nested message (Outer.Inner), which GetMessages omits.
    methods = {
        m.name: RpcMethod(m.name, message_factory.GetMessageClass(m.input_type),
                          message_factory.GetMessageClass(m.output_type))
        for m in service.methods
    }
    messages = dict(classes)
    for full_name, cls in classes.items():
        messages.setdefault(full_name.rsplit(".", 1)[-1], cls)
    return CompiledProto(text, digest, file_desc.package, service.name, methods, messages, len(serialized))


def _check_proto3(file_desc) -> None:
    syntax = getattr(file_desc, "syntax", None) or _syntax_from_proto(file_desc)
    if syntax != "proto3":
        raise ProtoError(f'model.proto must declare syntax = "proto3" (found {syntax!r})')


def _syntax_from_proto(file_desc) -> str:
    proto = descriptor_pb2.FileDescriptorProto()
    file_desc.CopyToProto(proto)
    return proto.syntax or "proto2"


def _pick_service(file_desc):
    services = file_desc.services_by_name
    if not services:
        raise ProtoError("model.proto defines no service: expected `service Model { rpc ... }`")
    service = services.get("Model") or next(iter(services.values()))
    if not service.methods:
        raise ProtoError(f"service {service.name} in model.proto has no rpc methods")
    return service
