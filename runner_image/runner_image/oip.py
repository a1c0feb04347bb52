"""Open Inference Protocol (KServe v2) tensors <-> the model's proto messages.

Inputs: request tensors are matched to input fields by name (each tensor one column), or, when there
is one tensor of shape [n, k] whose name is not a field, its k columns are the k fields in order (what
KServe's sklearn examples send). A tensor's values come from its JSON `data` (flat or nested) or, with
the binary extension, from raw bytes (runner_image.oip_binary). Its datatype must fit the field:

    double, float        FP16, FP32, FP64, and the integer types (widened)
    int*, uint*, ...     INT8..INT64, UINT8..UINT64 (the field's range is checked per value)
    bool                 BOOL
    string, bytes        BYTES (JSON strings are the text itself, not base64; raw bytes as sent)
    enum                 an integer type (the number) or BYTES (the name)
    message, map         BYTES, each element the message as JSON text

Outputs: one tensor per output field (per column of a one-repeated-message output, as the metadata
says), shape [1] for a single value and [n] for a repeated one; messages are BYTES of JSON text.
A request may name the outputs it wants and have any of them as raw bytes (`binary_data`).

The method is `parameters.method`, else the proto's first.
"""

from __future__ import annotations

import base64
import functools
import json
import math
from dataclasses import dataclass

from google.protobuf.descriptor import FieldDescriptor as FD

from runner_image import oip_binary
from runner_image.codec import is_map, is_repeated, message_from_dict, message_to_dict, type_name
from runner_image.errors import BadRequest
from runner_image.tables import input_shape

DATATYPES = {
    FD.TYPE_DOUBLE: "FP64", FD.TYPE_FLOAT: "FP32", FD.TYPE_INT64: "INT64", FD.TYPE_SINT64: "INT64",
    FD.TYPE_SFIXED64: "INT64", FD.TYPE_INT32: "INT32", FD.TYPE_SINT32: "INT32", FD.TYPE_SFIXED32: "INT32",
    FD.TYPE_UINT64: "UINT64", FD.TYPE_FIXED64: "UINT64", FD.TYPE_UINT32: "UINT32", FD.TYPE_FIXED32: "UINT32",
    FD.TYPE_BOOL: "BOOL", FD.TYPE_STRING: "BYTES", FD.TYPE_BYTES: "BYTES", FD.TYPE_ENUM: "INT32",
}
_FLOATS = ("FP16", "FP32", "FP64")
_INTEGERS = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
_FLOAT_FIELDS = {FD.TYPE_DOUBLE, FD.TYPE_FLOAT}
# The datatypes a field of each type takes; a field type not listed takes what DATATYPES names for it.
_FITS = {
    **dict.fromkeys(_FLOAT_FIELDS, (*_FLOATS, *_INTEGERS)),
    **dict.fromkeys(set(DATATYPES) - _FLOAT_FIELDS - {FD.TYPE_BOOL, FD.TYPE_STRING, FD.TYPE_BYTES, FD.TYPE_ENUM},
                    _INTEGERS),
    FD.TYPE_BOOL: ("BOOL",), FD.TYPE_STRING: ("BYTES",), FD.TYPE_BYTES: ("BYTES",),
    FD.TYPE_ENUM: (*_INTEGERS, "BYTES"), FD.TYPE_MESSAGE: ("BYTES",),
}
_NOT_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}  # the strings the codec reads (and NaN)


# ---------------------------------------------------------------- metadata

def tensor_specs(descriptor) -> list[dict]:
    rows = _is_rows(descriptor)
    return [{"name": f.name, "datatype": DATATYPES.get(f.type, "BYTES"),
             "shape": [-1] if rows or is_repeated(f) else [1]} for f in _columns(descriptor)]


@functools.lru_cache(maxsize=256)  # asked on every request and answer; a descriptor never changes
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
    parameters = _parameters(body)
    method = parameters.get("method")
    if method is not None and not isinstance(method, str):
        raise BadRequest("'parameters.method' must be a method name (a string)", {"field": "parameters.method"})
    return method


def _parameters(body) -> dict:
    parameters = body.get("parameters") if isinstance(body, dict) else None
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise BadRequest("'parameters' must be a JSON object", {"field": "parameters"})
    return parameters


def model_metadata(slot, method: str) -> dict:
    rpc = slot.rpc(method)
    return {"name": slot.name, "versions": [str(slot.generation)], "platform": f"acumos-{slot.manifest.flavour}",
            "inputs": tensor_specs(rpc.input.DESCRIPTOR), "outputs": tensor_specs(rpc.output.DESCRIPTOR),
            "parameters": {"method": method, "methods": list(slot.proto.methods)}}


