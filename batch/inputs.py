"""Reading a batch job's input as a stream of rows, never whole into memory.

Sources (`open_source`): an object in the portal's S3 store, read from boto3's streaming body (keys under
ACUMOS_BATCH_S3_PREFIXES only: the rest of the bucket is every model's artifacts); an upload, from the
portal's storage; a URL (http/https), only under one of ACUMOS_BATCH_ALLOWED_URL_PREFIXES (an admin's list)
AND through acumos_portal.outbound's guard with private addresses always refused: an admin's prefix list says
which public data servers jobs may read, and a prefix can never open the portal's own network (a name that
resolves to 127.0.0.1 or 10.x is refused even under an allowed prefix; the connection goes to the address
checked, redirects are not followed). Why not SiteSettings.hooks_may_reach_private: that switch is about
hooks, whose receivers are the owners' trainers; a data fetch that answers its bytes back to the user is a
far better SSRF tool, so it gets no such switch.

Every source is wrapped in a `Meter`: it counts the bytes, refuses past ACUMOS_BATCH_MAX_INPUT_BYTES (or the
expected size given) and hashes them; the caller compares the sha256 at the end (`Meter.verify`).

Formats (`read_rows`): CSV by the csv module (the first line is the header), JSON lines line by line (each an
object), Parquet by pyarrow's iter_batches. Parquet needs seeking (its footer is at the end), so its bytes are
spooled to a temporary file first (streamed to disk, within the size cap), then read a batch at a time. Each
row comes as (row number from 1, dict or a BadRow saying what is wrong with it)."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.files.storage import default_storage

from acumos_portal import outbound
from acumos_portal.api.refusals import Refused
from batch.choices import FORMAT_BY_SUFFIX, InputFormat, InputKind

CHUNK = 1 << 20
PARQUET_BATCH_ROWS = 4096


class InputRefused(Refused):
    """The input may not or cannot be read: the message says which field, what is wrong, what is allowed."""


@dataclass(frozen=True)
class BadRow:
    message: str


# ---------------------------------------------------------------- checks when a job is made

def check_s3_key(key: str, user, field: str = "input.key") -> str:
    """The key if `user` may have a job read (or write) it; InputRefused saying why not. The portal reads the
    store with its own credentials, so it decides whose objects are whose: under each of
    ACUMOS_BATCH_S3_PREFIXES, a user has the folder of their username (`batch-data/<username>/`, where an admin
    grants them write access in the store itself); admins may use any key under the prefixes."""
    if not is_s3_store():
        raise InputRefused("this portal stores its files locally: there is no S3-compatible store to read from "
                           "(an admin sets ACUMOS_STORAGE=s3); upload the file instead", field)
    key = (key or "").strip().lstrip("/")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise InputRefused("an S3 key may not hold control characters", field)
    roots = tuple(settings.ACUMOS_BATCH_S3_PREFIXES)
    folders = roots if user.is_portal_admin else tuple(f"{root}{user.username}/" for root in roots)
    if not key or ".." in key.split("/") or not key.startswith(folders):
        raise InputRefused(f"{key[:300] or 'an empty key'}: batch jobs may only use keys under "
                           f"{', '.join(folders) or '(none: an admin has not allowed any)'}"
                           f"{'' if user.is_portal_admin else ' (your own folder)'}", field)
    return key


def check_url(url: str) -> str:
    """The URL if it is under an allowed prefix and its host is public; InputRefused saying why not. The prefix is
    checked first: a URL off the admin's list is refused before its name is looked up, so the answers tell
    nobody what this portal's resolver knows of other names."""
    url = (url or "").strip()
    allowed = settings.ACUMOS_BATCH_ALLOWED_URL_PREFIXES
    if not any(_under(url, prefix) for prefix in allowed):
        raise InputRefused(f"{url[:300]} is not under a prefix an admin allows for batch inputs (allowed: "
                           f"{', '.join(allowed) or 'none yet'})", "input.url")
    if _dot_segments(urlsplit(url).path):
        raise InputRefused(f"{url[:300]}: a batch input's path may not hold . or .. segments (with ;parameters too), "
                           "backslashes, encoded slashes or encoded percent signs (they could lead out of the "
                           "allowed prefix)", "input.url")
    try:
        outbound.check_url(url, allow_private=False)
    except outbound.UnsafeUrl as exc:
        said = str(exc).replace("hooks may only call", "batch inputs may only be read from")
        raise InputRefused(said.replace(" (an admin may allow private ones in the site settings)", ""),
                           "input.url") from None
    return url


DEFAULT_PORTS = {"http": 80, "https": 443}


