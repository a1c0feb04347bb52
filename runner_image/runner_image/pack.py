"""Write a model bundle (metadata.json, model.proto, modelpackage.zip) from a model and a signature.

Names follow the Acumos Python client: method `classify` gets messages `ClassifyIn`/`ClassifyOut`,
`add_numbers` gets `AddNumbersIn`/`AddNumbersOut`; the service is `Model`.
"""

from __future__ import annotations

import json
import os
import platform
import re
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata as pkg_metadata
from pathlib import Path

from runner_image.package import FLAVOURS, MANIFEST_NAME, SERIALIZATIONS, ExtractLimits, Manifest, validate_config
from runner_image.state import StateDir

SCALAR_TYPES = ("double", "float", "int64", "int32", "uint64", "uint32", "bool", "string", "bytes")
SCHEMA = "acumos.schema.model:0.6.0"
_FLAVOUR_PACKAGES = {"sklearn": ["scikit-learn", "joblib"], "xgboost": ["xgboost"], "lightgbm": ["lightgbm"],
                     "onnx": ["onnxruntime"], "python": ["cloudpickle"], "mlflow": ["mlflow-skinny", "mlflow"]}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SignatureError(ValueError):
    pass


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    repeated: bool = False

    def proto_line(self, number: int) -> str:
        return f"  {'repeated ' if self.repeated else ''}{self.type} {self.name} = {number};"


def parse_signature(text: str, what: str = "input") -> list[Field]:
    """'a:double, b:repeated int64' (or 'repeated b:int64') -> fields."""
    fields = [_parse_field(part.strip(), what) for part in text.split(",") if part.strip()]
    if not fields:
        raise SignatureError(f"--{what} declares no fields; write it as name:type,name:type")
    names = [f.name for f in fields]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SignatureError(f"--{what} declares {', '.join(duplicates)} more than once")
    return fields


def _parse_field(part: str, what: str) -> Field:
    name, sep, kind = part.partition(":")
    if not sep:
        raise SignatureError(f"--{what}: {part!r} must be name:type (types: {', '.join(SCALAR_TYPES)})")
    name, kind = name.strip(), kind.strip()
    repeated = False
    for text in (name, kind):
        if text.startswith("repeated "):
            repeated = True
    name, kind = name.removeprefix("repeated ").strip(), kind.removeprefix("repeated ").strip()
    if not _IDENTIFIER.match(name):
        raise SignatureError(f"--{what}: {name!r} is not a valid field name (letters, digits, _)")
    if kind not in SCALAR_TYPES:
        raise SignatureError(f"--{what}: field {name} has type {kind!r}; allowed: {', '.join(SCALAR_TYPES)}")
    return Field(name, kind, repeated)


def message_names(method: str) -> tuple[str, str]:
    title = "".join(method.title().split("_"))
    return f"{title}In", f"{title}Out"


def render_proto(package: str, methods: dict[str, tuple[list[Field], list[Field]]]) -> str:
    lines = ['syntax = "proto3";', f"package {package};", "", "service Model {"]
    for method in methods:
        request, response = message_names(method)
        lines.append(f"  rpc {method} ({request}) returns ({response});")
    lines.append("}")
    for method, (inputs, outputs) in methods.items():
        for message, fields in zip(message_names(method), (inputs, outputs), strict=True):
            lines += ["", f"message {message} {{", *(f.proto_line(i) for i, f in enumerate(fields, 1)), "}"]
    return "\n".join(lines) + "\n"


def proto_package(name: str) -> str:
    slug = re.sub(r"[^a-z0-9_]", "_", name.lower()).strip("_") or "model"
    return slug if slug[0].isalpha() else f"m_{slug}"


def installed_requirements(flavour: str, extra: list[str]) -> list[dict]:
    found = []
    for dist in _FLAVOUR_PACKAGES[flavour]:
        try:
            found.append({"name": dist, "version": pkg_metadata.version(dist)})
        except pkg_metadata.PackageNotFoundError:
            continue
    for requirement in extra:
        name, _, version = requirement.partition("==")
        found.append({"name": name.strip(), "version": version.strip()})
    return found


def render_metadata(name: str, flavour: str, methods: dict, requirements: list[dict], *,
                    version: str | None, description: str, card: dict | None = None) -> dict:
    meta = {
        "schema": SCHEMA, "name": name,
        "runtime": {"name": "python", "version": platform.python_version(), "toolkit": flavour,
                    "dependencies": {"pip": {"indexes": [], "requirements": requirements},
                                     "conda": {"channels": [], "requirements": []}}},
        "methods": {m: _method_metadata(m, description) for m in methods},
    }
    if version:
        meta["modelVersion"] = version
    if description:  # the marketplace starts the model's page from it
        meta["description"] = description
    if card:  # the Acumos schema allows fields of one's own; the portal checks it at upload
        meta["modelCard"] = card
    return meta


def _method_metadata(method: str, description: str) -> dict:
    request, response = message_names(method)
    media = ["application/vnd.google.protobuf"]
    return {"input": {"name": request, "media_type": media, "metadata": {}, "description": ""},
            "output": {"name": response, "media_type": media, "metadata": {}, "description": ""},
            "description": description}


