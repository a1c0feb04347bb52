"""MLflow model directories, loaded as pyfunc. The table is passed as a pandas DataFrame."""

from __future__ import annotations

from runner_image.flavours.base import LoadedModel


class MlflowModel(LoadedModel):
    def __init__(self, pyfunc_model):
        self.model = pyfunc_model

    def call(self, method, spec, table, params):
        return self.model.predict(table.as_frame(), params=params or None)


def load(path, manifest):
    import mlflow.pyfunc

    return MlflowModel(mlflow.pyfunc.load_model(str(path)))