def _under(url: str, prefix: str) -> bool:
    """Is `url` under `prefix` as a server reads it: the same scheme, host and port (not merely the same first
    characters: "https://data.example.com" is no prefix of "https://data.example.com.evil.net/"), and a path
    at or below the prefix's path, segment by segment ("/exports" covers "/exports/a.csv", not "/exports2")."""
    try:
        given, allowed = urlsplit(url), urlsplit(prefix)
        if (given.scheme.lower(), given.hostname, given.port or DEFAULT_PORTS.get(given.scheme.lower())) != (
                allowed.scheme.lower(), allowed.hostname, allowed.port or DEFAULT_PORTS.get(allowed.scheme.lower())):
            return False
    except ValueError:  # a port that is not a number, in the admin's prefix
        return False
    path, base = given.path or "/", allowed.path or "/"
    return path == base or path.startswith(base if base.endswith("/") else base + "/")


def _dot_segments(path: str) -> bool:
    """A path a server (or urllib3, which removes dot segments before sending) would read as another one: dot
    segments, also with a ;parameter (Tomcat and Jetty read "..;" as ".."), backslashes, encoded slashes, and
    encoded percent signs (decoded twice, %252e is a dot)."""
    decoded, raw = unquote(path), path.lower()
    if "\\" in decoded or "%2f" in raw or "%25" in raw:
        return True
    return any(part.split(";", 1)[0] in (".", "..") for part in decoded.split("/"))


def detect_format(given: str | None, name: str) -> str:
    if given:
        if given not in InputFormat.values:
            raise InputRefused(f"{given!r} is not a format batch jobs read; they read {', '.join(InputFormat.values)}",
                               "format")
        return given
    path = urlsplit(name).path if "://" in name else name
    for suffix, found in FORMAT_BY_SUFFIX.items():
        if path.lower().endswith(suffix):
            return found
    raise InputRefused(f"the format of {name!r} cannot be told from its name; say it: "
                       f"{', '.join(InputFormat.values)}", "format")


def is_s3_store() -> bool:
    return hasattr(default_storage, "bucket_name") and hasattr(default_storage, "connection")


# ---------------------------------------------------------------- the metered stream

class Meter(io.RawIOBase):
    """A source's bytes, counted, capped and hashed as they are read."""

    def __init__(self, source, *, limit: int, expected_size: int | None, what: str):
        self._source, self._limit, self._what = source, limit, what
        self.expected_size = expected_size
        self.count = 0
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._source.read(len(buffer))
        size = len(data)
        self.count += size
        if self.count > self._limit:
            raise InputRefused(f"{self._what} is larger than the limit of {self._limit} bytes "
                               "(ACUMOS_BATCH_MAX_INPUT_BYTES)", "input")
        if self.expected_size is not None and self.count > self.expected_size:
            raise InputRefused(f"{self._what} is larger than the size given ({self.expected_size} bytes)",
                               "input.size")
        self.digest.update(data)
        buffer[:size] = data
        return size

    def verify(self, expected_sha256: str) -> str:
        """The sha256 of what was read; InputRefused if it is not what was expected (or the size differs)."""
        if self.expected_size is not None and self.count != self.expected_size:
            raise InputRefused(f"{self._what} has {self.count} bytes, not the {self.expected_size} given",
                               "input.size")
        found = self.digest.hexdigest()
        if expected_sha256 and found != expected_sha256.lower():
            raise InputRefused(f"{self._what} has sha256 {found}, not the {expected_sha256} given: it is not the "
                               "file you meant (or it changed); no output was kept", "input.sha256")
        return found


# ---------------------------------------------------------------- sources

@contextlib.contextmanager
def open_source(job) -> Iterator[tuple[Meter, int | None]]:
    """The job's input as a Meter, and its size when the source says it."""
    limit = settings.ACUMOS_BATCH_MAX_INPUT_BYTES
    with _raw_source(job) as (raw, size, what):
        for known in (size, job.expected_size):
            if known is not None and known > limit:
                raise InputRefused(f"{what} has {known} bytes, over the limit of {limit} bytes "
                                   "(ACUMOS_BATCH_MAX_INPUT_BYTES)", "input")
        if size is not None and job.expected_size is not None and size != job.expected_size:
            raise InputRefused(f"{what} has {size} bytes, not the {job.expected_size} given", "input.size")
        yield Meter(raw, limit=limit, expected_size=job.expected_size, what=what), size


