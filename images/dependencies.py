"""The extra Python packages a model asks for, installed outside the image.

metadata.json lists them (runtime.dependencies.pip.requirements, and runner.json may add more).
Their wheels come from a wheelhouse on this host: pip fetches any that are missing from the
configured index (unless the site is air-gapped, ACUMOS_WHEELHOUSE_ONLY), for the image's Python
and platform, not this host's. They are then installed into a directory that becomes one layer of
the image, shared by every model with the same requirements: it is built once and cached by a
hash of the requirements, so a new revision of a model adds only its own bundle layer."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Packages the runner base already carries: asking for them again would only shadow the runner's.
PROVIDED_BY_BASE = {"protobuf", "grpcio", "grpcio-tools", "starlette", "uvicorn", "prometheus-client",
                    "acumos-runner"}
_MISSING_PATTERNS = (re.compile(r"No matching distribution found for (\S+)"),
                     re.compile(r"Could not find a version that satisfies the requirement (\S+)"))
PIP_TIMEOUT = 600


class DependencyError(Exception):
    """The packages cannot be had: the message names them and says what to do."""


@dataclass(frozen=True)
class Platform:
    python: str  # "3.11"
    glibc: str  # "2.36"
    arch: str  # "x86_64"

    def pip_options(self) -> list[str]:
        """pip --platform takes exact tags: every manylinux tag that glibc can run, oldest last."""
        major, minor = (int(part) for part in self.glibc.split(".")[:2])
        tags = [f"manylinux_{major}_{m}_{self.arch}" for m in range(minor, 4, -1)]
        tags += [f"manylinux2014_{self.arch}", f"manylinux2010_{self.arch}", f"manylinux1_{self.arch}"]
        options = ["--only-binary=:all:", "--implementation", "cp", "--python-version", self.python]
        for tag in tags:
            options += ["--platform", tag]
        return options


def requirements_of(metadata: dict, manifest_requirements: list[str] | None = None) -> list[str]:
    """pip requirement strings from metadata.json (Acumos {name, version} or plain strings) and
    runner.json, without the packages the base provides, deduplicated and sorted."""
    runtime = metadata.get("runtime") or {}
    if isinstance(runtime, list):  # schema 0.4 allowed a list of runtimes
        runtime = runtime[0] if runtime else {}
    pip = ((runtime.get("dependencies") or {}).get("pip") or {}) if isinstance(runtime, dict) else {}
    found = [_requirement_string(r) for r in (pip.get("requirements") or [])]
    found += [str(r) for r in manifest_requirements or []]
    return sorted({r for r in found if r and _project_name(r) not in PROVIDED_BY_BASE})


def _requirement_string(requirement) -> str:
    if isinstance(requirement, dict):
        name, version = str(requirement.get("name", "")).strip(), str(requirement.get("version", "") or "").strip()
        if version and version[0].isdigit():
            return f"{name}=={version}"
        return f"{name}{version}"
    return str(requirement).strip()


def _project_name(requirement: str) -> str:
    name = re.split(r"[<>=!~;\[\s@]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def check_python(metadata: dict, platform: Platform) -> None:
    """A pickled model is tied to its Python's major.minor; say so before building, not at run time."""
    runtime = metadata.get("runtime") or {}
    version = str(runtime.get("version", "")) if isinstance(runtime, dict) else ""
    wanted = ".".join(version.split(".")[:2])
    if wanted and wanted != platform.python:
        raise DependencyError(f"the model was made with Python {version} (metadata.json runtime.version) but the "
                              f"runner base image has Python {platform.python}; use a base image with Python "
                              f"{wanted} (ACUMOS_IMAGE_BASE, ACUMOS_IMAGE_PYTHON)")


def cache_key(requirements: list[str], platform: Platform) -> str:
    text = json.dumps({"requirements": requirements, "platform": platform.__dict__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Dependencies:
    key: str
    tree: Path  # what goes to /app/deps
    requirements: tuple[str, ...]
    reused: bool


def prepare(requirements: list[str], platform: Platform, *, wheelhouse: Path, cache: Path,
            offline: bool, log) -> Dependencies | None:
    """The installed tree for these requirements, from the cache or made now; None if there are none."""
    if not requirements:
        log("no extra Python packages: the image is the base plus the model")
        return None
    key = cache_key(requirements, platform)
    tree = cache / f"deps-{key}" / "tree"
    if tree.is_dir():
        log(f"extra packages {', '.join(requirements)}: cached install {key}")
        return Dependencies(key, tree, tuple(requirements), reused=True)
    wheelhouse.mkdir(parents=True, exist_ok=True)
    if not offline:
        _download(requirements, platform, wheelhouse, log)
    _install(requirements, platform, wheelhouse, tree, offline=offline, log=log)
    return Dependencies(key, tree, tuple(requirements), reused=False)


def _download(requirements: list[str], platform: Platform, wheelhouse: Path, log) -> None:
    log(f"fetching wheels for {', '.join(requirements)} into the wheelhouse {wheelhouse}")
    _pip(["download", "--dest", str(wheelhouse), "--find-links", str(wheelhouse), *platform.pip_options(),
          *requirements], requirements, wheelhouse, offline=False, log=log)


def _install(requirements, platform, wheelhouse: Path, tree: Path, *, offline: bool, log) -> None:
    """Installed into a temporary directory, renamed into place: a concurrent build with the same
    requirements either finds the whole tree or makes its own."""
    tree.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".installing-", dir=tree.parent))
    try:
        _pip(["install", "--no-index", "--find-links", str(wheelhouse), "--target", str(staging), "--no-compile",
              "--no-warn-script-location", *platform.pip_options(), *requirements],
             requirements, wheelhouse, offline=offline, log=log)
        _strip(staging)
        with contextlib.suppress(OSError):  # another build got there first: theirs is the same
            staging.rename(tree)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"installed {', '.join(requirements)} ({_tree_size(tree) / 1e6:.1f} MB)")


def _strip(tree: Path) -> None:
    """Byte code is made at run time by the image's own Python (PYTHONDONTWRITEBYTECODE aside)."""
    for cache in tree.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def _tree_size(tree: Path) -> int:
    return sum(path.stat().st_size for path in tree.rglob("*") if path.is_file() and not path.is_symlink())


def _pip(arguments: list[str], requirements: list[str], wheelhouse: Path, *, offline: bool, log) -> None:
    environment = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    try:
        result = subprocess.run([sys.executable, "-m", "pip", *arguments], capture_output=True, text=True,
                                env=environment, timeout=PIP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DependencyError(f"pip did not finish in {PIP_TIMEOUT} s while getting {', '.join(requirements)}") from exc
    if result.returncode == 0:
        return
    log(result.stdout[-4000:] + result.stderr[-4000:])
    raise DependencyError(_failure_message(result.stderr, requirements, wheelhouse, offline))


def _failure_message(stderr: str, requirements: list[str], wheelhouse: Path, offline: bool) -> str:
    missing = sorted({match.group(1) for pattern in _MISSING_PATTERNS for match in pattern.finditer(stderr)})
    where = (f"the wheelhouse {wheelhouse} (this site is offline: ACUMOS_WHEELHOUSE_ONLY)" if offline
             else f"the package index or the wheelhouse {wheelhouse}")
    if missing:
        return (f"could not get these Python packages for the image: {', '.join(missing)} "
                f"(metadata.json runtime.dependencies.pip.requirements); they are not in {where} as wheels "
                f"for the image's Python and platform")
    last = "\n".join(stderr.strip().splitlines()[-5:])
    return f"could not install the model's Python packages ({', '.join(requirements)}): {last}"
