"""CSV -> protobuf (csvcodec.py), rule by rule from its docstring."""

from __future__ import annotations

import base64

import pytest

from runner_image.codec import message_to_dict
from runner_image.csvcodec import message_from_csv
from runner_image.errors import BadRequest
from runner_image.protos import compile_proto

PROTO = """
syntax = "proto3";
package csv_test;

service Model {
  rpc single (Single) returns (Single);
  rpc columns (Columns) returns (Single);
  rpc rows (Rows) returns (Single);
  rpc nested (Nested) returns (Single);
  rpc one (One) returns (Single);
}

enum Kind { NONE = 0; SMALL = 1; LARGE = 2; }

message Single {
  double x = 1;
  int64 n = 2;
  bool ok = 3;
  string name = 4;
}

message Columns {
  repeated double x = 1;
  repeated int64 n = 2;
  repeated Kind kind = 3;
  repeated bytes raw = 4;
}

message Row {
  double x = 1;
  string label = 2;
  bool ok = 3;
}

message Rows { repeated Row rows = 1; }

message Nested {
  Row row = 1;
  double x = 2;
}

message One { repeated string word = 1; }
"""


@pytest.fixture(scope="module")
def proto():
    return compile_proto(PROTO)


def parse(proto, method: str, text: str | bytes) -> dict:
    body = text.encode() if isinstance(text, str) else text
    return message_to_dict(message_from_csv(proto.methods[method].input, body))


def error(proto, method: str, text: str | bytes) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        parse(proto, method, text)
    return info.value


# ---------------------------------------------------------------- headers

def test_it_maps_a_header_to_fields_by_name_in_any_order(proto):
    assert parse(proto, "single", "name,ok,n,x\nbob,true,3,1.5\n") == {"x": 1.5, "n": 3, "ok": True, "name": "bob"}


def test_it_maps_columns_by_position_without_a_header(proto):
    assert parse(proto, "single", "1.5,3,false,bob\n") == {"x": 1.5, "n": 3, "ok": False, "name": "bob"}


def test_it_reads_a_header_with_spaces_and_a_byte_order_mark(proto):
    body = "\ufeff x , n ,ok,name\r\n2,4,1,al\r\n".encode()
    assert parse(proto, "single", body) == {"x": 2.0, "n": 4, "ok": True, "name": "al"}


def test_it_requires_every_field_in_the_header(proto):
    problem = error(proto, "single", "x,n\n1,2\n")
    assert "lacks columns for fields: ok, name" in problem.message
    assert problem.details["missing"] == ["ok", "name"]


def test_it_requires_as_many_columns_as_fields_without_a_header(proto):
    problem = error(proto, "single", "1.5,3\n")
    assert "2 columns" in problem.message
    assert "4 fields" in problem.message
    assert "add a header" in problem.message


def test_it_rejects_a_line_with_more_columns_than_the_first(proto):
    problem = error(proto, "columns", "x,n,kind,raw\n1,2,SMALL,\n3,4,LARGE,,9\n")
    assert "line 3" in problem.message
    assert problem.details["line"] == 3


def test_it_rejects_a_line_with_fewer_columns_than_the_first(proto):
    problem = error(proto, "columns", "1,2,SMALL,\n3,4\n")
    assert "line 2" in problem.message


# ---------------------------------------------------------------- the three message shapes

def test_it_needs_exactly_one_data_line_for_a_message_of_single_fields(proto):
    assert "exactly one data line (it has 2)" in error(proto, "single", "1,2,true,a\n3,4,false,b\n").message
    assert "exactly one data line (it has 0)" in error(proto, "single", "x,n,ok,name\n").message


def test_it_turns_each_line_into_one_element_of_every_repeated_column(proto):
    raw = base64.b64encode(b"\x01\x02").decode()
    body = f"kind,raw,x,n\nSMALL,{raw},1.5,10\n2,,2.5,20\nNONE,,3.5,30\n"
    assert parse(proto, "columns", body) == {
        "x": [1.5, 2.5, 3.5], "n": [10, 20, 30], "kind": ["SMALL", "LARGE", "NONE"], "raw": [raw, "", ""]}