def write_package(out_zip: Path, model_path: Path, manifest: Manifest) -> None:
    with zipfile.ZipFile(out_zip, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST_NAME, json.dumps(manifest.to_dict(), indent=2))
        if model_path.is_dir():
            for path in sorted(model_path.rglob("*")):
                if path.is_file():
                    archive.write(path, f"{manifest.model}/{path.relative_to(model_path).as_posix()}")
        else:
            archive.write(model_path, manifest.model)


def pack_bundle(*, model, flavour: str, name: str, method: str, inputs: str | list[Field],
                outputs: str | list[Field], out: str | Path, sample: dict | None = None,
                call: str | None = None, postprocess: str | None = None, params: dict | None = None,
                requirements: list[str] | None = None, version: str | None = None,
                description: str = "", serialization: str | None = None, check: bool = True,
                card: dict | None = None) -> Path:
    """The Python API of `pack`. `model` is a path, or for flavour python the object to cloudpickle; `card`, the
    model card for metadata.json's `modelCard` (runner_image.card reads one from a file)."""
    if flavour not in FLAVOURS:
        raise SignatureError(f"flavour {flavour!r} is not supported; choose one of {', '.join(FLAVOURS)}")
    if not _IDENTIFIER.match(method):  # it becomes an rpc name; --no-check would otherwise write a broken proto
        raise SignatureError(f"--method {method!r} is not a valid method name (letters, digits, _)")
    inputs = parse_signature(inputs, "input") if isinstance(inputs, str) else inputs
    outputs = parse_signature(outputs, "output") if isinstance(outputs, str) else outputs
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="runner-pack-") as tmp:
        model_path = _model_path(model, flavour, Path(tmp))
        manifest = _manifest(flavour, model_path, method, sample, call=call, postprocess=postprocess, params=params,
                             requirements=requirements, serialization=serialization)
        write_package(out / "modelpackage.zip", model_path, manifest)
    methods = {method: (inputs, outputs)}
    (out / "model.proto").write_text(render_proto(proto_package(name), methods))
    reqs = installed_requirements(flavour, requirements or [])
    metadata = render_metadata(name, flavour, methods, reqs, version=version, description=description, card=card)
    (out / "metadata.json").write_text(json.dumps(metadata, indent=2))
    if check:
        _check_or_remove(out)
    return out


def _check_or_remove(out: Path) -> None:
    """A bundle that fails its own check is not left behind to be onboarded by mistake."""
    try:
        check_bundle(out)
    except BaseException:
        for name in ("metadata.json", "model.proto", "modelpackage.zip"):
            (out / name).unlink(missing_ok=True)
        raise


def _model_path(model, flavour: str, tmp: Path) -> Path:
    # Not only callables: the runner also serves a dict of functions or an object with method attributes.
    if flavour == "python" and not isinstance(model, (str, os.PathLike)):
        import cloudpickle  # optional: only the python flavour needs it (acumos-runner[python])

        path = tmp / "model.pkl"
        path.write_bytes(cloudpickle.dumps(model))
        return path
    path = Path(model)
    if not path.exists():
        raise SignatureError(f"--model {path} does not exist")
    if path.is_dir() != (flavour == "mlflow"):
        kind = "a directory (the MLflow model)" if flavour == "mlflow" else "a file"
        raise SignatureError(f"--model for flavour {flavour} must be {kind}")
    return path


def _manifest(flavour, model_path, method, sample, *, call, postprocess, params, requirements,
              serialization) -> Manifest:
    spec = {k: v for k, v in (("call", call), ("postprocess", postprocess)) if v}
    config = {"methods": {method: spec} if spec else {}, "params": params or {}}
    validate_config(config)
    model_name = "model" if model_path.is_dir() else f"model{''.join(model_path.suffixes) or '.bin'}"
    serialization = serialization or _guess_serialization(flavour, model_path)
    samples = {method: sample} if sample is not None else {}
    return Manifest(flavour, model_name, serialization, config, samples, tuple(requirements or ()))


def _guess_serialization(flavour: str, model_path: Path) -> str:
    if flavour == "sklearn" and model_path.suffix in (".pkl", ".pickle"):
        return "pickle"
    return SERIALIZATIONS[flavour][0]


def check_bundle(bundle: Path) -> dict:
    """Load the bundle as the runner would and answer its sample; raises RunnerError if it cannot."""
    # The model stack (protobuf, the flavours) loads only when a bundle is checked: `pack --no-check`,
    # `--help` and the other light commands, which import this module, do without it.
    from runner_image.runtime import seed
    from runner_image.slot import check_samples, load_slot

    with tempfile.TemporaryDirectory(prefix="runner-check-") as tmp:
        state = StateDir(Path(tmp))
        generation = seed(state, bundle, ExtractLimits())
        slot = load_slot(state.generation_dir(generation), generation)
        return check_samples(slot, slot.manifest.samples)
