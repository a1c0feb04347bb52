"""Raw tensor bytes of the Open Inference Protocol: the HTTP binary tensor data extension
(`binary_data_size` parameters after a JSON header of `Inference-Header-Content-Length` bytes) and gRPC's
`raw_input_contents` / `raw_output_contents` share one layout. Numbers are little-endian, packed, in
row-major order; BOOL is one byte each; BYTES is each element as a 4-byte little-endian length and then
its bytes. The stdlib's struct does it (no numpy in the runner's core)."""

from __future__ import annotations

import math
import struct

from runner_image.errors import BadRequest

FORMATS = {"BOOL": "?", "UINT8": "B", "UINT16": "H", "UINT32": "I", "UINT64": "Q", "INT8": "b", "INT16": "h",
           "INT32": "i", "INT64": "q", "FP16": "e", "FP32": "f", "FP64": "d"}
DATATYPES = (*FORMATS, "BYTES")
_LENGTH = struct.Struct("<I")


def element_count(shape, where: str) -> int:
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise BadRequest(f"{where}: 'shape' must be a list of whole numbers from 0", {"field": f"{where}.shape"})
    return math.prod(shape)


def decode(datatype: str, raw: bytes, shape, where: str) -> list:
    """The flat list of values `raw` holds for a tensor of `datatype` and `shape`."""
    count = element_count(shape, where)
    if datatype == "BYTES":
        return _decode_bytes(raw, count, where)
    fmt = FORMATS.get(datatype)
    if fmt is None:
        raise BadRequest(f"{where}: datatype {datatype!r} is not one of {', '.join(DATATYPES)}",
                         {"field": f"{where}.datatype", "allowed": list(DATATYPES)})
    expected = count * struct.calcsize(fmt)
    if len(raw) != expected:
        raise BadRequest(f"{where}: shape {shape} of {datatype} needs {expected} bytes, got {len(raw)}",
                         {"field": where})
    return list(struct.unpack(f"<{count}{fmt}", raw))


def _decode_bytes(raw: bytes, count: int, where: str) -> list[bytes]:
    values, offset = [], 0
    view = memoryview(raw)
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadRequest(f"{where}: a BYTES element's 4-byte length is cut off at byte {offset}",
                             {"field": where})
        (size,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise BadRequest(f"{where}: a BYTES element says {size} bytes but only {len(raw) - offset} remain",
                             {"field": where})
        values.append(bytes(view[offset:offset + size]))
        offset += size
    if len(values) != count:
        raise BadRequest(f"{where}: the shape holds {count} elements, the bytes {len(values)}", {"field": where})
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
