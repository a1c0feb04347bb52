"""What every flavour returns: an object that answers a method call."""

from __future__ import annotations

from runner_image.errors import ModelRejected


class LoadedModel:
    """A loaded model. Tabular models take a Table; function models take the message as kwargs."""

    tabular = True
    # Each output row depends on its input row alone (true of a fitted estimator's predict): several requests'
    # rows may then be answered by one call (runner_image.batching). Arbitrary python code may not be.
    row_independent = False

    def call(self, method: str, spec: dict, data, params: dict):
        """Answer one method call. `spec` is the method's configuration ({"call", "output", ...})."""
        raise NotImplementedError

    def check_method(self, method: str, spec: dict) -> None:
        """Raise ModelRejected when the model cannot serve `method` as configured."""


def callable_attr(obj, name: str, flavour: str):
    fn = getattr(obj, name, None)
    if not callable(fn):
        raise ModelRejected(f"the {flavour} model has no method {name!r} (set config.methods.<method>.call)")
    return fn
