"""CSV -> protobuf message.

Rules (also in the README):
- The first line is a header when every cell in it is a field name; columns then map to fields by
  name, in any order, and every field must have a column. Without a header, columns map to the
  fields in declaration order and there must be exactly as many columns as fields.
- A message of single (scalar) fields takes exactly one data line.
- A message of repeated scalar fields (a column per field) takes any number of lines; line i
  becomes element i of every field.
- A message with one repeated sub-message field takes any number of lines; each line becomes one
  element, filled from the sub-message's scalar fields.
- An empty cell leaves the field at its proto3 default. Values are parsed as in JSON input
  (numbers, true/false/1/0, base64 for bytes, enum names or numbers).
"""

from __future__ import annotations

import csv
import io

from google.protobuf.descriptor import FieldDescriptor as FD

from runner_image.codec import is_repeated, scalar_value
from runner_image.errors import BadRequest
from runner_image.tables import input_shape


def message_from_csv(cls, body: bytes):
    numbered = _read_lines(body)
    lines = [cells for _, cells in numbered]
    shape = _shape(cls)
    row_fields = _row_fields(cls, shape)
    names = [f.name for f in row_fields]
    header, data = _split_header(lines, names)
    width = len(lines[0])
    index = _column_index(header, names, width)
    if shape == "single" and len(data) != 1:
        raise BadRequest(f"message {cls.DESCRIPTOR.name} has single fields, so the CSV must have exactly one "
                         f"data line (it has {len(data)}); use repeated fields for several rows")
    msg = cls()
    for line_no, cells in numbered[len(lines) - len(data):]:
        _check_width(cells, width, line_no)
        _fill_row(msg, shape, row_fields, index, cells, line_no=line_no)
    return msg


def _read_lines(body: bytes) -> list[tuple[int, list[str]]]:
    """(line number, cells) for each non-blank line; numbers count blank lines so errors point right."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the CSV is not UTF-8 text (byte {exc.start})") from exc
    try:
        reader = csv.reader(io.StringIO(text))
        lines = [(reader.line_num, row) for row in reader if not _blank(row)]
    except csv.Error as exc:
        raise BadRequest(f"the CSV cannot be parsed: {exc}") from exc
    if not lines:
        raise BadRequest("the CSV has no lines")
    return lines


def _blank(row: list[str]) -> bool:
    # Only a line without a comma is blank: ",," is a row of empty cells (defaults), not nothing.
    return len(row) <= 1 and not "".join(row).strip()


def _shape(cls) -> str:
    try:
        return input_shape(cls.DESCRIPTOR)
    except Exception as exc:
        reason = getattr(exc, "message", exc)
        raise BadRequest(f"message {cls.DESCRIPTOR.name} cannot be built from CSV: {reason}") from exc


def _row_fields(cls, shape: str):
    fields = cls.DESCRIPTOR.fields
    return list(fields[0].message_type.fields) if shape == "rows" else list(fields)


def _split_header(lines, names):
    first = [cell.strip() for cell in lines[0]]
    if first and all(cell in names for cell in first):
        return first, lines[1:]
    return None, lines


def _column_index(header, names, width: int) -> list[int]:
    if header is None:
        if width != len(names):
            raise BadRequest(f"the CSV has {width} columns but the message has {len(names)} fields "
                             f"({', '.join(names)}); add a header line to map columns by name")
        return list(range(len(names)))
    missing = [n for n in names if n not in header]
    if missing:
        raise BadRequest(f"the CSV header lacks columns for fields: {', '.join(missing)}", {"missing": missing})
    return [header.index(n) for n in names]


def _check_width(cells, width: int, line_no: int) -> None:
    # A longer line would otherwise lose its extra cells without a word.
    if len(cells) != width:
        raise BadRequest(f"line {line_no} has {len(cells)} columns; the first line has {width}", {"line": line_no})


def _fill_row(msg, shape, row_fields, index, cells, *, line_no: int) -> None:
    target = getattr(msg, msg.DESCRIPTOR.fields[0].name).add() if shape == "rows" else msg
    for field, col in zip(row_fields, index, strict=True):
        if col >= len(cells):
            raise BadRequest(f"line {line_no}: missing a value for column '{field.name}'", {"line": line_no})
        raw = cells[col].strip()
        value = None if raw == "" else _parse(field, raw, line_no)
        _store(target, field, value, shape)


def _parse(field, raw: str, line_no: int):
    try:
        return scalar_value(field, raw, field.name)
    except BadRequest as exc:
        detail = exc.message.split(": ", 1)[-1]
        raise BadRequest(f"line {line_no}, column '{field.name}': {detail}",
                         {"line": line_no, "field": field.name}) from exc


def _store(target, field, value, shape: str) -> None:
    if shape == "columns" and is_repeated(field):
        getattr(target, field.name).append(value if value is not None else _zero(field))
    elif value is not None:
        setattr(target, field.name, value)


def _zero(field):
    """The proto3 default for one element of a repeated scalar field."""
    if field.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return 0.0
    if field.type == FD.TYPE_BOOL:
        return False
    if field.type == FD.TYPE_STRING:
        return ""
    if field.type == FD.TYPE_BYTES:
        return b""
    return 0