@contextlib.contextmanager
def _raw_source(job):
    if job.input_kind == InputKind.S3:
        with _s3_object(check_s3_key(job.input_ref, job.requested_by)) as (body, size):
            yield body, size, f"s3 object {job.input_ref}"
    elif job.input_kind == InputKind.UPLOAD:
        if job.upload is None:
            raise InputRefused("the uploaded file was deleted", "input.upload")
        with stored_stream(job.upload.storage_key) as (body, size):
            yield body, size, f"the upload {job.upload.name}"
    else:
        with _url_stream(check_url(job.input_ref)) as (body, size):
            yield body, size, job.input_ref


@contextlib.contextmanager
def _s3_object(key: str):
    client = default_storage.connection.meta.client
    try:
        answer = client.get_object(Bucket=default_storage.bucket_name, Key=key)
    except client.exceptions.NoSuchKey:
        raise InputRefused(f"there is no object {key} in the store", "input.key") from None
    body = answer["Body"]
    try:
        yield body, answer.get("ContentLength")
    finally:
        body.close()


@contextlib.contextmanager
def stored_stream(key: str):
    """An object of the portal's storage as a stream: boto3's body on S3, the file on local storage."""
    if is_s3_store():
        with _s3_object(key) as found:
            yield found
        return
    with default_storage.open(key, "rb") as handle:
        yield handle, default_storage.size(key)


@contextlib.contextmanager
def _url_stream(url: str):
    # Checked again now (a name's DNS may have changed), and connected to the address checked.
    with outbound.pinned(url, allow_private=False) as (session, address, host_header):
        try:
            response = session.get(address, headers={"Host": host_header, "User-Agent": "Acumos-Portal-Batch/1"},
                                   timeout=settings.ACUMOS_BATCH_TIMEOUT, allow_redirects=False, stream=True)
        except outbound.NETWORK_ERRORS as exc:
            raise InputRefused(f"{url} could not be read: {type(exc).__name__}: {str(exc)[:300]}", "input.url") from exc
        with response:
            if response.status_code != 200:
                raise InputRefused(f"{url} answered HTTP {response.status_code} (redirects are not followed)",
                                   "input.url")
            length = response.headers.get("Content-Length")
            response.raw.decode_content = True
            yield response.raw, int(length) if length and length.isdigit() else None


# ---------------------------------------------------------------- rows

def read_rows(meter: Meter, fmt: str) -> Iterator[tuple[int, dict | BadRow]]:
    if fmt == InputFormat.PARQUET:
        yield from _parquet_rows(meter)
        return
    text = io.TextIOWrapper(io.BufferedReader(meter, CHUNK), encoding="utf-8", errors="strict", newline="")
    try:
        yield from (_csv_rows(text) if fmt == InputFormat.CSV else _jsonl_rows(text))
    except UnicodeDecodeError as exc:  # the whole file is unreadable from here on: the job fails, saying so
        raise InputRefused(f"the input is not UTF-8 text (byte {exc.start} of a chunk near byte {meter.count}: "
                           f"{exc.reason}); save it as UTF-8", "input") from None


def _csv_rows(text) -> Iterator[tuple[int, dict | BadRow]]:
    reader = csv.reader(text)
    header = next(reader, None)
    if not header:
        return
    width = len(header)
    for number, cells in enumerate(reader, start=1):
        if len(cells) != width:
            yield number, BadRow(f"has {len(cells)} cells; the header has {width}")
        else:
            yield number, dict(zip(header, cells, strict=True))


def _jsonl_rows(text) -> Iterator[tuple[int, dict | BadRow]]:
    number = 0
    for line in text:
        if not line.strip():
            continue  # a blank line (the last newline, say) is no row
        number += 1
        try:
            row = json.loads(line)
        except ValueError as exc:
            yield number, BadRow(f"is not JSON: {exc}")
            continue
        yield number, row if isinstance(row, dict) else BadRow("is not a JSON object")


def _parquet_rows(meter: Meter) -> Iterator[tuple[int, dict | BadRow]]:
    try:
        import pyarrow.parquet as pq  # only Parquet inputs pay for importing it
    except ImportError:  # requirements.txt has it; a portal installed some other way may not
        raise InputRefused("this portal cannot read Parquet: pyarrow is not installed on it (an admin installs "
                           "requirements.txt); send CSV or JSON lines", "format") from None

    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(io.BufferedReader(meter, CHUNK), spool, CHUNK)
        spool.seek(0)
        try:
            parquet = pq.ParquetFile(spool)
        except Exception as exc:  # pyarrow's own errors: the file is no Parquet
            raise InputRefused(f"the input is not a Parquet file: {exc}", "format") from exc
        number = 0
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                number += 1
                yield number, row
