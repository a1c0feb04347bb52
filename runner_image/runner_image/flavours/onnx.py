"""ONNX graphs run with onnxruntime.

A graph with one input gets the whole table as a 2-D tensor (columns in field order); a graph
with several inputs gets each field, by name, as an (n, 1) tensor.
"""

from __future__ import annotations

from runner_image.errors import ModelRejected
from runner_image.flavours.base import LoadedModel

_NUMPY_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
                "tensor(int32)": "int32", "tensor(bool)": "bool", "tensor(string)": "object"}


class OnnxModel(LoadedModel):
    row_independent = True

    def __init__(self, session):
        self.session = session
        self.inputs = session.get_inputs()
        self.output_names = [o.name for o in session.get_outputs()]

    def check_method(self, method, spec):
        wanted = spec.get("output")
        if wanted and wanted not in self.output_names:
            raise ModelRejected(f"the ONNX graph has no output {wanted!r} (has: {', '.join(self.output_names)})")

    def call(self, method, spec, table, params):
        feeds = self._feeds(table)
        name = spec.get("output") or self.output_names[0]
        (result,) = self.session.run([name], feeds)
        return result

    def _feeds(self, table):
        if len(self.inputs) == 1:
            only = self.inputs[0]
            return {only.name: table.as_array(dtype=_NUMPY_TYPES.get(only.type, "float32"))}
        missing = [i.name for i in self.inputs if i.name not in table.columns]
        if missing:
            raise ModelRejected(f"the ONNX graph wants inputs {missing} that the input message does not have")
        return {i.name: _column(table, i) for i in self.inputs}


def _column(table, graph_input):
    import numpy as np

    values = table.data[table.columns.index(graph_input.name)]
    return np.asarray(values, dtype=_NUMPY_TYPES.get(graph_input.type, "float32")).reshape(-1, 1)


def load(path, manifest):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # Small models answer faster without a thread pool; workers give the parallelism.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return OnnxModel(onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]))
