"""Content-addressed artifact storage on Django's default storage (local files or S3).

A blob's key is derived from its sha256, so the same bytes are stored once, and a stored blob is
never rewritten. Everything streams: nothing here reads a whole file into memory."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

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
        with open(path, "rb") as handle:
            default_storage.save(key, File(handle))
    try:
        with transaction.atomic():
            return Blob.objects.create(sha256=sha256, size=size, storage_key=key), True
    except IntegrityError:  # another job stored the same bytes at the same moment
        return Blob.objects.get(sha256=sha256), False


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
