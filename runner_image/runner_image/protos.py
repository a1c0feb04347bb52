"""Compile a .proto at run time into message classes, with no restart and no generated files.

protoc (from grpcio-tools) runs in a subprocess so that its error text can be returned to the
caller verbatim and a protoc crash cannot take the server down. Each compiled proto gets its own
DescriptorPool: two protos that both declare `package x; message In` never collide.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from runner_image.errors import ProtoError

PROTO_FILE_NAME = "model.proto"
PROTOC_TIMEOUT_SECONDS = 30
_CACHE_SIZE = 16


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

    def method(self, name: str) -> RpcMethod | None:
        return self.methods.get(name)

    @property
    def default_method(self) -> str:
        return next(iter(self.methods))


_cache: dict[str, CompiledProto] = {}
_cache_lock = threading.Lock()


def compile_proto(text: str | bytes) -> CompiledProto:
    """Compile proto source; identical text is compiled once per process."""
    if isinstance(text, bytes):
        text = _decode_proto(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    with _cache_lock:
        cached = _cache.get(digest)
    if cached is not None:
        return cached
    compiled = _build(text, digest, _run_protoc(text))
    with _cache_lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[digest] = compiled
    return compiled


def _decode_proto(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtoError(f"model.proto is not UTF-8 text (byte {exc.start})") from exc


def _well_known_include_dir() -> str:
    import grpc_tools

    return os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")


def _run_protoc(text: str) -> descriptor_pb2.FileDescriptorSet:
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
            message = (result.stderr or result.stdout).strip().replace(tmp + "/", "")
            raise ProtoError(f"model.proto does not compile: {message}", {"protoc": message})
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _build(text: str, digest: str, fds: descriptor_pb2.FileDescriptorSet) -> CompiledProto:
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
    return CompiledProto(text, digest, file_desc.package, service.name, methods, messages)


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
