"""modelpackage.zip: the serialized model plus `runner.json`, the manifest that says how to load it.

runner.json:
    {
      "manifest_version": 1,
      "flavour": "sklearn | xgboost | lightgbm | onnx | python | mlflow",
      "model": "model.joblib",           # a file, or a directory for mlflow, inside the zip
      "serialization": "joblib",         # sklearn: joblib|pickle; python: cloudpickle; others: native
      "config": {                        # the model configuration, replaceable at run time
        "methods": {"classify": {"call": "predict", "postprocess": "argmax", "output": "label"}},
        "params": {}                     # free-form, handed to python-function models
      },
      "samples": {"classify": {...}},    # per method: a JSON request the model must answer
      "requirements": ["scikit-learn==1.5.2"]
    }

Extraction refuses what could write outside the model directory or exhaust the disk: absolute
names, `..`, symlinks, too many members, and more uncompressed bytes than the limit. The
limit is enforced on bytes actually written, not only on the sizes the zip declares.
"""

from __future__ import annotations

import json
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from runner_image.errors import PackageError

MANIFEST_NAME = "runner.json"
MANIFEST_VERSION = 1
FLAVOURS = ("sklearn", "xgboost", "lightgbm", "onnx", "python", "mlflow")
SERIALIZATIONS = {
    "sklearn": ("joblib", "pickle"), "xgboost": ("native",), "lightgbm": ("native",),
    "onnx": ("native",), "python": ("cloudpickle",), "mlflow": ("native",),
}
POSTPROCESSORS = ("argmax",)
METHOD_KEYS = {"call", "postprocess", "output"}
MAX_MANIFEST_BYTES = 1 << 20
_CHUNK = 1 << 20
# What zipfile raises on a damaged, encrypted or exotic member (unsupported compression, bad CRC...).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
               NotImplementedError, RuntimeError)


@dataclass(frozen=True)
class ExtractLimits:
    max_bytes: int = 2 << 30
    max_files: int = 10_000
    max_ratio: int = 200  # uncompressed/compressed, checked per member and for the whole zip over 1 MiB


@dataclass(frozen=True)
class Manifest:
    flavour: str
    model: str
    serialization: str
    config: dict = field(default_factory=dict)
    samples: dict = field(default_factory=dict)
    requirements: tuple = ()

    def method_config(self, method: str) -> dict:
        return self.config.get("methods", {}).get(method, {})

    def with_config(self, config: dict) -> Manifest:
        validate_config(config)
        return Manifest(self.flavour, self.model, self.serialization, config, self.samples, self.requirements)

    def to_dict(self) -> dict:
        return {"manifest_version": MANIFEST_VERSION, "flavour": self.flavour, "model": self.model,
                "serialization": self.serialization, "config": self.config, "samples": self.samples,
                "requirements": list(self.requirements)}


def parse_manifest(data) -> Manifest:
    if not isinstance(data, dict):
        raise PackageError(f"{MANIFEST_NAME} must be a JSON object")
    flavour = _require_choice(data, "flavour", FLAVOURS)
    model = _require_relative_path(data, "model")
    serialization = data.get("serialization") or SERIALIZATIONS[flavour][0]
    if serialization not in SERIALIZATIONS[flavour]:
        raise _field_error("serialization", f"{serialization!r} is not allowed for flavour {flavour}",
                           SERIALIZATIONS[flavour])
    config = data.get("config") or {}
    validate_config(config)
    samples = data.get("samples") or {}
    if not isinstance(samples, dict) or not all(isinstance(v, dict) for v in samples.values()):
        raise _field_error("samples", "must map each method name to a JSON object request", None)
    requirements = data.get("requirements") or []
    if not isinstance(requirements, list) or not all(isinstance(r, str) for r in requirements):
        raise _field_error("requirements", "must be a list of pip requirement strings", None)
    return Manifest(flavour, model, serialization, config, samples, tuple(requirements))


