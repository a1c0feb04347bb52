"""A ModelSlot is one loaded, checked model with its proto, metadata and configuration.

A request takes the active slot once and uses only that slot, so it is answered wholly by the
old model or wholly by the new one. Slots are immutable; a swap builds a new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from runner_image import tables
from runner_image.codec import fill_message, message_from_dict, message_to_dict
from runner_image.errors import BadRequest, ModelRejected, NotFound, PredictionFailed, RunnerError
from runner_image.flavours import LoadedModel, load_model
from runner_image.package import Manifest, parse_manifest
from runner_image.protos import CompiledProto, compile_proto

log = logging.getLogger("runner_image")

METADATA_FILE = "metadata.json"
PROTO_FILE = "model.proto"
PACKAGE_FILE = "modelpackage.zip"
CONFIG_FILE = "config.json"
MANIFEST_COPY = "manifest.json"
MODEL_DIR = "model"


@dataclass(frozen=True)
class ModelSlot:
    generation: int
    directory: Path
    metadata: dict
    proto: CompiledProto
    manifest: Manifest
    model: LoadedModel = field(repr=False)
    sha256: dict
    loaded_at: float

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or "model")

    @property
    def config(self) -> dict:
        return self.manifest.config

    def rpc(self, method: str):
        rpc = self.proto.method(method)
        if rpc is None:
            raise NotFound(f"unknown method {method!r}; this model serves: {', '.join(self.proto.methods)}",
                           {"method": method, "methods": list(self.proto.methods)})
        return rpc

    def predict(self, method: str, request_msg):
        """Answer one request message with a response message of the method's output type."""
        rpc = self.rpc(method)
        spec = self.manifest.method_config(method)
        try:
            result = self._call(method, spec, request_msg)
        except BadRequest:  # the request's repeated fields do not form a table: the caller's fault
            raise
        except Exception as exc:
            raise _prediction_failed(method, exc) from exc
        try:
            return _to_output(result, rpc.output, spec, self._single_row(request_msg))
        except Exception as exc:  # an answer that does not fit the output message is the model's fault
            raise _prediction_failed(method, exc) from exc

    @property
    def batchable(self) -> bool:
        return self.model.tabular and self.model.row_independent

    def predict_batch(self, method: str, request_msgs: list) -> list:
        """Answer several requests with one model call: each item is its response message or the RunnerError
        that request alone gets. The rows are stacked in order and the model's answer split back by row
        counts; when the joint call fails or its answer does not split, each request is answered alone, so a
        bad request fails only itself."""
        rpc, spec = self.rpc(method), self.manifest.method_config(method)
        answers: list = [None] * len(request_msgs)
        tables_ = {}
        for i, msg in enumerate(request_msgs):
            try:
                tables_[i] = tables.message_to_table(msg)
            except RunnerError as exc:
                answers[i] = exc
        parts = self._call_stacked(method, spec, list(tables_.values())) if tables_ else []
        for (i, table), part in zip(tables_.items(), parts or [None] * len(tables_), strict=True):
            if parts is None:
                answers[i] = self.predict_or_error(method, request_msgs[i])
            else:
                answers[i] = self._output_or_error(method, part, rpc.output, spec, table.single_row)
        return answers

    def _call_stacked(self, method, spec, parts: list) -> list | None:
        try:
            result = self.model.call(method, spec, tables.stack(parts), self.manifest.config.get("params", {}))
            return tables.split_rows(result, [t.n_rows for t in parts])
        except Exception:  # answered one by one instead: each request gets its own error, or its answer
            return None

    def predict_or_error(self, method: str, request_msg):
        """predict(), with the RunnerError it raised returned instead."""
        try:
            return self.predict(method, request_msg)
        except RunnerError as exc:
            return exc

    @staticmethod
    def _output_or_error(method, part, out_cls, spec, single_row):
        try:
            return _to_output(part, out_cls, spec, single_row)
        except Exception as exc:  # an answer that does not fit the output message is the model's fault
            return _prediction_failed(method, exc)

    def _call(self, method, spec, request_msg):
        params = self.manifest.config.get("params", {})
        if self.model.tabular:
            table = tables.message_to_table(request_msg)
            return self.model.call(method, spec, table, params)
        return self.model.call(method, spec, message_to_dict(request_msg, for_json=False), params)

    def _single_row(self, request_msg) -> bool:
        return self.model.tabular and tables.input_shape(request_msg.DESCRIPTOR) == "single"

    def describe(self) -> dict:
        return {"generation": self.generation, "name": self.name, "flavour": self.manifest.flavour,
                "methods": list(self.proto.methods), "sha256": self.sha256,
                "loaded_at": _iso(self.loaded_at), "config": self.manifest.config}


def _to_output(result, out_cls, spec: dict, single_row: bool):
    if spec.get("postprocess") == "argmax":
        result = tables.argmax(result)
    if isinstance(result, out_cls):
        return result
    return _fill_output(result, out_cls, single_row)


