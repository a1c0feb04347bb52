"""One loader per flavour; each turns an extracted model package into a LoadedModel."""

from __future__ import annotations

import importlib
from pathlib import Path

from runner_image.errors import ModelRejected
from runner_image.flavours.base import LoadedModel
from runner_image.package import Manifest

# Loaded on demand, by name: each flavour module imports its model library (an optional extra) only
# when a model of that flavour loads, so a runner without it still serves the others.
_MODULES = {
    "sklearn": "runner_image.flavours.sklearn",
    "xgboost": "runner_image.flavours.xgboost",
    "lightgbm": "runner_image.flavours.lightgbm",
    "onnx": "runner_image.flavours.onnx",
    "python": "runner_image.flavours.python",
    "mlflow": "runner_image.flavours.mlflow",
}
# What to pip install when a flavour's library is missing from this runner.
EXTRAS = {"sklearn": "scikit-learn", "xgboost": "xgboost", "lightgbm": "lightgbm",
          "onnx": "onnxruntime", "python": "cloudpickle", "mlflow": "mlflow-skinny"}


def load_model(model_dir: Path, manifest: Manifest) -> LoadedModel:
    """Load the package's model; any failure is the candidate's fault, so it is a ModelRejected."""
    path = model_dir / manifest.model
    if not path.exists():
        raise ModelRejected(f"the manifest names model {manifest.model!r} but the package has no such entry")
    try:
        module = importlib.import_module(_MODULES[manifest.flavour])
    except ImportError as exc:
        raise ModelRejected(
            f"this runner cannot load {manifest.flavour} models: {exc.name or exc} is not installed "
            f"(install acumos-runner[{manifest.flavour}] or pip install {EXTRAS[manifest.flavour]})") from exc
    try:
        return module.load(path, manifest)
    except ModelRejected:
        raise
    except Exception as exc:  # a model file can fail in any library-specific way
        raise ModelRejected(f"the {manifest.flavour} model failed to load: {type(exc).__name__}: {exc}") from exc
