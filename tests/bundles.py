"""The runner's test bundle builders (runner_image/tests/builders.py), loaded by path: one
source for the models both test suites use."""

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parent.parent / "runner_image" / "tests" / "builders.py"
_spec = importlib.util.spec_from_file_location("runner_test_builders", _PATH)
builders = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(builders)


def parts_of(bundle: Path) -> dict[str, Path]:
    """Bundle files by their Acumos part names."""
    return {"model": bundle / "modelpackage.zip", "metadata": bundle / "metadata.json",
            "schema": bundle / "model.proto"}
