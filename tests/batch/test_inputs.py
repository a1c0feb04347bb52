"""The three input formats read as a stream, row by row: a row that cannot be read is a bad row (numbered, with
why) and the rest go on; a file that is not of its format, or not UTF-8, fails with that said; sizes and the
sha256 are checked on what was read."""

from __future__ import annotations

import hashlib
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch import inputs
from batch.choices import InputFormat


def meter(data: bytes, **kwargs) -> inputs.Meter:
    return inputs.Meter(io.BytesIO(data), limit=kwargs.pop("limit", 1 << 20), expected_size=kwargs.pop("size", None),
                        what="the input")


def rows(data: bytes, fmt: str) -> list:
    return [(n, row if isinstance(row, dict) else f"bad: {row.message}")
            for n, row in inputs.read_rows(meter(data), fmt)]


def test_csv_rows_by_header_and_a_short_row_is_bad():
    data = b"id,x,y\na,1,2\nb,3\nc,5,6\n"
    assert rows(data, InputFormat.CSV) == [(1, {"id": "a", "x": "1", "y": "2"}),
                                           (2, "bad: has 2 cells; the header has 3"),
                                           (3, {"id": "c", "x": "5", "y": "6"})]


def test_json_lines_skip_blank_lines_and_number_the_bad_ones():
    data = b'{"x": 1}\n\n{"x": \nnot json\n[1, 2]\n{"x": 2}\n'
    found = rows(data, InputFormat.JSONL)
    assert [n for n, _ in found] == [1, 2, 3, 4, 5]
    assert found[0] == (1, {"x": 1}) and found[-1] == (5, {"x": 2})
    assert found[1][1].startswith("bad: is not JSON") and found[2][1].startswith("bad: is not JSON")
    assert found[3] == (4, "bad: is not a JSON object")


def test_parquet_rows_come_in_order_and_a_file_that_is_not_parquet_is_refused(tmp_path):
    table = pa.table({"id": [f"r{i}" for i in range(2500)], "x": [float(i) for i in range(2500)]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=1000)
    found = rows(buffer.getvalue(), InputFormat.PARQUET)
    assert len(found) == 2500 and found[0] == (1, {"id": "r0", "x": 0.0}) and found[-1] == (2500, {"id": "r2499",
                                                                                                   "x": 2499.0})
    with pytest.raises(inputs.InputRefused, match="the input is not a Parquet file"):
        rows(b"id,x\n1,2\n", InputFormat.PARQUET)


def test_text_that_is_not_utf8_fails_saying_so():
    with pytest.raises(inputs.InputRefused, match="the input is not UTF-8 text"):
        rows("id,x\né,1\n".encode("latin-1"), InputFormat.CSV)


def test_the_size_cap_the_size_given_and_the_sha256_are_checked_on_what_is_read():
    data = b"id,x\n" + b"a,1\n" * 100
    with pytest.raises(inputs.InputRefused, match="larger than the limit of 100 bytes"):
        list(inputs.read_rows(meter(data, limit=100), InputFormat.CSV))
    with pytest.raises(inputs.InputRefused, match="larger than the size given"):
        list(inputs.read_rows(meter(data, size=10), InputFormat.CSV))
    read = meter(data, size=len(data))
    assert len(list(inputs.read_rows(read, InputFormat.CSV))) == 100
    assert read.verify(hashlib.sha256(data).hexdigest()) == hashlib.sha256(data).hexdigest()
    with pytest.raises(inputs.InputRefused, match="not the file you meant"):
        read.verify("0" * 64)