# ---------------------------------------------------------------- request tensors -> message

@dataclass
class Tensor:
    """One input tensor as read from the request: its values flat, in row-major order."""

    where: str                # inputs[i], for error messages
    name: str | None
    datatype: str | None      # None: the request did not say (then any datatype the field reads goes)
    shape: list | None
    values: list

    def label(self) -> str:
        return f"{self.where} ({self.name!r})" if self.name is not None else self.where


def request_to_message(body: dict, input_cls, binary: dict | None = None):
    """The input message for an inference request; `binary` maps input index -> its raw bytes (the binary
    extension, oip_binary.binary_parts)."""
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("an inference request needs a non-empty 'inputs' list", {"field": "inputs"})
    binary = binary or {}
    return tensors_to_message([read_tensor(i, tensor, binary.get(i)) for i, tensor in enumerate(inputs)], input_cls)


def tensors_to_message(tensors: list[Tensor], input_cls):
    """The input message from tensors read_tensor read (by HTTP's JSON, or gRPC's contents)."""
    columns = _tensor_columns(tensors, input_cls.DESCRIPTOR)
    return message_from_dict(input_cls, _to_message_dict(columns, input_cls.DESCRIPTOR))


def read_tensor(i: int, tensor, raw=None) -> Tensor:
    """inputs[i] checked and its values read, from `raw` bytes when given, else from its JSON `data`."""
    where = f"inputs[{i}]"
    if not isinstance(tensor, dict):
        raise BadRequest(f"{where} must be an object with a 'data' list", {"field": where})
    name = tensor.get("name")
    if name is not None and not isinstance(name, str):
        raise BadRequest(f"{where}: 'name' must be a string", {"field": f"{where}.name"})
    datatype = _datatype(tensor, where)
    _refuse_shared_memory(tensor.get("parameters"), where)
    shape = tensor.get("shape")
    if shape is not None:
        oip_binary.element_count(shape, where)
    if raw is not None:
        return Tensor(where, name, datatype, shape, _raw_values(tensor, where, datatype, shape, raw))
    if oip_binary.binary_data_size(tensor, where) is not None:
        raise BadRequest(f"{where} sets parameters.binary_data_size, but the request has no "
                         f"{oip_binary.HEADER} header saying where the JSON ends", {"field": oip_binary.HEADER})
    if not isinstance(tensor.get("data"), list):
        raise BadRequest(f"{where} must be an object with a 'data' list", {"field": where})
    return Tensor(where, name, datatype, shape, _flatten(tensor["data"]))


def _datatype(tensor: dict, where: str) -> str | None:
    datatype = tensor.get("datatype")
    if datatype is None or datatype in oip_binary.DATATYPES:
        return datatype
    raise BadRequest(f"{where}: datatype {datatype!r} is not one this runner reads; it reads "
                     f"{', '.join(oip_binary.DATATYPES)}",
                     {"field": f"{where}.datatype", "allowed": list(oip_binary.DATATYPES)})


def _refuse_shared_memory(parameters, where: str) -> None:
    if isinstance(parameters, dict) and any(key.startswith("shared_memory") for key in parameters):
        raise BadRequest(f"{where}: the shared memory extension is not supported here; send the data in the "
                         "request (JSON 'data' or binary_data_size)", {"field": f"{where}.parameters"})


def _raw_values(tensor: dict, where: str, datatype: str | None, shape, raw) -> list:
    label = f"{where} ({tensor.get('name')!r})"
    if datatype is None or shape is None:
        raise BadRequest(f"{label}: a binary tensor needs 'datatype' and 'shape' to be read", {"field": where})
    values = oip_binary.decode(datatype, raw, shape, label, where)
    if datatype in _FLOATS:  # raw bytes may hold inf or NaN: the codec reads them as their JSON strings
        values = [v if math.isfinite(v) else _NOT_FINITE.get(v, "NaN") for v in values]
    return values


def _flatten(data: list) -> list:
    out = []
    for item in data:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _tensor_columns(tensors: list[Tensor], descriptor) -> dict[str, list]:
    fields = {f.name: f for f in _columns(descriptor)}
    names = list(fields)
    if len(tensors) == 1 and tensors[0].name not in fields:
        return _split_matrix(tensors[0], list(fields.values()))
    unknown = [t.name for t in tensors if t.name not in fields]
    if unknown:
        raise BadRequest(f"unknown input tensors {unknown}; this method takes: {', '.join(names)}",
                         {"allowed": names})
    columns = {}
    for tensor in tensors:
        if tensor.name in columns:
            raise BadRequest(f"{tensor.label()}: input {tensor.name!r} is given twice", {"field": tensor.where})
        _check_count(tensor)
        columns[tensor.name] = _fitted(tensor, fields[tensor.name], tensor.values)
    return columns


