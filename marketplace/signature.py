"""A revision's API as the model page shows it: each method with its input and output messages
(fields, types, `repeated`, nested messages), and copy-paste requests to a runner serving it.

Read from the PROTOBUF.json onboarding wrote (or, for a revision without one, from model.proto
compiled by the runner's proto tooling). Artifacts never change once stored and a blob is named by
its sha256, so what is read is cached per sha256: a page view reads storage at most once per blob."""

from __future__ import annotations

import json
import logging
import shlex
from dataclasses import dataclass
from functools import lru_cache

from django.core.files.storage import default_storage

from marketplace import storage
from marketplace.choices import ArtifactKind
from marketplace.descriptors import protobuf_json
from marketplace.models import Artifact
from runner_image.errors import PackageError, ProtoError
from runner_image.package import read_manifest_from_zip
from runner_image.protos import compile_proto

logger = logging.getLogger(__name__)

LOCAL_RUNNER = "http://localhost:3330"
SCALAR_TYPES = {"double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32",
                "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes"}
_SCALAR_EXAMPLES = {"double": 0.0, "float": 0.0, "bool": False, "string": "", "bytes": ""}
_CACHE_SIZE = 256


@dataclass(frozen=True)
class Message:
    name: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    repeated: bool = False
    message: Message | None = None  # the nested message, when the type is one

    @property
    def map_types(self) -> tuple[str, str] | None:
        """(key type, value type) for a `map<k, v>` field: proto compiles it to a repeated XEntry."""
        message = self.message
        if not (self.repeated and message and message.name.endswith("Entry")):
            return None
        names = [field.name for field in message.fields]
        return (message.fields[0].type, message.fields[1].type) if names == ["key", "value"] else None

    @property
    def type_label(self) -> str:
        if self.map_types:
            return "map<{}, {}>".format(*self.map_types)
        return f"repeated {self.type}" if self.repeated else self.type


@dataclass(frozen=True)
class Method:
    name: str
    input: Message
    output: Message


class SignatureUnavailable(Exception):
    """The stored descriptor cannot be read or understood."""


# ---------------------------------------------------------------- reading the signature

def api_signature(artifacts: list[Artifact]) -> tuple[Method, ...]:
    """The methods of a revision, from its artifacts (already fetched, with their blobs)."""
    by_kind = {artifact.kind: artifact for artifact in artifacts if artifact.blob_id}
    try:
        if ArtifactKind.PROTOBUF_JSON in by_kind:
            blob = by_kind[ArtifactKind.PROTOBUF_JSON].blob
            return _from_protobuf_json(blob.sha256, blob.storage_key)
        if ArtifactKind.PROTO in by_kind:
            blob = by_kind[ArtifactKind.PROTO].blob
            return _from_proto(blob.sha256, blob.storage_key)
    except SignatureUnavailable as exc:
        # Not cached: a storage hiccup must not hide the signature for the life of the process.
        logger.warning("no API signature: %s", exc)
    return ()


@lru_cache(maxsize=_CACHE_SIZE)
def _from_protobuf_json(sha256: str, storage_key: str) -> tuple[Method, ...]:
    try:
        with default_storage.open(storage_key, "rb") as handle:
            return methods_from_protobuf_json(json.load(handle))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise SignatureUnavailable(f"PROTOBUF.json {sha256[:12]}: {exc!r}") from exc


@lru_cache(maxsize=_CACHE_SIZE)
def _from_proto(sha256: str, storage_key: str) -> tuple[Method, ...]:
    try:
        with default_storage.open(storage_key, "rb") as handle:
            return methods_from_protobuf_json(protobuf_json(compile_proto(handle.read())))
    except (OSError, ValueError, KeyError, TypeError, ProtoError) as exc:
        raise SignatureUnavailable(f"model.proto {sha256[:12]}: {exc!r}") from exc


def methods_from_protobuf_json(document: dict) -> tuple[Method, ...]:
    """PROTOBUF.json as marketplace.descriptors writes it (the Acumos TOSCA generator's shape)."""
    messages = {spec["messageName"]: _message(spec) for spec in document.get("listOfMessages") or []}
    methods = []
    for operation in (document.get("service") or {}).get("listOfOperations") or []:
        input_name = operation["listOfInputMessages"][0]["inputMessageName"]
        output_name = operation["listOfOutputMessages"][0]["outPutMessageName"]
        methods.append(Method(operation["operationName"], messages.get(input_name, Message(input_name, ())),
                              messages.get(output_name, Message(output_name, ()))))
    return tuple(methods)


