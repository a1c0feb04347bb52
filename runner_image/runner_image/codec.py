"""JSON <-> protobuf messages, walking the descriptor so that every error names its field.

We do not use json_format: its errors do not say which field was wrong in terms a caller can
act on, and it writes 64-bit integers as strings. Here int64 goes out as a JSON number and comes
in as a number or a numeric string; bytes travel as base64, as in the proto3 JSON mapping.
"""

from __future__ import annotations

import base64
import binascii
import json
import math

from google.protobuf.descriptor import FieldDescriptor as FD
from google.protobuf.message import DecodeError

from runner_image.errors import BadRequest

_INT_TYPES = {FD.TYPE_INT32, FD.TYPE_INT64, FD.TYPE_SINT32, FD.TYPE_SINT64, FD.TYPE_SFIXED32,
              FD.TYPE_SFIXED64, FD.TYPE_UINT32, FD.TYPE_UINT64, FD.TYPE_FIXED32, FD.TYPE_FIXED64}
_FLOAT_TYPES = {FD.TYPE_DOUBLE, FD.TYPE_FLOAT}
_TYPE_NAMES = {
    FD.TYPE_DOUBLE: "double", FD.TYPE_FLOAT: "float", FD.TYPE_INT64: "int64", FD.TYPE_UINT64: "uint64",
    FD.TYPE_INT32: "int32", FD.TYPE_UINT32: "uint32", FD.TYPE_BOOL: "bool", FD.TYPE_STRING: "string",
    FD.TYPE_BYTES: "bytes", FD.TYPE_ENUM: "enum", FD.TYPE_MESSAGE: "message", FD.TYPE_SINT32: "sint32",
    FD.TYPE_SINT64: "sint64", FD.TYPE_FIXED32: "fixed32", FD.TYPE_FIXED64: "fixed64",
    FD.TYPE_SFIXED32: "sfixed32", FD.TYPE_SFIXED64: "sfixed64",
}
# Checked here, because protobuf's own "Value out of range" names no field.
_INT_RANGES = {
    **dict.fromkeys((FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32), (-(2**31), 2**31 - 1)),
    **dict.fromkeys((FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64), (-(2**63), 2**63 - 1)),
    **dict.fromkeys((FD.TYPE_UINT32, FD.TYPE_FIXED32), (0, 2**32 - 1)),
    **dict.fromkeys((FD.TYPE_UINT64, FD.TYPE_FIXED64), (0, 2**64 - 1)),
}


def type_name(field) -> str:
    if field.type == FD.TYPE_MESSAGE:
        return field.message_type.name
    if field.type == FD.TYPE_ENUM:
        return field.enum_type.name
    return _TYPE_NAMES[field.type]


def is_repeated(field) -> bool:
    # protobuf 5+ deprecates `label`; `is_repeated` is the new spelling where it exists.
    flag = getattr(field, "is_repeated", None)
    return flag if isinstance(flag, bool) else field.label == FD.LABEL_REPEATED


def is_map(field) -> bool:
    return field.type == FD.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


# ---------------------------------------------------------------- JSON -> message

def message_from_json(cls, body: bytes):
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    return message_from_dict(cls, data)


def message_from_dict(cls, data, path: str = ""):
    if not isinstance(data, dict):
        where = f"field '{path}'" if path else "the request body"
        raise BadRequest(f"{where} must be a JSON object for message {cls.DESCRIPTOR.name}",
                         {"field": path or None})
    msg = cls()
    fill_message(msg, data, path)
    return msg


def fill_message(msg, data: dict, path: str = "") -> None:
    fields = msg.DESCRIPTOR.fields_by_name
    for key, value in data.items():
        field = fields.get(key) or _by_json_name(msg.DESCRIPTOR, key)
        where = f"{path}.{key}" if path else key
        if field is None:
            raise BadRequest(
                f"unknown field '{where}' for message {msg.DESCRIPTOR.name}; "
                f"allowed: {', '.join(fields) or '(none)'}", {"field": where})
        if value is None:
            continue
        _set_field(msg, field, value, where)


def _by_json_name(descriptor, key: str):
    for field in descriptor.fields:
        if field.json_name == key:
            return field
    return None


def _set_field(msg, field, value, where: str) -> None:
    if is_map(field):
        _set_map(getattr(msg, field.name), field, value, where)
    elif is_repeated(field):
        if not isinstance(value, list):
            raise BadRequest(f"field '{where}' is repeated {type_name(field)}: send a JSON array",
                             {"field": where})
        _extend_repeated(getattr(msg, field.name), field, value, where)
    elif field.type == FD.TYPE_MESSAGE:
        fill_message(getattr(msg, field.name), _require_object(value, field, where), where)
    else:
        setattr(msg, field.name, scalar_value(field, value, where))


def _extend_repeated(container, field, values: list, where: str) -> None:
    if field.type == FD.TYPE_MESSAGE:
        for i, item in enumerate(values):
            fill_message(container.add(), _require_object(item, field, f"{where}[{i}]"), f"{where}[{i}]")
    else:
        container.extend(scalar_value(field, v, f"{where}[{i}]") for i, v in enumerate(values))