def validate_config(config, source: str = MANIFEST_NAME, root: str = "config") -> None:
    """Check a model configuration; errors name `source` (runner.json, or the modelConfig part)."""

    def fail(where: str, problem: str, allowed=None) -> PackageError:
        return _field_error(".".join(p for p in (root, where) if p), problem, allowed, source)

    if not isinstance(config, dict):
        raise fail("", "must be a JSON object")
    unknown = set(config) - {"methods", "params"}
    if unknown:
        raise fail("", f"has unknown keys {sorted(unknown)}", ["methods", "params"])
    methods = config.get("methods", {})
    if not isinstance(methods, dict):
        raise fail("methods", "must map method names to objects")
    for name, spec in methods.items():
        _validate_method_config(f"methods.{name}", spec, fail)
    if not isinstance(config.get("params", {}), dict):
        raise fail("params", "must be a JSON object")


def _validate_method_config(where: str, spec, fail) -> None:
    if not isinstance(spec, dict):
        raise fail(where, "must be a JSON object", sorted(METHOD_KEYS))
    unknown = set(spec) - METHOD_KEYS
    if unknown:
        raise fail(where, f"has unknown keys {sorted(unknown)}", sorted(METHOD_KEYS))
    for key in ("call", "output"):
        if key in spec and not isinstance(spec[key], str):
            raise fail(f"{where}.{key}", "must be a string")
    if spec.get("postprocess") not in (None, *POSTPROCESSORS):
        raise fail(f"{where}.postprocess", f"{spec['postprocess']!r} is not supported", POSTPROCESSORS)


def _require_choice(data: dict, key: str, allowed) -> str:
    value = data.get(key)
    if value not in allowed:
        raise _field_error(key, f"{value!r} is not supported" if value else "is required", allowed)
    return value


