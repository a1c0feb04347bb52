"""Model bundles for the tests, made on the spot with the real `pack` code."""

from __future__ import annotations

import importlib.util
import io
import zipfile
from pathlib import Path

from runner_image.pack import pack_bundle

REPO = Path(__file__).resolve().parents[2]
IRIS_SAMPLE = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
IRIS_VIRGINICA = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}


def example_module():
    spec = importlib.util.spec_from_file_location("make_bundle", REPO / "examples/iris/make_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def iris_bundle(out: Path, repeated: bool = False) -> Path:
    return example_module().make_bundle(out, repeated=repeated)


def scale_function(k: float, tag: str):
    """A model whose every answer says which model gave it: y = x * k, tagged."""

    def scale(x: float):
        return {"tag": tag, "y": x * k}

    return scale


def scale_bundle(out: Path, k: float, tag: str, sample: bool = True) -> Path:
    return pack_bundle(model=scale_function(k, tag), flavour="python", name="Scaler", method="scale",
                       inputs="x:double", outputs="tag:string,y:double", out=out,
                       sample={"x": 2.0} if sample else None)


def text_bundle(out: Path, tag: str = "text") -> Path:
    """A different interface: method `measure`, string in, two fields out."""

    def measure(text: str):
        return {"length": len(text), "tag": tag}

    return pack_bundle(model=measure, flavour="python", name="TextMeasure", method="measure",
                       inputs="text:string", outputs="length:int64,tag:string", out=out, sample={"text": "hello"})


def failing_bundle(out: Path, fail_on_sample: bool = False) -> Path:
    """A model that raises at predict time (on x < 0, or always when fail_on_sample)."""

    def scale(x: float):
        if fail_on_sample or x < 0:
            raise ValueError("negative input is not supported by this model")
        return {"tag": "failing", "y": x}

    return pack_bundle(model=scale, flavour="python", name="Scaler", method="scale", inputs="x:double",
                       outputs="tag:string,y:double", out=out, sample={"x": 2.0}, check=not fail_on_sample)


def zip_bytes(entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            archive.writestr(info, target)
    return buffer.getvalue()