def test_it_takes_a_header_alone_as_zero_rows_for_columns(proto):
    assert parse(proto, "columns", "x,n,kind,raw\n") == {"x": [], "n": [], "kind": [], "raw": []}


def test_it_turns_each_line_into_one_sub_message_for_a_rows_message(proto):
    body = "label,ok,x\ncat,true,1\ndog,false,2.5\n"
    assert parse(proto, "rows", body) == {"rows": [
        {"x": 1.0, "label": "cat", "ok": True}, {"x": 2.5, "label": "dog", "ok": False}]}


def test_it_maps_rows_by_position_without_a_header(proto):
    assert parse(proto, "rows", "1,cat,1\n2,dog,0\n")["rows"] == [
        {"x": 1.0, "label": "cat", "ok": True}, {"x": 2.0, "label": "dog", "ok": False}]


def test_it_reads_a_message_with_one_repeated_field(proto):
    assert parse(proto, "one", "word\na\nb\n") == {"word": ["a", "b"]}


def test_it_refuses_a_message_a_table_cannot_represent(proto):
    assert "cannot be built from CSV" in error(proto, "nested", "1\n").message


def test_it_skips_blank_lines(proto):
    assert parse(proto, "columns", "\nx,n,kind,raw\n\n1,2,0,\n   \n3,4,1,\n")["n"] == [2, 4]


# ---------------------------------------------------------------- cells

def test_it_leaves_an_empty_cell_at_the_proto3_default(proto):
    assert parse(proto, "single", "x,n,ok,name\n,,,\n") == {"x": 0.0, "n": 0, "ok": False, "name": ""}
    assert parse(proto, "columns", "x,n,kind,raw\n1,,,\n,5,,\n") == {
        "x": [1.0, 0.0], "n": [0, 5], "kind": ["NONE", "NONE"], "raw": ["", ""]}
    assert parse(proto, "rows", "x,label,ok\n,,\n") == {"rows": [{"x": 0.0, "label": "", "ok": False}]}


def test_it_keeps_a_line_of_empty_cells_as_a_row_of_defaults(proto):
    assert parse(proto, "columns", "x,n,kind,raw\n1,2,0,\n,,,\n3,4,0,\n")["n"] == [2, 0, 4]


def test_it_reads_quoted_cells_with_commas(proto):
    assert parse(proto, "single", 'x,n,ok,name\n1,2,0,"Smith, J."\n')["name"] == "Smith, J."


def test_it_reads_enums_by_name_or_number(proto):
    assert parse(proto, "columns", "x,n,kind,raw\n0,0,LARGE,\n0,0,1,\n")["kind"] == ["LARGE", "SMALL"]


# ---------------------------------------------------------------- errors

def test_it_names_the_line_and_column_of_a_bad_value(proto):
    problem = error(proto, "columns", "x,n,kind,raw\n1,2,0,\n3,four,0,\n")
    assert "line 3, column 'n'" in problem.message
    assert "'four' is not an integer" in problem.message
    assert problem.details == {"line": 3, "field": "n"}


def test_it_counts_lines_without_a_header_from_one(proto):
    assert "line 2, column 'x'" in error(proto, "rows", "1,a,1\nabc,b,0\n").message


def test_it_counts_blank_lines_when_naming_a_line(proto):
    assert "line 4, column 'ok'" in error(proto, "rows", "x,label,ok\n\n1,a,1\n2,b,maybe\n").message


def test_it_names_the_line_and_column_of_a_bad_enum(proto):
    assert "line 2, column 'kind'" in error(proto, "columns", "x,n,kind,raw\n1,2,HUGE,\n").message


def test_it_rejects_text_that_is_not_utf8(proto):
    problem = error(proto, "single", "x,n,ok,name\n1,2,0,caf\xe9\n".encode("latin-1"))
    assert "not UTF-8" in problem.message


def test_it_rejects_an_empty_csv(proto):
    assert "no lines" in error(proto, "columns", b"\n \n").message