def _message(spec: dict) -> Message:
    return Message(spec["messageName"], tuple(_field(argument) for argument in spec.get("messageargumentList") or []))


def _field(argument: dict) -> Field:
    nested = argument.get("complexType")
    return Field(name=argument["name"], type=argument["type"], repeated=argument.get("role") == "repeated",
                 message=_message(nested) if nested else None)


# ---------------------------------------------------------------- samples and examples

def samples_of(artifacts: list[Artifact]) -> dict:
    """The sample request per method the model package declares (runner.json), if any, from
    artifacts already fetched; cached by the package's sha256: packages can be gigabytes and are
    read once. deployment.selectors.samples_of reads them here too."""
    model = next((a for a in artifacts if a.kind == ArtifactKind.MODEL and a.blob_id), None)
    if model is None:
        return {}
    try:
        return _samples(model.blob.sha256, model.blob.storage_key)
    except SignatureUnavailable as exc:
        logger.warning("no samples: %s", exc)
        return {}


@lru_cache(maxsize=_CACHE_SIZE)
def _samples(sha256: str, storage_key: str) -> dict:
    try:
        with storage.local_copy(storage_key, ".zip") as path:
            return dict(read_manifest_from_zip(path).samples)
    except (PackageError, OSError) as exc:
        raise SignatureUnavailable(f"modelpackage.zip {sha256[:12]}: {exc!r}") from exc


@dataclass(frozen=True)
class Example:
    method: str
    url: str
    body: str  # the JSON request, indented
    curl: str
    python: str
    from_sample: bool  # the model's own sample, rather than zeros made from the field types


def examples(methods: tuple[Method, ...], samples: dict, endpoint: str = "") -> list[Example]:
    base = (endpoint or LOCAL_RUNNER).rstrip("/")
    return [_example(method, samples.get(method.name), base) for method in methods]


def _example(method: Method, sample: dict | None, base: str) -> Example:
    body = sample if isinstance(sample, dict) else example_value(method.input)
    url = f"{base}/model/methods/{method.name}"
    text = json.dumps(body, indent=2, ensure_ascii=False)
    curl = (f"curl -X POST {shlex.quote(url)} \\\n  -H 'Content-Type: application/json' \\\n"
            f"  -H 'Accept: application/json' \\\n  -d {shlex.quote(text)}")
    python = (f"import requests\n\nresponse = requests.post(\n    {json.dumps(url)},\n"
              f"    json={python_literal(body, 4)},\n    timeout=30,\n)\n"
              "response.raise_for_status()\nprint(response.json())")
    return Example(method.name, url, text, curl, python, from_sample=isinstance(sample, dict))


def example_value(message: Message) -> dict:
    """A request made from the field types alone: zeros, empty strings, one-item lists."""
    return {field.name: _field_value(field) for field in message.fields}


def _field_value(field: Field):
    if field.map_types:
        key_type, _ = field.map_types
        return {_map_key(key_type): _single_value(field.message.fields[1])}
    single = _single_value(field)
    return [single] if field.repeated else single


def _single_value(field: Field):
    if field.message is not None:
        return example_value(field.message)
    if field.type in _SCALAR_EXAMPLES:
        return _SCALAR_EXAMPLES[field.type]
    return 0  # the integer types, and an enum's first value (the JSON mapping takes its number)


def _map_key(key_type: str) -> str:
    return {"string": "key", "bool": "true"}.get(key_type, "0")


def python_literal(value, indent: int = 0) -> str:
    """`value` (JSON data) as Python source, indented like the JSON beside it."""
    pad, inner = " " * indent, " " * (indent + 4)
    if isinstance(value, dict) and value:
        items = ",\n".join(f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {python_literal(v, indent + 4)}"
                           for k, v in value.items())
        return "{\n" + items + ",\n" + pad + "}"
    if isinstance(value, list) and value:
        items = ",\n".join(f"{inner}{python_literal(v, indent + 4)}" for v in value)
        return "[\n" + items + ",\n" + pad + "]"
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(value, ensure_ascii=False)
