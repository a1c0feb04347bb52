"""Checks on an uploaded bundle. Each raises Invalid with field-level errors a person can act on.

The same functions run when an upload is accepted (so the API can answer 400 at once) and as the
pipeline's validation steps (so the job page shows them). Nothing here loads or unpickles a model:
the package is only read as a zip; loading happens in the smoke test's runner process."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from django.conf import settings
from jsonschema import Draft7Validator, ValidationError, validators

from acumos_portal.api.refusals import Refused
from acumos_portal.text import hidden_character_error
from licensing import profiles
from marketplace import cards
from runner_image.errors import RunnerError
from runner_image.package import ExtractLimits, Manifest, check_archive
from runner_image.protos import CompiledProto, compile_proto

SCHEMAS = Path(__file__).parent / "schemas"
MAX_JSON_BYTES = 1 << 20


@dataclass
class Invalid(Refused):
    """A bundle part that fails its checks. `errors` are [{"field", "message"}]; the APIs answer them
    as `details` (400 "invalid_bundle")."""

    code = "invalid_bundle"

    part: str
    message: str
    errors: list[dict] = field(default_factory=list)

    def __post_init__(self):
        # Refused's attributes, set here rather than by Refused.__init__ so that `args` stay what the
        # dataclass was called with (an exception is rebuilt from them when it is pickled).
        self.field = None
        self.details = self.as_details()

    def __str__(self) -> str:
        return self.message

    def as_details(self) -> dict:
        return {"part": self.part, "errors": self.errors}


def _pattern(validator, pattern: str, instance, schema):
    """`pattern` as JSON Schema means it (ECMA 262): a final `$` ends the string. Python's `$` also
    matches before a final newline, which let "1.0.0\\n" through as a modelVersion."""
    if validator.is_type(instance, "string"):
        anchored = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern
        if not re.search(anchored, instance):
            yield ValidationError(f"{instance!r} does not match {pattern!r}")


_SchemaValidator = validators.extend(Draft7Validator, {"pattern": _pattern})


@cache
def _validator(name: str) -> Draft7Validator:
    return _SchemaValidator(json.loads((SCHEMAS / name).read_text()))


def _read_json(path: Path, part: str):
    if path.stat().st_size > MAX_JSON_BYTES:
        raise Invalid(part, f"{part} is larger than {MAX_JSON_BYTES} bytes")
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise Invalid(part, f"{part} is not valid JSON: {exc}", [{"field": "", "message": str(exc)}]) from exc


def _schema_errors(validator: Draft7Validator, document) -> list[dict]:
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    return [{"field": ".".join(str(p) for p in e.absolute_path) or "(root)", "message": e.message} for e in errors]


def _raise_schema_errors(part: str, what: str, errors: list[dict]) -> None:
    if errors:
        first = errors[0]
        raise Invalid(part, f"{what} does not match the schema: {first['field']}: {first['message']}"
                      + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""), errors)


# ---------------------------------------------------------------- metadata

def validate_metadata(path: Path) -> dict:
    metadata = _read_json(path, "metadata")
    _raise_schema_errors("metadata", "metadata.json", _schema_errors(_validator("model-metadata.json"), metadata))
    # The name is shown on pages and in file names: nothing that hides or reverses text (RTL override...)
    # and no control character (PostgreSQL cannot store NUL).
    hidden = hidden_character_error(metadata["name"])
    if hidden:
        raise Invalid("metadata", f"metadata.json: name: {hidden}", [{"field": "name", "message": hidden}])
    try:
        cards.clean(metadata.get("modelCard"))
    except cards.CardInvalid as exc:
        raise Invalid("metadata", f"metadata.json: {exc.message}", [{"field": exc.field, "message": exc.message}]) \
            from None
    return metadata


def message_name(spec) -> str | None:
    """metadata 0.4 writes "input": "Name"; 0.5+ writes "input": {"name": "Name", ...}."""
    if isinstance(spec, dict):
        return spec.get("name")
    return spec


def runtime_of(metadata: dict) -> dict:
    runtime = metadata.get("runtime") or {}
    return runtime[0] if isinstance(runtime, list) else runtime


# ---------------------------------------------------------------- proto

def validate_proto(path: Path, metadata: dict) -> CompiledProto:
    try:
        proto = compile_proto(path.read_bytes())
    except RunnerError as exc:
        raise Invalid("schema", exc.message, [{"field": "model.proto", "message": exc.message}]) from exc
    errors = [e for name, spec in metadata["methods"].items() for e in _method_errors(proto, name, spec)]
    if errors:
        raise Invalid("schema", f"model.proto does not match metadata.json: {errors[0]['message']}"
                      + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""), errors)
    return proto


def _method_errors(proto: CompiledProto, name: str, spec: dict) -> list[dict]:
    rpc = proto.method(name)
    where = f"methods.{name}"
    if rpc is None:
        return [{"field": where, "message": f"method {name!r} is not an rpc of service {proto.service_name} "
                                            f"(the proto has: {', '.join(proto.methods)})"}]
    errors = []
    for side, cls in (("input", rpc.input), ("output", rpc.output)):
        declared = message_name(spec.get(side))
        if declared and declared not in (cls.DESCRIPTOR.name, cls.DESCRIPTOR.full_name):
            errors.append({"field": f"{where}.{side}", "message": f"method {name!r} {side} is "
                           f"{cls.DESCRIPTOR.name} in the proto but {declared} in metadata.json"})
    return errors


# ---------------------------------------------------------------- package

def validate_package(path: Path, proto: CompiledProto | None = None) -> Manifest:
    limits = ExtractLimits(max_bytes=settings.ACUMOS_MAX_PACKAGE_BYTES)
    try:
        manifest = check_archive(path, limits)
    except RunnerError as exc:
        raise Invalid("model", exc.message, [{"field": exc.details.get("field", "modelpackage.zip"),
                                              "message": exc.message}]) from exc
    if proto is not None:
        _check_samples_name_methods(manifest, proto)
    return manifest


def _check_samples_name_methods(manifest: Manifest, proto: CompiledProto) -> None:
    unknown = [m for m in (*manifest.samples, *manifest.config.get("methods", {})) if m not in proto.methods]
    if unknown:
        message = (f"runner.json names methods the proto does not have: {', '.join(sorted(set(unknown)))} "
                   f"(the proto has: {', '.join(proto.methods)})")
        raise Invalid("model", message, [{"field": "runner.json", "message": message}])


# ---------------------------------------------------------------- licence

def validate_licence(path: Path) -> dict:
    """The schema, then what it cannot say (licensing.profiles.check: the SPDX expression, the text's
    size in bytes). Returns the profile with its `spdx` in canonical form."""
    return validate_licence_profile(_read_json(path, "license"))


def validate_licence_profile(licence) -> dict:
    """validate_licence for a profile already read (the licence editor's): the schema, then
    licensing.profiles.check. Raises Invalid with an error per property at fault."""
    _raise_schema_errors("license", "license.json", profiles.schema_errors(licence))
    try:
        return profiles.check(licence).profile
    except Refused as exc:
        # Refused.field is "license.json spdx"; the errors name the property, as the schema's do.
        prop = (exc.field or "").removeprefix("license.json").strip() or "(root)"
        raise Invalid("license", exc.message, [{"field": prop, "message": exc.message}]) from exc
