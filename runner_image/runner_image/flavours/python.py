"""Plain Python functions saved with cloudpickle.

The pickled object is one callable (it serves every method), a dict of method name -> callable,
or an object whose attributes are named after the methods. Each call gets the input message's
fields as keyword arguments (lists for repeated fields, dicts for maps and sub-messages), plus
`config=<config.params>` when the function has a `config` parameter. It returns a dict of output
fields, or a single value when the output message has one field.
"""

from __future__ import annotations

import inspect

from runner_image.errors import ModelRejected
from runner_image.flavours.base import LoadedModel


class PythonFunctionModel(LoadedModel):
    tabular = False

    def __init__(self, obj):
        self.obj = obj

    def _function(self, method: str, spec: dict):
        name = spec.get("call", method)
        if isinstance(self.obj, dict):
            fn = self.obj.get(name)
        elif inspect.isfunction(self.obj) or inspect.isbuiltin(self.obj):
            fn = self.obj
        else:
            fn = getattr(self.obj, name, None)
            if fn is None and callable(self.obj):  # functools.partial, an instance with __call__
                fn = self.obj
        if not callable(fn):
            raise ModelRejected(f"the python model has no function for method {name!r}")
        return fn

    def check_method(self, method, spec):
        self._function(method, spec)

    def call(self, method, spec, kwargs, params):
        fn = self._function(method, spec)
        if _accepts_config(fn):
            return fn(**kwargs, config=params)
        return fn(**kwargs)


def _accepts_config(fn) -> bool:
    try:
        return "config" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def load(path, manifest):
    import cloudpickle

    with open(path, "rb") as handle:
        return PythonFunctionModel(cloudpickle.load(handle))
