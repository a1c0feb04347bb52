"""LightGBM boosters in the library's text format."""

from __future__ import annotations

from runner_image.flavours.base import LoadedModel


class LightGBMModel(LoadedModel):
    row_independent = True

    def __init__(self, booster):
        self.booster = booster

    def call(self, method, spec, table, params):
        return self.booster.predict(table.as_array(dtype="float64"))


def load(path, manifest):
    import lightgbm

    return LightGBMModel(lightgbm.Booster(model_file=str(path)))