def _check_count(tensor: Tensor) -> None:
    if tensor.shape is not None and math.prod(tensor.shape) != len(tensor.values):
        raise BadRequest(f"{tensor.label()}: shape {tensor.shape} holds {math.prod(tensor.shape)} values, "
                         f"'data' has {len(tensor.values)}", {"field": f"{tensor.where}.shape"})


def _split_matrix(tensor: Tensor, fields: list) -> dict[str, list]:
    names = [f.name for f in fields]
    shape, data = tensor.shape or [], tensor.values
    if len(shape) != 2 or shape[1] != len(names) or shape[0] * shape[1] != len(data):
        raise BadRequest(f"one unnamed input tensor must have shape [n, {len(names)}] (one column per field: "
                         f"{', '.join(names)}); got shape {shape} with {len(data)} values", {"field": tensor.where})
    width = shape[1]
    return {f.name: _fitted(tensor, f, data[j::width]) for j, f in enumerate(fields)}


def _fitted(tensor: Tensor, field, values: list) -> list:
    """`values` as the codec reads them for `field`, once the tensor's datatype is known to fit it."""
    allowed = _FITS.get(field.type, ())
    if tensor.datatype is not None and tensor.datatype not in allowed:
        raise BadRequest(f"{tensor.label()}: datatype {tensor.datatype} does not fit field '{field.name}' "
                         f"({type_name(field)}); it takes {', '.join(allowed) or 'nothing the protocol sends'}",
                         {"field": field.name, "datatype": tensor.datatype, "allowed": list(allowed)})
    if field.type in (FD.TYPE_STRING, FD.TYPE_ENUM):  # an enum by name: its name as text
        return [_text(v, tensor, field) for v in values]
    if field.type == FD.TYPE_BYTES:
        return [v.encode() if isinstance(v, str) else v for v in values]
    if field.type == FD.TYPE_MESSAGE:
        return [_json_object(v, tensor, field) for v in values]
    return values


def _text(value, tensor: Tensor, field):
    if not isinstance(value, bytes):
        return value  # a str, or something the codec refuses with the field's name
    try:
        return value.decode()
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{tensor.label()}: field '{field.name}' takes text, and these bytes are not UTF-8: "
                         f"{exc}", {"field": field.name}) from exc


def _json_object(value, tensor: Tensor, field):
    if not isinstance(value, (str, bytes)):
        return value  # a JSON object given as such: the codec fills the message from it
    try:
        return json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{tensor.label()}: field '{field.name}' is a {type_name(field)} message; each element "
                         f"must be its JSON text: {exc}", {"field": field.name}) from exc


def _to_message_dict(columns: dict[str, list], descriptor) -> dict:
    if _is_rows(descriptor):
        n = max(len(v) for v in columns.values())
        rows = [{k: v[i] for k, v in columns.items() if i < len(v)} for i in range(n)]
        return {descriptor.fields[0].name: rows}
    fields = descriptor.fields_by_name
    return {k: (v if is_repeated(fields[k]) and not is_map(fields[k]) else _one(k, v)) for k, v in columns.items()}


def _one(name: str, values: list):
    if len(values) != 1:
        raise BadRequest(f"input '{name}' is a single value in this model's interface; got {len(values)} values",
                         {"field": name})
    return values[0]


# ---------------------------------------------------------------- response message -> tensors

@dataclass
class Output:
    name: str
    datatype: str
    shape: list[int]
    values: list     # flat; BYTES as str (text) or bytes
    base64: bool = False  # bytes that are not UTF-8 travel as base64 text in JSON


def output_tensors(msg) -> list[Output]:
    """The response message as tensors, named and ordered as the model metadata lists them."""
    descriptor = msg.DESCRIPTOR
    if _is_rows(descriptor):
        rows = getattr(msg, descriptor.fields[0].name)
        return [_output(f, [getattr(row, f.name) for row in rows], [len(rows)])
                for f in descriptor.fields[0].message_type.fields]
    plain = None
    outputs = []
    for field in descriptor.fields:
        value = getattr(msg, field.name)
        if field.type == FD.TYPE_MESSAGE:  # messages and maps: BYTES of their JSON text
            plain = plain if plain is not None else message_to_dict(msg)
            value = plain[field.name]
            values = [json.dumps(v) for v in value] if is_repeated(field) and not is_map(field) else [json.dumps(value)]
        else:
            values = list(value) if is_repeated(field) else [value]
        outputs.append(_output(field, values, [len(values)]))
    return outputs