def _require_relative_path(data: dict, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise _field_error(key, "is required: the model's file or directory inside the zip", None)
    if not _is_safe_member(value.rstrip("/")):
        raise _field_error(key, f"{value!r} must be a relative path inside the zip", None)
    return value.rstrip("/")


def _field_error(where: str, problem: str, allowed, source: str = MANIFEST_NAME) -> PackageError:
    details = {"field": f"{source}:{where}" if where else source}
    if allowed:
        details["allowed"] = list(allowed)
    suffix = f" (allowed: {', '.join(allowed)})" if allowed else ""
    subject = f"{source}: '{where}'" if where else source
    return PackageError(f"{subject} {problem}{suffix}", details)


# ---------------------------------------------------------------- zip safety

def read_manifest_from_zip(zip_path: Path) -> Manifest:
    """The manifest, checked, and checked to name a model the zip has (read before any extraction)."""
    with _open_zip(zip_path) as archive:
        try:
            info = archive.getinfo(MANIFEST_NAME)
        except KeyError:
            raise PackageError(f"modelpackage.zip has no {MANIFEST_NAME} at its top level") from None
        if info.file_size > MAX_MANIFEST_BYTES:
            raise PackageError(f"{MANIFEST_NAME} is {info.file_size} bytes; the limit is {MAX_MANIFEST_BYTES}",
                               {"entry": MANIFEST_NAME, "limit_bytes": MAX_MANIFEST_BYTES})
        try:
            raw = archive.read(info)
        except _ZIP_ERRORS as exc:
            raise PackageError(f"modelpackage.zip entry {MANIFEST_NAME!r} is corrupt: {exc}",
                               {"entry": MANIFEST_NAME}) from exc
        names = archive.namelist()
    try:
        manifest = parse_manifest(json.loads(raw))
    except ValueError as exc:
        raise PackageError(f"{MANIFEST_NAME} is not valid JSON: {exc}") from exc
    model = PurePosixPath(manifest.model)
    if not any(model == PurePosixPath(name) or model in PurePosixPath(name).parents for name in names):
        raise _field_error("model", f"names {manifest.model!r}, which is not in the zip", None)
    return manifest


def check_archive(zip_path: Path, limits: ExtractLimits = ExtractLimits()) -> Manifest:
    """Everything safe_extract checks before writing, without writing: for validators (the portal)."""
    manifest = read_manifest_from_zip(zip_path)
    with _open_zip(zip_path) as archive:
        members = _checked_members(archive, limits)
    names = {info.filename.rstrip("/") for info in members}
    if manifest.model not in names and not any(n.startswith(manifest.model + "/") for n in names):
        raise _field_error("model", f"names {manifest.model!r}, which is not in the zip", None)
    return manifest


def safe_extract(zip_path: Path, dest: Path, limits: ExtractLimits = ExtractLimits()) -> None:
    """Extract into `dest` (created), or raise PackageError and leave nothing behind."""
    dest.mkdir(parents=True, exist_ok=False)
    try:
        with _open_zip(zip_path) as archive:
            members = _checked_members(archive, limits)
            budget = [limits.max_bytes]
            for info in members:
                _extract_member(archive, info, dest, budget)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _open_zip(zip_path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(zip_path)
    except _ZIP_ERRORS as exc:
        raise PackageError(f"modelpackage.zip is not a readable zip archive: {exc}") from exc


def _checked_members(archive: zipfile.ZipFile, limits: ExtractLimits) -> list[zipfile.ZipInfo]:
    members = archive.infolist()
    if len(members) > limits.max_files:
        raise PackageError(f"modelpackage.zip has {len(members)} entries; the limit is {limits.max_files}")
    declared = sum(info.file_size for info in members)
    if declared > limits.max_bytes:
        raise PackageError(f"modelpackage.zip expands to {declared} bytes; the limit is {limits.max_bytes}",
                           {"limit_bytes": limits.max_bytes})
    for info in members:
        _check_member(info, limits)
    ratio = declared / max(sum(info.compress_size for info in members), 1)
    if declared > _CHUNK and ratio > limits.max_ratio:  # many small members add up to a bomb too
        raise PackageError(f"modelpackage.zip has a compression ratio of {ratio:.0f}:1 over all its entries "
                           f"(limit {limits.max_ratio}:1): refusing a likely zip bomb")
    return members


def _check_member(info: zipfile.ZipInfo, limits: ExtractLimits) -> None:
    if not _is_safe_member(info.filename.rstrip("/")):
        raise PackageError(f"modelpackage.zip entry {info.filename!r} would be written outside the model directory",
                           {"entry": info.filename})
    if stat.S_ISLNK(info.external_attr >> 16):
        raise PackageError(f"modelpackage.zip entry {info.filename!r} is a symbolic link; links are not allowed",
                           {"entry": info.filename})
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _CHUNK and ratio > limits.max_ratio:
        raise PackageError(f"modelpackage.zip entry {info.filename!r} has a compression ratio of {ratio:.0f}:1 "
                           f"(limit {limits.max_ratio}:1): refusing a likely zip bomb", {"entry": info.filename})


def _is_safe_member(name: str) -> bool:
    if not name or "\\" in name or "\x00" in name or name.startswith("/") or ":" in name.split("/", maxsplit=1)[0]:
        return False
    return ".." not in PurePosixPath(name).parts


def _extract_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: list[int]) -> None:
    target = dest / info.filename
    try:
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise PackageError(f"modelpackage.zip entry {info.filename!r} clashes with another entry "
                           "(a file and a directory of the same name)", {"entry": info.filename}) from exc
    try:
        with archive.open(info) as src, open(target, "wb") as out:
            while chunk := src.read(_CHUNK):
                budget[0] -= len(chunk)
                if budget[0] < 0:
                    raise PackageError("modelpackage.zip expands past the size limit (declared sizes were false)")
                out.write(chunk)
    except _ZIP_ERRORS as exc:
        raise PackageError(f"modelpackage.zip entry {info.filename!r} is corrupt: {exc}",
                           {"entry": info.filename}) from exc
