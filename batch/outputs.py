"""A batch job's outputs: how a shard's lines are written (CSV, or JSON lines with each value of its own type), where
the parts and the outputs live in the storage, and how the parts become the two files people download. The
shards, the checkpoints and when all this happens: batch.services."""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from pathlib import PurePosixPath

from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from batch import inputs
from batch.choices import OutputFormat

CHUNK = 1 << 20
MEDIA_TYPES = {".csv": "text/csv", ".jsonl": "application/x-ndjson"}


class Writer:
    """A part's lines in the job's output format: CSV cells (a list or an object as JSON text), or one JSON object
    a line with each value as the runner answered it."""

    def __init__(self, output_format: str):
        self.lines = io.StringIO()
        self.jsonl = output_format == OutputFormat.JSONL
        self.csv = csv.writer(self.lines, lineterminator="\n")

    def write(self, pairs: list[tuple[str, object]]) -> None:
        if self.jsonl:
            # default=str: a Parquet id column's date, timestamp, Decimal or bytes, as text (as CSV writes it)
            self.lines.write(json.dumps({name: _finite(value) for name, value in pairs}, separators=(",", ":"),
                                        allow_nan=False, default=str) + "\n")
        else:
            self.csv.writerow([_cell(value) for _, value in pairs])

    def getvalue(self) -> bytes:
        return self.lines.getvalue().encode()


def _finite(value):
    """NaN and infinities, which JSON cannot hold, as null (as pandas writes them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(each) for each in value]
    if isinstance(value, dict):
        return {key: _finite(each) for key, each in value.items()}
    return value


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


# ---------------------------------------------------------------- where they live

def jobs_dir(job) -> str:
    return f"batch/jobs/{job.pk}/"


def part_keys(job, index: int) -> tuple[str, str]:
    base, ending = f"{jobs_dir(job)}parts/{index:07d}", job.output_format or OutputFormat.CSV
    return f"{base}.{ending}", f"{base}.errors.{ending}"


def output_keys(job) -> tuple[str, str]:
    base = f"{job.output_prefix}{job.pk}/" if job.output_prefix else jobs_dir(job)
    ending = job.output_format or OutputFormat.CSV
    return f"{base}predictions.{ending}", f"{base}errors.{ending}"


def media_type(key: str) -> str:
    return MEDIA_TYPES.get(PurePosixPath(key).suffix, "application/octet-stream")


def put(key: str, data: bytes | File) -> None:
    """Write `key` whole, replacing what is there (local storage would otherwise pick another name)."""
    if not inputs.is_s3_store():
        default_storage.delete(key)
    saved = default_storage.save(key, ContentFile(data) if isinstance(data, bytes) else data)
    if saved != key:
        raise RuntimeError(f"the storage wrote {saved} instead of {key}")


# ---------------------------------------------------------------- the parts, assembled

def assemble(job, output_fields: tuple[str, ...], shards) -> tuple[str, str]:
    """The shards' parts, in shard order, as the job's two outputs (a header first for CSV: JSON lines name their
    fields on every line), streamed through a temporary file. Returns their keys; the parts are left to the
    caller to delete."""
    predictions, errors = output_keys(job)
    as_csv = job.output_format != OutputFormat.JSONL
    header = ["row", *([job.id_column] if job.id_column else []), *output_fields]
    _concatenate(predictions, header if as_csv else None, [s.part_key for s in shards])
    _concatenate(errors, ["row", job.id_column or "id", "error"] if as_csv else None,
                 [s.errors_part_key for s in shards])
    return predictions, errors


def _concatenate(key: str, header: list[str] | None, parts: list[str]) -> None:
    with tempfile.TemporaryFile() as spool:
        if header is not None:
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerow(header)
            spool.write(text.getvalue().encode())
        for part in parts:
            with inputs.stored_stream(part) as (body, _size):
                while chunk := body.read(CHUNK):
                    spool.write(chunk)
        spool.seek(0)
        put(key, File(spool, name=PurePosixPath(key).name))
