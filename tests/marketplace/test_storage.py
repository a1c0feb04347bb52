"""Content-addressed blob storage on local files: the same bytes are stored once, a referenced blob
is never deleted, and a write cut short leaves nothing under the content address."""

from __future__ import annotations

import hashlib

import pytest

from marketplace import storage
from marketplace.choices import ArtifactKind
from marketplace.models import Artifact, Blob

from ..factories import RevisionFactory
from ..onboarding.test_faults import file_size_limit, stored_files

pytestmark = pytest.mark.django_db


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_it_stores_the_same_bytes_once(tmp_path, artifact_storage):
    data = b"the same bytes\n" * 1000
    first, created = storage.store_file(write(tmp_path / "a.bin", data))
    again, created_again = storage.store_file(write(tmp_path / "b.bin", data))
    assert (created, created_again) == (True, False) and again.pk == first.pk
    digest = hashlib.sha256(data).hexdigest()
    assert (first.sha256, first.size, first.storage_key) == (digest, len(data), f"blobs/{digest[:2]}/{digest}")
    assert Blob.objects.count() == 1
    assert stored_files(artifact_storage) == [first.storage_key]
    with storage.open_blob(first) as handle:
        assert handle.read() == data


def test_it_stores_different_bytes_apart(tmp_path, artifact_storage):
    one, _ = storage.store_file(write(tmp_path / "a.bin", b"one"))
    two, _ = storage.store_file(write(tmp_path / "b.bin", b"two"))
    assert one.pk != two.pk
    assert stored_files(artifact_storage) == sorted([one.storage_key, two.storage_key])


def test_it_keeps_a_blob_an_artifact_references_and_deletes_an_orphan(tmp_path, artifact_storage):
    kept, _ = storage.store_file(write(tmp_path / "kept.bin", b"referenced"))
    orphan, _ = storage.store_file(write(tmp_path / "orphan.bin", b"orphan"))
    Artifact.objects.create(revision=RevisionFactory(), kind=ArtifactKind.MODEL, name="modelpackage.zip", blob=kept)

    assert storage.delete_blob_if_orphan(kept) is False
    assert storage.delete_blob_if_orphan(orphan) is True
    assert list(Blob.objects.values_list("pk", flat=True)) == [kept.pk]
    assert stored_files(artifact_storage) == [kept.storage_key]
    with storage.open_blob(kept) as handle:
        assert handle.read() == b"referenced"


def test_it_never_leaves_part_of_a_blob_under_its_content_address(tmp_path, artifact_storage):
    data = bytes(range(256)) * 64  # 16 KiB
    source = write(tmp_path / "big.bin", data)
    with pytest.raises(OSError, match="File too large"), file_size_limit(1000):
        storage.store_file(source)
    assert not Blob.objects.exists()
    assert stored_files(artifact_storage) == []

    blob, created = storage.store_file(source)  # the disk has room again
    assert created and (artifact_storage / blob.storage_key).read_bytes() == data


def test_it_gives_the_stored_file_itself_as_the_local_copy_of_a_local_blob(tmp_path, artifact_storage):
    blob, _ = storage.store_file(write(tmp_path / "a.bin", b"local"))
    with storage.local_copy(blob.storage_key) as path:
        assert path == artifact_storage / blob.storage_key
    assert path.exists()  # not a temporary copy: nothing to remove
