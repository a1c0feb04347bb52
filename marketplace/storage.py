"""Content-addressed artifact storage on Django's default storage (local files or S3).

A blob's key is derived from its sha256, so the same bytes are stored once, and a stored blob is
never rewritten. Everything streams: nothing here reads a whole file into memory."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from marketplace.models import Blob

CHUNK = 1 << 20


def blob_key(sha256: str) -> str:
    return f"blobs/{sha256[:2]}/{sha256}"


def file_sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def store_file(path: Path) -> tuple[Blob, bool]:
    """Store a local file as a blob; returns (blob, created). Reuses an identical stored blob."""
    sha256, size = file_sha256(path)
    existing = Blob.objects.filter(sha256=sha256).first()
    if existing is not None:
        return existing, False
    key = blob_key(sha256)
    if not default_storage.exists(key):
        _save(key, path)
    try:
        with transaction.atomic():
            return Blob.objects.create(sha256=sha256, size=size, storage_key=key), True
    except IntegrityError:  # another job stored the same bytes at the same moment
        return Blob.objects.get(sha256=sha256), False


def _save(key: str, path: Path) -> None:
    """Write a blob whole or not at all: a key is a content address, so a part of a file under it
    (a full disk, a killed worker) would later be served as those bytes."""
    try:
        target = Path(default_storage.path(key))
    except NotImplementedError:  # S3 and the like store an object whole or not at all
        with open(path, "rb") as handle:
            default_storage.save(key, File(handle))
        return
    # Local files: written under a temporary name beside the target, then renamed into place (atomic).
    # Two jobs storing the same bytes at once simply replace one complete copy with another.
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
    partial = Path(name)
    try:  # the close is inside: it flushes, and a full disk may only show there
        with os.fdopen(handle, "wb") as out, open(path, "rb") as source:
            shutil.copyfileobj(source, out, CHUNK)
        partial.chmod(settings.FILE_UPLOAD_PERMISSIONS or 0o644)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def store_text(text: str, suffix: str = "") -> tuple[Blob, bool]:
    """Store a file the platform made (descriptors, logs) as a blob; returns (blob, created)."""
    with tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False) as tmp:
        tmp.write(text)
    path = Path(tmp.name)
    try:
        return store_file(path)
    finally:
        path.unlink(missing_ok=True)


def delete_blob_if_orphan(blob: Blob) -> bool:
    if blob.artifacts.exists():
        return False
    default_storage.delete(blob.storage_key)
    blob.delete()
    return True


def open_blob(blob: Blob):
    return default_storage.open(blob.storage_key, "rb")


@contextmanager
def local_copy(key: str, suffix: str = ""):
    """A local path for a stored object (a temp copy for remote storage), removed afterwards."""
    try:
        path = Path(default_storage.path(key))
    except NotImplementedError:  # S3 and other remote storages have no local path
        path = None
    if path is not None:
        yield path
        return
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        with default_storage.open(key, "rb") as source:
            shutil.copyfileobj(source, tmp, CHUNK)
        tmp.flush()
        yield Path(tmp.name)
