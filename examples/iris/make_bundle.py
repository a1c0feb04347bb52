"""Train the example model (a 10-tree RandomForest on iris) and pack it into a bundle.

    python examples/iris/make_bundle.py <out dir>

The same bundle serves `make run`, the tests and the benchmarks. Made from the command line, it carries the model
card of MODEL_CARD.md beside this file (as `python -m runner_image pack --card MODEL_CARD.md` writes one).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from runner_image.card import read_card
from runner_image.pack import pack_bundle

CARD = Path(__file__).with_name("MODEL_CARD.md")

FEATURES = "sepal_length:double,sepal_width:double,petal_length:double,petal_width:double"
SAMPLE = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def train(n_estimators: int = 10, seed: int = 0) -> RandomForestClassifier:
    iris = load_iris()
    return RandomForestClassifier(n_estimators=n_estimators, random_state=seed).fit(iris.data, iris.target)


def make_bundle(out: Path, name: str = "IrisClassifier", repeated: bool = False, card: dict | None = None) -> Path:
    fields = FEATURES.replace(":", ":repeated ") if repeated else FEATURES
    with tempfile.TemporaryDirectory() as tmp:
        model_file = Path(tmp, "model.joblib")
        joblib.dump(train(), model_file)
        sample = {k: [v] for k, v in SAMPLE.items()} if repeated else SAMPLE
        output = "species:repeated int64" if repeated else "species:int64"
        return pack_bundle(model=model_file, flavour="sklearn", name=name, method="classify", inputs=fields,
                           outputs=output, out=out, sample=sample, version="1.0.0",
                           description="Iris species from sepal and petal sizes (RandomForest, 10 trees)", card=card)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "build/example-iris")
    print(f"wrote {make_bundle(target, card=read_card(CARD)[0])}")
