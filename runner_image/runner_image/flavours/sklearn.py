"""scikit-learn estimators saved with joblib or pickle."""

from __future__ import annotations

import pickle
import warnings

from runner_image.flavours.base import LoadedModel, callable_attr


class SklearnModel(LoadedModel):
    row_independent = True

    def __init__(self, estimator):
        self.estimator = estimator
        # Estimators fitted on a DataFrame warn (and may reorder) when given a bare array.
        self.wants_frame = hasattr(estimator, "feature_names_in_")

    def check_method(self, method, spec):
        callable_attr(self.estimator, spec.get("call", "predict"), "sklearn")

    def call(self, method, spec, table, params):
        fn = callable_attr(self.estimator, spec.get("call", "predict"), "sklearn")
        return fn(table.as_frame() if self.wants_frame else table.as_array())


def load(path, manifest):
    # A forest predicting in the shadow candidate's thread while another predicts on the event loop can warn
    # that `delayed` should be used with sklearn's Parallel: each call resets the process-wide warning filters
    # for a moment (warnings.catch_warnings is not thread-safe), and the other thread may capture them empty.
    # Harmless (the configuration it would propagate is the default one), so it is silenced; a few still get
    # through in the instant the filters are reset.
    warnings.filterwarnings("ignore", message=r".*should be used with .*Parallel", category=UserWarning)
    if manifest.serialization == "pickle":
        with open(path, "rb") as handle:
            return SklearnModel(pickle.load(handle))
    import joblib

    return SklearnModel(joblib.load(path))