def _set_map(container, field, value, where: str) -> None:
    if not isinstance(value, dict):
        raise BadRequest(f"field '{where}' is a map: send a JSON object", {"field": where})
    key_field = field.message_type.fields_by_name["key"]
    value_field = field.message_type.fields_by_name["value"]
    for raw_key, raw_value in value.items():
        key = scalar_value(key_field, raw_key, f"{where}.{raw_key}", keys=True)
        if value_field.type == FD.TYPE_MESSAGE:
            fill_message(container[key], _require_object(raw_value, value_field, f"{where}.{raw_key}"),
                         f"{where}.{raw_key}")
        else:
            container[key] = scalar_value(value_field, raw_value, f"{where}.{raw_key}")


def _require_object(value, field, where: str) -> dict:
    if not isinstance(value, dict):
        raise BadRequest(f"field '{where}' must be a JSON object ({type_name(field)})", {"field": where})
    return value


def scalar_value(field, value, where: str, keys: bool = False):
    """Convert one JSON (or CSV text) value to the Python value protobuf wants for `field`."""
    kind = field.type
    try:
        if kind in _FLOAT_TYPES:
            return _to_float(value)
        if kind in _INT_TYPES:
            return _in_range(_to_int(value), *_INT_RANGES[kind])
        if kind == FD.TYPE_BOOL:
            return _to_bool(value)
        if kind == FD.TYPE_STRING:
            return _to_str(value, keys)
        if kind == FD.TYPE_BYTES:
            return _to_bytes(value)
        if kind == FD.TYPE_ENUM:
            return _to_enum(field, value)
    except (TypeError, ValueError, OverflowError, binascii.Error) as exc:  # Overflow: float(10**400)
        raise BadRequest(f"field '{where}': {exc}", {"field": where, "expected": type_name(field)}) from exc
    raise BadRequest(f"field '{where}' has a type this runner cannot fill ({type_name(field)})", {"field": where})


def _to_float(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"expected a number, got {_json_kind(value)}")
    if isinstance(value, str):
        special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
        if value in special:
            return special[value]
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    number = float(value)
    if math.isinf(number):  # 1e999, or JSON's non-standard bare Infinity: a mistake, not a value
        raise ValueError(f"{value!r} is out of range for a number; send the string \"Infinity\" if you mean it")
    return number


def _to_int(value) -> int:
    if isinstance(value, bool):
        raise TypeError("expected an integer, got a boolean")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{value!r} is not an integer")
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an integer") from None
    if isinstance(value, int):
        return value
    raise TypeError(f"expected an integer, got {_json_kind(value)}")


def _in_range(value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ValueError(f"{value} is out of range [{low}, {high}]")
    return value


def _to_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise TypeError(f"expected true or false, got {value!r}")


def _to_str(value, keys: bool) -> str:
    if isinstance(value, str):
        return value
    if keys and isinstance(value, (int, float)):
        return str(value)
    raise TypeError(f"expected a string, got {_json_kind(value)}")


def _to_bytes(value) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str):
        raise TypeError(f"expected base64 text, got {_json_kind(value)}")
    # validate: without it, characters outside the alphabet are dropped and garbage decodes silently.
    return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_" if "-" in value or "_" in value else None,
                            validate=True)


def _to_enum(field, value) -> int:
    values = field.enum_type.values_by_name
    if isinstance(value, str) and value in values:
        return values[value].number
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():  # CSV cells are text: "1" is a number
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _in_range(value, -(2**31), 2**31 - 1)  # proto3 enums are open int32
    raise ValueError(f"{value!r} is not one of {', '.join(values)}")


def _json_kind(value) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


# ---------------------------------------------------------------- message -> JSON

def message_to_dict(msg, for_json: bool = True) -> dict:
    """Every field, defaults included, so callers see the whole answer shape.

    With for_json=False, bytes stay bytes: that is what Python-function models receive.
    """
    out = {}
    for field in msg.DESCRIPTOR.fields:
        value = getattr(msg, field.name)
        if is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {k: _plain(value_field, v, for_json) for k, v in value.items()}
        elif is_repeated(field):
            out[field.name] = [_plain(field, v, for_json) for v in value]
        elif field.type == FD.TYPE_MESSAGE and not msg.HasField(field.name):
            out[field.name] = None
        else:
            out[field.name] = _plain(field, value, for_json)
    return out


def _plain(field, value, for_json: bool = True):
    if field.type == FD.TYPE_MESSAGE:
        return message_to_dict(value, for_json)
    if field.type == FD.TYPE_BYTES and for_json:
        return base64.b64encode(value).decode("ascii")
    if field.type == FD.TYPE_ENUM:
        enum_value = field.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value else value
    if field.type in _FLOAT_TYPES and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def message_to_json(msg) -> bytes:
    return json.dumps(message_to_dict(msg), separators=(",", ":")).encode()


# ---------------------------------------------------------------- protobuf binary

def message_from_bytes(cls, body: bytes):
    msg = cls()
    try:
        msg.ParseFromString(body)
    except DecodeError as exc:
        raise BadRequest(f"request body is not a valid protobuf {cls.DESCRIPTOR.name} message: {exc}") from exc
    return msg
