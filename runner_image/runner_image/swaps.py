"""Swap assembly: turns a PUT /model, PUT /proto, PUT /model/configuration or /transform* request into
a candidate for runtime.Runtime.swap. The request's parts are spooled to a temp dir (Upload); a builder
writes the new generation from them and the active one (the parts not sent); a check, from the
request's sample or the data to transform, must pass before the new model goes live.

The swap itself runs in a thread, so that the event loop keeps answering with the old model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from starlette.requests import Request

from runner_image.codec import message_to_dict
from runner_image.compiler import parse_data
from runner_image.errors import BadRequest, ModelRejected, RunnerError
from runner_image.package import ExtractLimits, validate_config
from runner_image.protos import check_proto_size, compile_proto
from runner_image.runtime import Runtime, inherit, stage_package
from runner_image.slot import (
    CONFIG_FILE,
    MANIFEST_COPY,
    METADATA_FILE,
    MODEL_DIR,
    PACKAGE_FILE,
    PROTO_FILE,
    check_samples,
    read_metadata,
)
from runner_image.state import write_json
from runner_image.web import operation_of, read_form

# The multipart parts a swap request may carry, and the file name each is spooled to.
PARTS = {"model": "modelpackage.zip", "proto": "model.proto", "metadata": "metadata.json",
         "modelConfig": "config.json", "sample": "sample.json"}


class Upload:
    """The parts of a swap request, spooled to a private temp dir (never held whole in memory)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="runner-upload-"))
        self.files: dict[str, Path] = {}

    async def take(self, form, name: str, target: str) -> None:
        value = form.get(name)
        if value is None:
            return
        path = self.dir / target
        with open(path, "wb") as out:
            if isinstance(value, str):
                out.write(value.encode())
            else:
                while chunk := await value.read(1 << 20):
                    out.write(chunk)
        self.files[name] = path

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _builder(upload: Upload, limits: ExtractLimits):
    """Returns build(directory, current): new parts from the upload, the rest from `current`."""

    def build(directory: Path, current) -> None:
        files = upload.files
        if "proto" in files:
            compile_proto(files["proto"].read_bytes())  # fail fast with protoc's message
            shutil.move(str(files["proto"]), directory / PROTO_FILE)
        if "metadata" in files:
            read_metadata(files["metadata"])
            shutil.move(str(files["metadata"]), directory / METADATA_FILE)
        if "model" in files:
            stage_package(directory, files["model"], limits)
        if "modelConfig" in files:
            _stage_config(directory, files["modelConfig"])
        inherit(directory, current, (PROTO_FILE, METADATA_FILE, PACKAGE_FILE, MANIFEST_COPY, MODEL_DIR))
        if "model" not in files and "modelConfig" not in files:
            inherit(directory, current, (CONFIG_FILE,))

    return build


def _stage_config(directory: Path, path: Path) -> None:
    try:
        config = json.loads(path.read_bytes())
    except ValueError as exc:
        raise BadRequest(f"modelConfig is not valid JSON: {exc}", {"part": "modelConfig"}) from exc
    validate_config(config, source="modelConfig", root="")
    write_json(directory / CONFIG_FILE, config)


def _sample_check(upload: Upload):
    """A check from the request's `sample` part: {method: request} or one request for the first method."""
    if "sample" not in upload.files:
        return None
    try:
        sample = json.loads(upload.files["sample"].read_bytes())
    except ValueError as exc:
        raise BadRequest(f"the sample part is not valid JSON: {exc}", {"part": "sample"}) from exc
    if not isinstance(sample, dict):
        raise BadRequest("the sample part must be a JSON object", {"part": "sample"})

    def check(candidate):
        per_method = sample if sample and set(sample) <= set(candidate.proto.methods) else {
            candidate.proto.default_method: sample}
        return check_samples(candidate, per_method)

    return check


async def from_form(request: Request, runtime: Runtime, action: str, *, parts: dict, required: tuple,
                    check_factory=None, apply=None):
    """Swap in what the multipart request sends (`parts`: name -> file name), checked by `check_factory`'s
    check if given, else by the request's sample part if any. `apply` (default runtime.swap) takes
    (action, build, check): runtime.stage makes a candidate instead of serving it."""
    form = await read_form(request)
    missing = [p for p in required if form.get(p) is None]
    if missing:
        raise BadRequest(f"the multipart part '{missing[0]}' is required", {"part": missing[0]})
    upload = Upload()
    try:
        for name, target in parts.items():
            await upload.take(form, name, target)
        if "proto" in upload.files:
            check_proto_size(upload.files["proto"].stat().st_size, runtime.settings.max_proto_bytes)
        check = check_factory(upload, form, request) if check_factory else _sample_check(upload)
        limits = ExtractLimits(max_bytes=runtime.settings.max_package_bytes)
        return await runtime.run_first(apply or runtime.swap, action, _builder(upload, limits), check)
    finally:
        upload.cleanup()


async def from_json_body(request: Request, runtime: Runtime) -> dict:
    """Swap in a new configuration sent as the whole JSON body (PUT /model/configuration)."""
    upload = Upload()
    try:
        path = upload.dir / "config.json"
        path.write_bytes(await request.body())
        upload.files["modelConfig"] = path
        limits = ExtractLimits(max_bytes=runtime.settings.max_package_bytes)
        return await runtime.run_first(runtime.swap, "configuration", _builder(upload, limits), None)
    finally:
        upload.cleanup()


def transform_check(data_part: str, data_kind: str, answers: dict):
    """A check_factory for from_form: the candidate must answer the request's data, and its answer is
    kept in `answers` for /transform* to return."""
    def factory(upload: Upload, form, request):
        data = upload.files[data_part].read_bytes()

        def check(candidate):
            method = operation_of(candidate, candidate.proto, form, request)
            try:
                msg = parse_data(candidate.rpc(method).input, data, data_kind)
                answers["method"], answers["msg"] = method, candidate.predict(method, msg)
            except BadRequest:
                raise
            except RunnerError as exc:
                raise ModelRejected(f"the new model failed on the data: {exc.message}", exc.details) from exc
            return {method: message_to_dict(answers["msg"])}

        return check

    return factory
