"""JSON <-> protobuf (codec.py): every scalar type, maps, nested and repeated fields, and errors that name the field."""

from __future__ import annotations

import base64
import json
import math

import pytest

from runner_image.codec import (
    message_from_bytes,
    message_from_dict,
    message_from_json,
    message_to_dict,
    message_to_json,
)
from runner_image.errors import BadRequest
from runner_image.protos import compile_proto

PROTO = """
syntax = "proto3";
package codec_test;

service Model { rpc echo (All) returns (All); }

enum Color { RED = 0; GREEN = 1; BLUE = 2; }

message Sub {
  int32 a = 1;
  string s = 2;
}

message All {
  double d = 1;
  float f = 2;
  int32 i32 = 3;
  int64 i64 = 4;
  uint32 u32 = 5;
  uint64 u64 = 6;
  sint32 s32 = 7;
  sint64 s64 = 8;
  fixed32 fx32 = 9;
  fixed64 fx64 = 10;
  sfixed32 sfx32 = 11;
  sfixed64 sfx64 = 12;
  bool flag = 13;
  string text = 14;
  bytes blob = 15;
  Color color = 16;
  Sub sub = 17;
  repeated Sub subs = 18;
  repeated int64 ints = 19;
  repeated string words = 20;
  map<string, int64> counts = 21;
  map<int32, Sub> by_id = 22;
  repeated Color colors = 23;
  double snake_case_value = 24;
}
"""

ALL_SCALARS = {
    "d": 2.5, "f": 0.25, "i32": -7, "i64": -(2**40), "u32": 4_000_000_000, "u64": 2**64 - 1,
    "s32": -3, "s64": -(2**62), "fx32": 12, "fx64": 2**50, "sfx32": -12, "sfx64": -(2**50),
    "flag": True, "text": "héllo", "blob": base64.b64encode(b"\x00\xffbytes").decode(), "color": "GREEN",
}


@pytest.fixture(scope="module")
def msg_cls():
    return compile_proto(PROTO).methods["echo"].input


def bad(cls, data) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        message_from_dict(cls, data)
    return info.value


# ---------------------------------------------------------------- JSON -> message

def test_it_fills_every_scalar_type(msg_cls):
    msg = message_from_dict(msg_cls, ALL_SCALARS)
    for name in ("d", "f", "i32", "i64", "u32", "u64", "s32", "s64", "fx32", "fx64", "sfx32", "sfx64", "text"):
        assert getattr(msg, name) == ALL_SCALARS[name], name
    assert msg.flag is True
    assert msg.blob == b"\x00\xffbytes"
    assert msg.color == 1


def test_it_writes_every_scalar_type_back_as_sent(msg_cls):
    out = message_to_dict(message_from_dict(msg_cls, ALL_SCALARS))
    assert {k: out[k] for k in ALL_SCALARS} == ALL_SCALARS


def test_it_accepts_int64_as_a_numeric_string_and_writes_it_back_as_a_json_number(msg_cls):
    big = 2**63 - 1  # not representable as a double: a string is how JavaScript clients send it
    msg = message_from_json(msg_cls, json.dumps({"i64": str(big), "u64": " 18446744073709551615 ",
                                                 "ints": ["1", 2, "-3"]}).encode())
    assert msg.i64 == big
    assert msg.u64 == 2**64 - 1
    assert list(msg.ints) == [1, 2, -3]
    body = message_to_json(msg)
    assert f'"i64":{big}'.encode() in body
    assert json.loads(body)["ints"] == [1, 2, -3]


def test_it_accepts_a_whole_float_for_an_integer(msg_cls):
    assert message_from_dict(msg_cls, {"i32": 3.0}).i32 == 3


def test_it_reads_bytes_as_standard_or_url_safe_base64_with_or_without_padding(msg_cls):
    raw = b"\xfb\xff\xfe binary"
    for text in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("=")):
        assert message_from_dict(msg_cls, {"blob": text}).blob == raw
    assert message_to_dict(message_from_dict(msg_cls, {"blob": base64.b64encode(raw).decode()}))["blob"] == \
        base64.b64encode(raw).decode()


def test_it_keeps_bytes_as_bytes_for_python_models(msg_cls):
    msg = message_from_dict(msg_cls, {"blob": base64.b64encode(b"abc").decode()})
    assert message_to_dict(msg, for_json=False)["blob"] == b"abc"


