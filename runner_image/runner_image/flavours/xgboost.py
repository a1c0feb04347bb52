"""XGBoost boosters in the library's own format (JSON or UBJSON), no pickle involved."""

from __future__ import annotations

from runner_image.flavours.base import LoadedModel


class XGBoostModel(LoadedModel):
    row_independent = True

    def __init__(self, booster):
        self.booster = booster

    def call(self, method, spec, table, params):
        import xgboost

        names = self.booster.feature_names
        matrix = xgboost.DMatrix(table.as_array(dtype="float64"), feature_names=names)
        return self.booster.predict(matrix)


def load(path, manifest):
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(str(path))
    return XGBoostModel(booster)
