"""The model's extra packages: which are asked for, which wheels fit the image, and what a user
is told when they cannot be had. Offline: the wheelhouse is made here, by hand."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from images import dependencies
from images.dependencies import DependencyError, Platform

PLATFORM = Platform("3.11", "2.36", "x86_64")


def metadata_with(*requirements, version="3.11.7") -> dict:
    return {"runtime": {"name": "python", "version": version,
                        "dependencies": {"pip": {"requirements": list(requirements)}}}}


def test_requirements_come_from_metadata_and_runner_json_without_what_the_base_has():
    metadata = metadata_with({"name": "scikit-learn", "version": "1.9.1"}, {"name": "pandas", "version": ">=2"},
                             {"name": "joblib"}, "numpy==2.1.0", {"name": "protobuf", "version": "5.0"})
    found = dependencies.requirements_of(metadata, ["lightgbm==4.5.0", "numpy==2.1.0", "Prometheus_Client"])
    assert found == ["joblib", "lightgbm==4.5.0", "numpy==2.1.0", "pandas>=2", "scikit-learn==1.9.1"]


def test_a_schema_0_4_runtime_list_and_no_runtime_are_read():
    assert dependencies.requirements_of({"runtime": [metadata_with("xgboost==2.1.0")["runtime"]]}) == ["xgboost==2.1.0"]
    assert dependencies.requirements_of({}) == []


def test_wheels_are_chosen_for_the_image_not_for_this_host():
    options = PLATFORM.pip_options()
    platforms = [options[i + 1] for i, option in enumerate(options) if option == "--platform"]
    assert platforms[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in platforms
    assert "manylinux2014_x86_64" in platforms and "manylinux_2_37_x86_64" not in platforms
    assert options[options.index("--python-version") + 1] == "3.11" and "--only-binary=:all:" in options


def test_a_model_made_with_another_python_is_refused_before_building():
    dependencies.check_python(metadata_with(version="3.11.2"), PLATFORM)
    dependencies.check_python({}, PLATFORM)
    with pytest.raises(DependencyError, match=r"made with Python 3\.12\.1 .* base image has Python 3\.11"):
        dependencies.check_python(metadata_with(version="3.12.1"), PLATFORM)


def make_wheel(wheelhouse: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel, written by hand so the test needs no index."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n",
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = [f"{path},sha256={_b64(hashlib.sha256(text.encode()).digest())},{len(text)}"
              for path, text in files.items()]
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = wheelhouse / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_packages_are_installed_from_the_wheelhouse_once_then_reused(tmp_path):
    wheelhouse, cache, lines = tmp_path / "wheels", tmp_path / "cache", []
    wheelhouse.mkdir()
    make_wheel(wheelhouse, "acumos_test_extra", "1.2.3")
    first = dependencies.prepare(["acumos_test_extra==1.2.3"], PLATFORM, wheelhouse=wheelhouse, cache=cache,
                                 offline=True, log=lines.append)
    assert not first.reused
    assert (first.tree / "acumos_test_extra" / "__init__.py").read_text() == "VERSION = '1.2.3'\n"
    again = dependencies.prepare(["acumos_test_extra==1.2.3"], PLATFORM, wheelhouse=wheelhouse, cache=cache,
                                 offline=True, log=lines.append)
    assert again.reused and again.tree == first.tree and again.key == first.key
    assert not [p for p in first.tree.parent.iterdir() if p.name.startswith(".installing-")]


def test_nothing_to_install_means_no_layer(tmp_path):
    assert dependencies.prepare([], PLATFORM, wheelhouse=tmp_path, cache=tmp_path, offline=True, log=print) is None


def test_packages_that_cannot_be_had_are_named(tmp_path):
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    make_wheel(wheelhouse, "acumos_test_extra", "1.2.3")
    with pytest.raises(DependencyError) as failure:
        dependencies.prepare(["acumos_test_extra==1.2.3", "acumos-absent==2.0"], PLATFORM, wheelhouse=wheelhouse,
                             cache=tmp_path / "cache", offline=True, log=lambda line: None)
    message = str(failure.value)
    assert "could not get these Python packages for the image: acumos-absent==2.0" in message
    assert "acumos_test_extra" not in message.split(":")[1]
    assert "ACUMOS_WHEELHOUSE_ONLY" in message
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("tree"))