def test_it_reads_enums_by_name_or_number_and_writes_names(msg_cls):
    assert message_from_dict(msg_cls, {"color": "BLUE"}).color == 2
    assert message_from_dict(msg_cls, {"color": 2}).color == 2
    assert message_to_dict(message_from_dict(msg_cls, {"color": 2}))["color"] == "BLUE"
    assert message_to_dict(message_from_dict(msg_cls, {"colors": ["RED", 1, "BLUE"]}))["colors"] == \
        ["RED", "GREEN", "BLUE"]


def test_it_keeps_an_unknown_enum_number_as_a_number(msg_cls):
    # proto3 enums are open: an unknown number is kept, and written back as the number.
    assert message_to_dict(message_from_dict(msg_cls, {"color": 7}))["color"] == 7


def test_it_fills_maps_with_scalar_and_message_values(msg_cls):
    msg = message_from_dict(msg_cls, {"counts": {"a": 1, "b": "2"}, "by_id": {"7": {"a": 70, "s": "x"}}})
    assert dict(msg.counts) == {"a": 1, "b": 2}
    assert msg.by_id[7].a == 70
    assert msg.by_id[7].s == "x"
    out = json.loads(message_to_json(msg))
    assert out["counts"] == {"a": 1, "b": 2}
    assert out["by_id"] == {"7": {"a": 70, "s": "x"}}


def test_it_fills_nested_and_repeated_messages(msg_cls):
    msg = message_from_dict(msg_cls, {"sub": {"a": 1}, "subs": [{"a": 2, "s": "two"}, {}], "words": ["x", "y"]})
    assert msg.sub.a == 1
    assert [(s.a, s.s) for s in msg.subs] == [(2, "two"), (0, "")]
    assert list(msg.words) == ["x", "y"]
    out = message_to_dict(msg)
    assert out["sub"] == {"a": 1, "s": ""}
    assert out["subs"] == [{"a": 2, "s": "two"}, {"a": 0, "s": ""}]


def test_it_writes_an_unset_sub_message_as_null_and_every_other_field_at_its_default(msg_cls):
    out = message_to_dict(msg_cls())
    assert out["sub"] is None
    assert out["d"] == 0.0
    assert out["i64"] == 0
    assert out["text"] == ""
    assert out["color"] == "RED"
    assert out["ints"] == []
    assert out["counts"] == {}


def test_it_accepts_the_json_camel_case_name(msg_cls):
    assert message_from_dict(msg_cls, {"snakeCaseValue": 1.5}).snake_case_value == 1.5


def test_it_skips_null_values(msg_cls):
    assert message_from_dict(msg_cls, {"d": None, "sub": None}) == msg_cls()


def test_it_reads_and_writes_non_finite_floats_as_the_proto3_json_strings(msg_cls):
    msg = message_from_dict(msg_cls, {"d": "NaN", "f": "-Infinity"})
    assert math.isnan(msg.d)
    assert msg.f == -math.inf
    body = message_to_json(msg)
    out = json.loads(body)
    assert (out["d"], out["f"]) == ("NaN", "-Infinity")


# ---------------------------------------------------------------- round trip

def test_it_round_trips_json_to_message_to_bytes_to_message_to_json(msg_cls):
    data = {**ALL_SCALARS, "sub": {"a": 5, "s": "five"}, "subs": [{"a": 1}, {"s": "b"}], "ints": [1, -2, 2**60],
            "words": ["a", ""], "counts": {"k": 9}, "by_id": {"-1": {"a": 1}}, "colors": ["BLUE", "RED"],
            "snake_case_value": -0.5}
    first = message_from_json(msg_cls, json.dumps(data).encode())
    wire = first.SerializeToString()
    second = message_from_bytes(msg_cls, wire)
    assert second == first
    assert json.loads(message_to_json(second)) == json.loads(message_to_json(first))
    # Every value here is exact in its type, so the JSON that comes back is the JSON that went in.
    back = json.loads(message_to_json(second))
    assert back["by_id"] == {"-1": {"a": 1, "s": ""}}
    assert {k: back[k] for k in ALL_SCALARS} == ALL_SCALARS
    assert back["ints"] == [1, -2, 2**60]


def test_it_rejects_bytes_that_are_not_the_message(msg_cls):
    with pytest.raises(BadRequest, match="not a valid protobuf All message"):
        message_from_bytes(msg_cls, b"\xff\xff\xff\xff")


# ---------------------------------------------------------------- errors