def _fill_output(result, out_cls, single_row: bool):
    # A dict of plain values is a message (python models); arrays and frames are tables.
    if isinstance(result, dict) and not _looks_columnar(result):
        msg = out_cls()
        fill_message(msg, _plain(result))
        return msg
    is_scalar = not isinstance(result, (dict, list, tuple)) and not hasattr(result, "tolist")
    if is_scalar and len(out_cls.DESCRIPTOR.fields) == 1:
        msg = out_cls()
        fill_message(msg, {out_cls.DESCRIPTOR.fields[0].name: _plain(result)})
        return msg
    return tables.result_to_message(result, out_cls, single_row)


def _looks_columnar(result: dict) -> bool:
    return any(hasattr(v, "tolist") and getattr(v, "ndim", 0) > 0 for v in result.values())


def _plain(value):
    """numpy scalars and arrays -> plain Python, so the codec can check their types."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _prediction_failed(method: str, exc: Exception) -> PredictionFailed:
    error_id = uuid.uuid4().hex[:12]
    log.error("prediction failed [%s] method=%s", error_id, method, exc_info=exc)
    reason = exc.message if isinstance(exc, RunnerError) else f"{type(exc).__name__}: {exc}"
    return PredictionFailed(f"the model failed while answering {method!r} (error id {error_id}): {reason}",
                            {"error_id": error_id, "method": method})


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# ---------------------------------------------------------------- loading

def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_slot(directory: Path, generation: int, reuse: ModelSlot | None = None) -> ModelSlot:
    """Load a generation directory (already extracted) into a slot and check it can serve.

    When `reuse` holds the same model package (a proto or configuration swap), its loaded model
    object is shared instead of loaded twice: models are stateless between calls here.
    """
    metadata = read_metadata(directory / METADATA_FILE)
    proto = compile_proto((directory / PROTO_FILE).read_bytes())
    manifest = _read_manifest(directory)
    hashes = _hashes(directory, manifest)
    if reuse is not None and reuse.sha256["model"] == hashes["model"]:
        model = reuse.model
    else:
        model = load_model(directory / MODEL_DIR, manifest)
    slot = ModelSlot(generation, directory, metadata, proto, manifest, model, hashes, time.time())
    check_methods(slot)
    return slot


def read_metadata(path: Path) -> dict:
    try:
        metadata = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise BadRequest("the bundle has no metadata.json") from None
    except ValueError as exc:
        raise BadRequest(f"metadata.json is not valid JSON: {exc}", {"field": "metadata"}) from exc
    if not isinstance(metadata, dict):
        raise BadRequest("metadata.json must be a JSON object", {"field": "metadata"})
    return metadata


def _read_manifest(directory: Path) -> Manifest:
    manifest = parse_manifest(json.loads((directory / MANIFEST_COPY).read_bytes()))
    config_path = directory / CONFIG_FILE
    if config_path.exists():
        manifest = manifest.with_config(json.loads(config_path.read_bytes()))
    return manifest


def _hashes(directory: Path, manifest: Manifest) -> dict:
    hashes = {name: file_sha256(directory / name) for name in (PACKAGE_FILE, PROTO_FILE, METADATA_FILE)}
    hashes["configuration"] = hashlib.sha256(json.dumps(manifest.config, sort_keys=True).encode()).hexdigest()
    return {"model": hashes[PACKAGE_FILE], "proto": hashes[PROTO_FILE], "metadata": hashes[METADATA_FILE],
            "configuration": hashes["configuration"]}


def check_methods(slot: ModelSlot) -> None:
    configured = set(slot.manifest.config.get("methods", {}))
    unknown = configured - set(slot.proto.methods)
    if unknown:
        raise ModelRejected(f"the configuration names methods the proto does not have: {sorted(unknown)} "
                            f"(proto has: {', '.join(slot.proto.methods)})")
    for name, rpc in slot.proto.methods.items():
        slot.model.check_method(name, slot.manifest.method_config(name))
        if slot.model.tabular:
            tables.input_shape(rpc.input.DESCRIPTOR)


def check_samples(slot: ModelSlot, samples: dict) -> dict:
    """Answer every sample; any failure rejects the candidate. Returns method -> answer."""
    answers = {}
    for method, sample in samples.items():
        if method not in slot.proto.methods:
            raise ModelRejected(f"the sample names method {method!r}, which the proto does not have "
                                f"(proto has: {', '.join(slot.proto.methods)})")
        answers[method] = _answer_sample(slot, method, sample)
    return answers


def _answer_sample(slot: ModelSlot, method: str, sample: dict) -> dict:
    try:
        request = message_from_dict(slot.rpc(method).input, sample)
    except BadRequest as exc:
        raise ModelRejected(f"the sample for {method!r} does not fit the input message: {exc.message}") from exc
    try:
        return message_to_dict(slot.predict(method, request))
    except RunnerError as exc:
        raise ModelRejected(f"the candidate model failed its sample for {method!r}: {exc.message}",
                            {"method": method}) from exc