def _output(field, values: list, shape: list[int]) -> Output:
    datatype = DATATYPES.get(field.type, "BYTES")
    if field.type == FD.TYPE_BYTES:
        return Output(field.name, datatype, shape, values, base64=not all(_is_utf8(v) for v in values))
    return Output(field.name, datatype, shape, values)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class Wanted:
    """Which outputs a request asks for (in its order), and which of them as raw bytes."""

    names: list[str] | None   # None: all of them
    binary: dict[str, bool]
    binary_default: bool


def wanted_outputs(body: dict) -> Wanted:
    parameters = _parameters(body)
    default = parameters.get("binary_data_output", False)
    if not isinstance(default, bool):
        raise BadRequest("'parameters.binary_data_output' must be true or false",
                         {"field": "parameters.binary_data_output"})
    requested = body.get("outputs")
    if requested is None or requested == []:
        return Wanted(None, {}, default)
    if not isinstance(requested, list):
        raise BadRequest("'outputs' must be a list of {\"name\": ...} objects", {"field": "outputs"})
    names, binary = [], {}
    for i, output in enumerate(requested):
        name, as_binary = _requested_output(i, output, default)
        if name in binary:
            raise BadRequest(f"outputs[{i}]: output {name!r} is asked for twice", {"field": f"outputs[{i}]"})
        names.append(name)
        binary[name] = as_binary
    return Wanted(names, binary, default)


def _requested_output(i: int, output, default: bool) -> tuple[str, bool]:
    where = f"outputs[{i}]"
    if not isinstance(output, dict) or not isinstance(output.get("name"), str):
        raise BadRequest(f"{where} must be an object with a 'name' string", {"field": where})
    parameters = output.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest(f"{where}: 'parameters' must be a JSON object", {"field": f"{where}.parameters"})
    _refuse_shared_memory(parameters, where)
    if parameters.get("classification"):
        raise BadRequest(f"{where}: the classification extension is not supported here; ask for the output "
                         "itself", {"field": f"{where}.parameters.classification"})
    as_binary = parameters.get("binary_data", default)
    if not isinstance(as_binary, bool):
        raise BadRequest(f"{where}: parameters.binary_data must be true or false",
                         {"field": f"{where}.parameters.binary_data"})
    return output["name"], as_binary


def choose_outputs(outputs: list[Output], wanted: Wanted) -> list[tuple[Output, bool]]:
    """(output, as raw bytes) for each output the request wants, in the order it asked."""
    if wanted.names is None:
        return [(output, wanted.binary_default) for output in outputs]
    by_name = {output.name: output for output in outputs}
    unknown = [name for name in wanted.names if name not in by_name]
    if unknown:
        raise BadRequest(f"unknown outputs {unknown}; this method answers: {', '.join(by_name)}",
                         {"field": "outputs", "allowed": list(by_name)})
    return [(by_name[name], wanted.binary[name]) for name in wanted.names]


def response_parts(slot, method: str, response_msg, request_id, wanted: Wanted | None = None) -> tuple[dict, list]:
    """The response's JSON header and the raw outputs that follow it in order (none: a JSON-only answer)."""
    chosen = choose_outputs(output_tensors(response_msg), wanted or Wanted(None, {}, False))
    tensors, raw = [], []
    for output, as_binary in chosen:
        tensor = {"name": output.name, "datatype": output.datatype, "shape": output.shape}
        if as_binary:
            data = oip_binary.encode(output.datatype, output.values)
            tensor["parameters"] = {"binary_data_size": len(data)}
            raw.append(data)
        else:
            tensor["data"] = _json_values(output)
            if output.base64:
                tensor["parameters"] = {"content_encoding": "base64"}
        tensors.append(tensor)
    body = {"model_name": slot.name, "model_version": str(slot.generation), "outputs": tensors,
            "parameters": {"method": method}}
    if request_id:
        body["id"] = request_id
    return body, raw


def response_body(slot, method: str, response_msg, request_id) -> dict:
    """Every output as JSON."""
    return response_parts(slot, method, response_msg, request_id)[0]


def _json_values(output: Output) -> list:
    values = output.values
    if output.datatype in _FLOATS:
        return [v if math.isfinite(v) else _NOT_FINITE.get(v, "NaN") for v in values]
    if output.datatype == "BYTES" and values and isinstance(values[0], bytes):
        if output.base64:
            return [base64.b64encode(v).decode("ascii") for v in values]
        return [v.decode() for v in values]
    return values

