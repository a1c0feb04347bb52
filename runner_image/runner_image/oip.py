"""Open Inference Protocol (KServe v2) <-> the model's proto messages.

Request tensors are matched to input fields by name (each tensor one column), or, when there is
one tensor of shape [n, k] whose name is not a field, its k columns are the k fields in order
(what KServe's sklearn examples send). The method is `parameters.method`, else the proto's first.
"""

from __future__ import annotations

import json

from google.protobuf.descriptor import FieldDescriptor as FD

from runner_image.codec import is_repeated, message_from_dict, message_to_dict
from runner_image.errors import BadRequest
from runner_image.tables import input_shape

DATATYPES = {
    FD.TYPE_DOUBLE: "FP64", FD.TYPE_FLOAT: "FP32", FD.TYPE_INT64: "INT64", FD.TYPE_SINT64: "INT64",
    FD.TYPE_SFIXED64: "INT64", FD.TYPE_INT32: "INT32", FD.TYPE_SINT32: "INT32", FD.TYPE_SFIXED32: "INT32",
    FD.TYPE_UINT64: "UINT64", FD.TYPE_FIXED64: "UINT64", FD.TYPE_UINT32: "UINT32", FD.TYPE_FIXED32: "UINT32",
    FD.TYPE_BOOL: "BOOL", FD.TYPE_STRING: "BYTES", FD.TYPE_BYTES: "BYTES", FD.TYPE_ENUM: "INT32",
}


def tensor_specs(descriptor) -> list[dict]:
    rows = _is_rows(descriptor)
    return [{"name": f.name, "datatype": DATATYPES.get(f.type, "BYTES"),
             "shape": [-1] if rows or is_repeated(f) else [1]} for f in _columns(descriptor)]


def _is_rows(descriptor) -> bool:
    try:
        return input_shape(descriptor) == "rows"
    except Exception:  # not tabular: every field is its own tensor
        return False


def _columns(descriptor):
    if _is_rows(descriptor):
        return list(descriptor.fields[0].message_type.fields)
    return list(descriptor.fields)


def requested_method(body) -> str | None:
    """The method an inference request names in `parameters.method`, or None."""
    parameters = body.get("parameters") if isinstance(body, dict) else None
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise BadRequest("'parameters' must be a JSON object", {"field": "parameters"})
    method = parameters.get("method")
    if method is not None and not isinstance(method, str):
        raise BadRequest("'parameters.method' must be a method name (a string)", {"field": "parameters.method"})
    return method


def model_metadata(slot, method: str) -> dict:
    rpc = slot.rpc(method)
    return {"name": slot.name, "versions": [str(slot.generation)], "platform": f"acumos-{slot.manifest.flavour}",
            "inputs": tensor_specs(rpc.input.DESCRIPTOR), "outputs": tensor_specs(rpc.output.DESCRIPTOR),
            "parameters": {"method": method, "methods": list(slot.proto.methods)}}


def request_to_message(body: dict, input_cls):
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("an inference request needs a non-empty 'inputs' list", {"field": "inputs"})
    columns = _tensor_columns(inputs, input_cls.DESCRIPTOR)
    return message_from_dict(input_cls, _to_message_dict(columns, input_cls.DESCRIPTOR))


def _tensor_columns(inputs: list, descriptor) -> dict[str, list]:
    names = [f.name for f in _columns(descriptor)]
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("data"), list):
            raise BadRequest(f"inputs[{i}] must be an object with a 'data' list", {"field": f"inputs[{i}]"})
    if len(inputs) == 1 and inputs[0].get("name") not in names:
        return _split_matrix(inputs[0], names)
    unknown = [t.get("name") for t in inputs if t.get("name") not in names]
    if unknown:
        raise BadRequest(f"unknown input tensors {unknown}; this method takes: {', '.join(names)}",
                         {"allowed": names})
    return {t["name"]: _flatten(t["data"]) for t in inputs}


def _split_matrix(tensor: dict, names: list[str]) -> dict[str, list]:
    shape = tensor.get("shape") or []
    data = _flatten(tensor["data"])
    if len(shape) != 2 or shape[1] != len(names) or shape[0] * shape[1] != len(data):
        raise BadRequest(f"one unnamed input tensor must have shape [n, {len(names)}] (one column per field: "
                         f"{', '.join(names)}); got shape {shape} with {len(data)} values", {"field": "inputs[0]"})
    rows = [data[i:i + shape[1]] for i in range(0, len(data), shape[1])]
    return {name: [row[j] for row in rows] for j, name in enumerate(names)}


def _flatten(data: list) -> list:
    out = []
    for item in data:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _to_message_dict(columns: dict[str, list], descriptor) -> dict:
    if _is_rows(descriptor):
        n = max(len(v) for v in columns.values())
        rows = [{k: v[i] for k, v in columns.items() if i < len(v)} for i in range(n)]
        return {descriptor.fields[0].name: rows}
    fields = descriptor.fields_by_name
    return {k: (v if is_repeated(fields[k]) else _one(k, v)) for k, v in columns.items()}


def _one(name: str, values: list):
    if len(values) != 1:
        raise BadRequest(f"input '{name}' is a single value in this model's interface; got {len(values)} values",
                         {"field": name})
    return values[0]


def response_body(slot, method: str, response_msg, request_id) -> dict:
    values = message_to_dict(response_msg)
    outputs = []
    for field in response_msg.DESCRIPTOR.fields:
        data = values[field.name]
        data = data if isinstance(data, list) else [data]
        if field.type == FD.TYPE_MESSAGE:
            data = [json.dumps(v) for v in data]
        outputs.append({"name": field.name, "datatype": DATATYPES.get(field.type, "BYTES"),
                        "shape": [len(data)], "data": data})
    body = {"model_name": slot.name, "model_version": str(slot.generation), "outputs": outputs,
            "parameters": {"method": method}}
    if request_id:
        body["id"] = request_id
    return body