def test_it_rejects_a_body_that_is_not_json(msg_cls):
    with pytest.raises(BadRequest, match="not valid JSON"):
        message_from_json(msg_cls, b"{nope")


def test_it_rejects_a_body_that_is_not_an_object(msg_cls):
    with pytest.raises(BadRequest, match="the request body must be a JSON object"):
        message_from_json(msg_cls, b"[1, 2]")


def test_it_lists_the_allowed_fields_for_an_unknown_field(msg_cls):
    error = bad(msg_cls, {"d": 1, "nope": 2})
    assert "unknown field 'nope'" in error.message
    assert "allowed: d, f, i32, i64" in error.message
    assert error.details["field"] == "nope"


def test_it_names_the_full_path_of_an_unknown_nested_field(msg_cls):
    error = bad(msg_cls, {"subs": [{"a": 1}, {"zz": 1}]})
    assert "unknown field 'subs[1].zz'" in error.message
    assert "allowed: a, s" in error.message


@pytest.mark.parametrize(("data", "field", "words"), [
    ({"sub": [1]}, "sub", "must be a JSON object"),
    ({"subs": [[1]]}, "subs[0]", "must be a JSON object"),
    ({"d": "abc"}, "d", "not a number"),
    ({"d": [1.0]}, "d", "expected a number, got an array"),
    ({"d": True}, "d", "expected a number, got a boolean"),
    ({"i32": True}, "i32", "got a boolean"),
    ({"i32": 1.5}, "i32", "not an integer"),
    ({"i64": "12abc"}, "i64", "not an integer"),
    ({"i64": {"a": 1}}, "i64", "expected an integer, got an object"),
    ({"flag": "maybe"}, "flag", "expected true or false"),
    ({"text": 5}, "text", "expected a string"),
    ({"blob": 5}, "blob", "expected base64 text"),
    ({"color": "PURPLE"}, "color", "not one of RED, GREEN, BLUE"),
    ({"color": True}, "color", "not one of"),
    ({"ints": 5}, "ints", "send a JSON array"),
    ({"ints": [1, "x"]}, "ints[1]", "not an integer"),
    ({"counts": [1]}, "counts", "is a map"),
    ({"counts": {"k": "v"}}, "counts.k", "not an integer"),
    ({"by_id": {"x": {"a": 1}}}, "by_id.x", "not an integer"),
    ({"sub": {"a": "one"}}, "sub.a", "not an integer"),
])
def test_it_names_the_field_for_a_wrong_json_kind(msg_cls, data, field, words):
    error = bad(msg_cls, data)
    assert f"field '{field}'" in error.message
    assert words in error.message
    assert error.details["field"] == field


def test_it_names_the_full_path_inside_a_map_of_messages(msg_cls):
    error = bad(msg_cls, {"by_id": {"3": {"a": "x"}}})
    assert "field 'by_id.3.a'" in error.message


@pytest.mark.parametrize(("data", "field"), [
    ({"i32": 2**31}, "i32"),
    ({"i32": -(2**31) - 1}, "i32"),
    ({"u32": -1}, "u32"),
    ({"u64": -1}, "u64"),
    ({"i64": str(2**63)}, "i64"),
    ({"fx32": 2**32}, "fx32"),
    ({"ints": [1, 2**70]}, "ints[1]"),
    ({"color": 2**40}, "color"),
])
def test_it_names_the_field_for_an_integer_out_of_range(msg_cls, data, field):
    error = bad(msg_cls, data)
    assert f"field '{field}'" in error.message
    assert "out of range" in error.message


def test_it_accepts_the_limits_of_each_integer_type(msg_cls):
    msg = message_from_dict(msg_cls, {"i32": -(2**31), "u32": 2**32 - 1, "i64": 2**63 - 1, "u64": 0})
    assert (msg.i32, msg.u32, msg.i64, msg.u64) == (-(2**31), 2**32 - 1, 2**63 - 1, 0)


def test_it_names_the_field_for_a_number_too_large_for_a_double(msg_cls):
    error = bad(msg_cls, {"d": 10**400})
    assert "field 'd'" in error.message


@pytest.mark.parametrize("text", ["@@@@", "aGVsbG8=!", "not base64!"])
def test_it_rejects_text_that_is_not_base64(msg_cls, text):
    # Without validation, characters outside the alphabet are dropped: "@@@@" would decode to b"" silently.
    error = bad(msg_cls, {"blob": text})
    assert "field 'blob'" in error.message
