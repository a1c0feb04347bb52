"""Raw tensor bytes of the Open Inference Protocol: the HTTP binary tensor data extension
(`binary_data_size` parameters after a JSON header of `Inference-Header-Content-Length` bytes) and gRPC's
`raw_input_contents` / `raw_output_contents` share one layout. Numbers are little-endian, packed, in
row-major order; BOOL is one byte each; BYTES is each element as a 4-byte little-endian length and then
its bytes. The stdlib's struct does it (no numpy in the runner's core).

Over HTTP the body is the JSON header, then the raw inputs, each as many bytes as its
`parameters.binary_data_size` says, in the order of `inputs`: json_header_length and binary_parts
check that framing (a lying length, sizes that overrun the body or leave bytes unclaimed) before
anything is decoded, and name the input or header that is wrong."""

from __future__ import annotations

import math
import struct

from runner_image.errors import BadRequest

FORMATS = {"BOOL": "?", "UINT8": "B", "UINT16": "H", "UINT32": "I", "UINT64": "Q", "INT8": "b", "INT16": "h",
           "INT32": "i", "INT64": "q", "FP16": "e", "FP32": "f", "FP64": "d"}
DATATYPES = (*FORMATS, "BYTES")
_LENGTH = struct.Struct("<I")
HEADER = "Inference-Header-Content-Length"
_MAX_LENGTH_DIGITS = 19  # any body the runner accepts has a length far below 10**19


def element_count(shape, where: str) -> int:
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise BadRequest(f"{where}: 'shape' must be a list of whole numbers from 0", {"field": f"{where}.shape"})
    return math.prod(shape)


def decode(datatype: str, raw: bytes, shape, where: str, field: str | None = None) -> list:
    """The flat list of values `raw` holds for a tensor of `datatype` and `shape`. Errors say `where`
    (e.g. "inputs[0] ('x')"), and name `field` (default: `where`) in their details."""
    field = field or where
    count = element_count(shape, field)
    if datatype == "BYTES":
        return _decode_bytes(raw, count, where, field)
    fmt = FORMATS.get(datatype)
    if fmt is None:
        raise BadRequest(f"{where}: datatype {datatype!r} is not one of {', '.join(DATATYPES)}",
                         {"field": f"{field}.datatype", "allowed": list(DATATYPES)})
    expected = count * struct.calcsize(fmt)
    if len(raw) != expected:
        raise BadRequest(f"{where}: shape {shape} of {datatype} needs {expected} bytes, got {len(raw)}",
                         {"field": field})
    return list(struct.unpack(f"<{count}{fmt}", raw))


def _decode_bytes(raw: bytes, count: int, where: str, field: str) -> list[bytes]:
    values, offset = [], 0
    view = memoryview(raw)
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadRequest(f"{where}: a BYTES element's 4-byte length is cut off at byte {offset}",
                             {"field": field})
        (size,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise BadRequest(f"{where}: a BYTES element says {size} bytes but only {len(raw) - offset} remain",
                             {"field": field})
        values.append(bytes(view[offset:offset + size]))
        offset += size
    if len(values) != count:
        raise BadRequest(f"{where}: the shape holds {count} elements, the bytes {len(values)}", {"field": field})
    return values


def encode(datatype: str, values: list) -> bytes:
    """`values` (flat) as raw tensor bytes; str elements of a BYTES tensor are sent as UTF-8."""
    if datatype == "BYTES":
        parts = []
        for value in values:
            data = value.encode() if isinstance(value, str) else bytes(value)
            parts += (_LENGTH.pack(len(data)), data)
        return b"".join(parts)
    return struct.pack(f"<{len(values)}{FORMATS[datatype]}", *values)


def json_header_length(value: str | None, body_size: int) -> int | None:
    """The length of the JSON header an `Inference-Header-Content-Length` value gives, or None when the
    header is absent (the whole body is JSON)."""
    if value is None:
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_LENGTH_DIGITS:
        raise BadRequest(f"{HEADER} must be a whole number of bytes from 0, got {value!r}", {"field": HEADER})
    length = int(text)
    if length > body_size:
        raise BadRequest(f"{HEADER} says the JSON header is {length} bytes, but the body has only {body_size}",
                         {"field": HEADER, "body_bytes": body_size})
    return length


def binary_parts(inputs: list, raw: memoryview) -> dict[int, memoryview]:
    """inputs[i] -> its bytes in `raw` (what follows the JSON header), for every input whose
    `parameters.binary_data_size` is set; the sizes must account for `raw` exactly."""
    parts, offset = {}, 0
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise BadRequest(f"inputs[{i}] must be an object", {"field": f"inputs[{i}]"})
        size = binary_data_size(tensor, f"inputs[{i}]")
        if size is None:
            continue
        where = _named(tensor, f"inputs[{i}]")
        if "data" in tensor:
            raise BadRequest(f"{where} has both 'data' and parameters.binary_data_size; send one of them",
                             {"field": f"inputs[{i}]"})
        if offset + size > len(raw):
            raise BadRequest(f"{where}: binary_data_size {size} runs past the end of the body: {len(raw) - offset} "
                             f"bytes are left after the JSON header and the inputs before it",
                             {"field": f"inputs[{i}].parameters.binary_data_size"})
        parts[i] = raw[offset:offset + size]
        offset += size
    if offset != len(raw):
        raise BadRequest(f"{len(raw) - offset} bytes after the JSON header belong to no input: the inputs' "
                         f"binary_data_size add up to {offset}, the bytes after the header are {len(raw)}",
                         {"field": HEADER})
    return parts


def binary_data_size(tensor: dict, where: str) -> int | None:
    """`parameters.binary_data_size` of a tensor, checked, or None when it is not given."""
    parameters = tensor.get("parameters")
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise BadRequest(f"{where}: 'parameters' must be a JSON object", {"field": f"{where}.parameters"})
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadRequest(f"{_named(tensor, where)}: parameters.binary_data_size must be a whole number of bytes "
                         f"from 0, got {size!r}", {"field": f"{where}.parameters.binary_data_size"})
    return size


def _named(tensor: dict, where: str) -> str:
    name = tensor.get("name")
    return f"{where} ({name!r})" if isinstance(name, str) else where
