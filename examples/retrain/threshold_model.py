"""The model of the retraining example: one number in, a class out (`label` is 1 on one side of a threshold, 0
on the other), with the threshold it used in every answer, so that whoever watches can tell the models apart.

    python examples/retrain/threshold_model.py <out dir> [--threshold 0]

writes the first bundle (threshold 0: `label` is 1 for x > 0). `fit` is the training the example's trainer
runs on labelled rows; `make_bundle` packs a fitted model as the Acumos client would."""

from __future__ import annotations

import argparse
from pathlib import Path

from runner_image.pack import pack_bundle

NAME = "ThresholdClassifier"  # the retrained revisions must keep it: the hook's token pushes this model only
METHOD = "classify"
INPUTS = "x:double"
OUTPUTS = "label:int64,threshold:double"


def classifier(threshold: float, above: int = 1):
    """The model: `above` where x > threshold, the other class elsewhere. A closure, so that cloudpickle packs
    it by value (the runner imports nothing of this example)."""

    def classify(x: float):
        return {"label": above if x > threshold else 1 - above, "threshold": threshold}

    return classify


def fit(rows: list[tuple[float, int]]) -> tuple[float, int]:
    """The threshold and the side of it labelled 1 that get the most of `rows` ((x, label) pairs) right: every
    midpoint between neighbouring values is tried, both ways round."""
    if not rows:
        raise ValueError("no labelled rows to train on")
    ordered = sorted(rows)
    ones_total = sum(label for _, label in ordered)
    best = (-1, 0.0, 1)
    ones_at_or_below = 0
    for i, (x, label) in enumerate(ordered):
        ones_at_or_below += label
        if i + 1 < len(ordered) and ordered[i + 1][0] == x:
            continue  # a threshold between equal values splits nothing
        zeros_at_or_below = i + 1 - ones_at_or_below
        right_if_above = zeros_at_or_below + (ones_total - ones_at_or_below)  # 1 above the threshold
        right_if_below = len(ordered) - right_if_above  # 1 at or below it
        following = ordered[i + 1][0] if i + 1 < len(ordered) else x + 1.0
        threshold = (x + following) / 2
        for right, above in ((right_if_above, 1), (right_if_below, 0)):
            if right > best[0]:
                best = (right, threshold, above)
    return round(best[1], 4), best[2]


def make_bundle(out: Path, threshold: float, above: int = 1, description: str = "") -> Path:
    return pack_bundle(model=classifier(threshold, above), flavour="python", name=NAME, method=METHOD,
                       inputs=INPUTS, outputs=OUTPUTS, out=out, sample={"x": threshold + 1.0},
                       description=description or f"label {above} where x > {threshold:g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("build/retrain-v1"))
    parser.add_argument("--threshold", type=float, default=0.0)
    args = parser.parse_args()
    print(f"wrote {make_bundle(args.out, args.threshold)}")


if __name__ == "__main__":
    main()
