"""images.oci.copy_image between two real registries: the test registry on 127.0.0.1:5000 (with the runner
base image) and a throwaway second registry (tests/registries.py). Digests survive the copy, a second copy
sends nothing, only missing layers travel, mounts are used, and a source that lies is refused untagged."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from images import oci
from images.oci import CopyReport, ImageRef, Registry, RegistryError, RegistrySource, copy_image

from ..registries import throwaway_registry

ENV_FILE = Path(__file__).resolve().parents[2] / "build" / "images.env"
if not ENV_FILE.exists():
    pytest.skip(f"copy tests need the runner base image in the test registry; {ENV_FILE} is missing "
                f"(run `bash scripts/ensure-images.sh`)", allow_module_level=True)

MIRROR = "mirror/base"


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _blobs(body: bytes) -> list[dict]:
    manifest = json.loads(body)
    return [manifest["config"], *manifest["layers"]]


def _has_tag(registry: Registry, repository: str, tag: str) -> bool:
    try:
        registry.manifest_bytes(repository, tag)
    except RegistryError as error:
        assert error.status == 404, error
        return False
    return True


@pytest.fixture(scope="module")
def source(registry_host) -> Iterator[Registry]:
    with Registry(registry_host) as client:
        yield client


@pytest.fixture(scope="module")
def target() -> Iterator[Registry]:
    with throwaway_registry() as host, Registry(host) as client:
        yield client


@pytest.fixture(scope="module")
def base(base_image, source) -> dict:
    ref = ImageRef.parse(base_image)
    body, media_type, digest = source.manifest_bytes(ref.repository, ref.reference)
    blobs = _blobs(body)
    return {"ref": ref, "body": body, "digest": digest, "blobs": blobs,
            "size": sum(blob["size"] for blob in blobs)}


@pytest.fixture(scope="module")
def base_copy(base, source, target) -> CopyReport:
    """The base image copied once into the throwaway registry as mirror/base:v1."""
    return copy_image(RegistrySource(source, base["ref"].repository, base["ref"].reference), target, MIRROR, "v1")


@pytest.fixture(scope="module")
def extended(base, source, registry_host, tmp_path_factory) -> Iterator[dict]:
    """The base plus one small layer, pushed to the test registry; its manifest is deleted afterwards."""
    tree = tmp_path_factory.mktemp("extra")
    (tree / "extra.txt").write_text("one small extra layer\n" * 100)
    layer = oci.layer_from_tree({"app/extra": tree}, tmp_path_factory.mktemp("layer") / "layer.tar.gz")
    ref = ImageRef(registry_host, f"acumos-test/{uuid.uuid4().hex[:12]}", "extended")
    digest = oci.append_layers(source, base["ref"], ref, [layer], comment="copy test")
    body, _, _ = source.manifest_bytes(ref.repository, digest)
    yield {"ref": ref, "digest": digest, "layer": layer, "config": json.loads(body)["config"]}
    source.delete_image(ref.repository, digest)


# ---------------------------------------------------------------- copies between the two registries

def test_a_copy_keeps_the_digest_and_brings_every_blob(base, base_copy, target):
    body, media_type, digest = target.manifest_bytes(MIRROR, "v1")
    assert (body, digest) == (base["body"], base["digest"])
    assert (base_copy.digest, base_copy.media_type) == (base["digest"], media_type)
    assert all(target.blob_exists(MIRROR, blob["digest"]) for blob in base["blobs"])
    assert (base_copy.blobs_copied, base_copy.blobs_present, base_copy.blobs_mounted) == (len(base["blobs"]), 0, 0)
    assert (base_copy.bytes_copied, base_copy.bytes_skipped) == (base["size"], 0)
    assert base_copy.summary().startswith(f"Copied {len(base['blobs'])} of {len(base['blobs'])} blobs")


def test_a_second_copy_sends_nothing(base, base_copy, source, target):
    again = copy_image(RegistrySource(source, base["ref"].repository, base["ref"].reference), target, MIRROR, "v1")
    assert again.digest == base["digest"]
    assert (again.blobs_copied, again.bytes_copied) == (0, 0)
    assert (again.blobs_present, again.bytes_skipped) == (len(base["blobs"]), base["size"])
    assert "Copied 0 of" in again.summary() and "already there" in again.summary()


def test_an_image_on_the_base_moves_only_its_new_blobs(base, base_copy, extended, source, target):
    repository = f"app/{uuid.uuid4().hex[:12]}"
    # The target repository gets the base from the mirror in the same registry: mounts, nothing sent.
    local = copy_image(RegistrySource(target, MIRROR, "v1"), target, repository, "base", mount_from=[MIRROR])
    assert (local.blobs_mounted, local.bytes_copied) == (len(base["blobs"]), 0)

    report = copy_image(RegistrySource(source, extended["ref"].repository, "extended"), target, repository, "v2")
    assert report.digest == extended["digest"] == target.manifest_bytes(repository, "v2")[2]
    new_bytes = extended["layer"].size + extended["config"]["size"]
    assert (report.blobs_copied, report.bytes_copied) == (2, new_bytes)  # the new layer and the new config
    assert report.blobs_present == len(base["blobs"]) - 1  # every base layer; the base's config is not in it
    assert report.bytes_copied < 0.05 * base["size"]


def test_blobs_are_mounted_from_another_repository_of_the_target(base, base_copy, extended, source, target):
    repository = f"other/{uuid.uuid4().hex[:12]}"
    report = copy_image(RegistrySource(source, extended["ref"].repository, "extended"), target, repository, "v1",
                        mount_from=["nothing/here", MIRROR])
    assert report.blobs_mounted == len(base["blobs"]) - 1 > 0
    assert (report.blobs_copied, report.blobs_present) == (2, 0)
    assert report.bytes_copied < 0.05 * base["size"]
    assert target.manifest_bytes(repository, "v1")[2] == extended["digest"]


def test_a_registry_source_reports_blob_sizes(base, base_copy, target):
    mirror = RegistrySource(target, MIRROR, "v1")
    config = base["blobs"][0]
    assert mirror.blob_size(config["digest"]) == config["size"]
    assert mirror.blob_size(_sha256(b"not there")) is None


def test_an_image_list_is_refused_with_a_clear_message(base, base_copy, target):
    entry = {"mediaType": oci.DOCKER_MANIFEST, "digest": base["digest"], "size": len(base["body"]),
             "platform": {"os": "linux", "architecture": "amd64"}}
    body = json.dumps({"schemaVersion": 2, "mediaType": oci.DOCKER_MANIFEST_LIST, "manifests": [entry]}).encode()
    target.put_manifest(MIRROR, "list", body, oci.DOCKER_MANIFEST_LIST)
    with pytest.raises(RegistryError, match=r"mirror/base:list: this is an image list/index .*one platform"):
        copy_image(RegistrySource(target, MIRROR, "list"), target, "mirror/list", "v1")
    assert not _has_tag(target, "mirror/list", "v1")


# ---------------------------------------------------------------- sources that are not what they say

class FakeSource:
    """A small image held in memory; `served` replaces what open_blob sends for some digests."""

    def __init__(self, media_type: str = oci.DOCKER_MANIFEST, served: dict[str, bytes] | None = None,
                 layer_digest: str | None = None):
        self.config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
        self.layer = b"a layer that is only bytes " * 40
        self.blobs = {_sha256(self.config): self.config, _sha256(self.layer): self.layer}
        self.served = served or {}
        self.media_type = media_type
        layers = [{"mediaType": oci.DOCKER_LAYER, "size": len(self.layer),
                   "digest": layer_digest or _sha256(self.layer)}]
        self.body = json.dumps({"schemaVersion": 2, "mediaType": media_type, "layers": layers,
                                "config": {"mediaType": oci.DOCKER_CONFIG, "size": len(self.config),
                                           "digest": _sha256(self.config)}}).encode()
        self.digest = _sha256(self.body)

    def __str__(self) -> str:
        return "fake source"

    def manifest(self) -> tuple[bytes, str, str]:
        return self.body, self.media_type, self.digest

    def open_blob(self, digest: str) -> io.BytesIO:
        return io.BytesIO(self.served.get(digest, self.blobs[digest]))


@pytest.mark.parametrize(("lie", "complaint"), [
    (lambda layer: layer[:-1] + b"!", "does not match its digest"),
    (lambda layer: layer[:-1], "is not the 1080 bytes its manifest says"),
    (lambda layer: layer + b"!", "is not the 1080 bytes its manifest says"),
])
def test_a_blob_that_is_not_its_digest_is_refused_untagged_and_a_rerun_resumes(lie, complaint, target):
    honest = FakeSource()
    layer_digest = _sha256(honest.layer)
    liar = FakeSource(served={layer_digest: lie(honest.layer)})
    repository = f"lies/{uuid.uuid4().hex[:12]}"
    with pytest.raises(RegistryError, match=f"fake source: blob {layer_digest} {complaint}"):
        copy_image(liar, target, repository, "v1")
    assert not target.blob_exists(repository, layer_digest)
    assert not _has_tag(target, repository, "v1")

    resumed = copy_image(honest, target, repository, "v1")  # the config arrived before the lie: kept
    assert (resumed.blobs_present, resumed.blobs_copied, resumed.bytes_copied) == (1, 1, len(honest.layer))
    assert target.manifest_bytes(repository, "v1")[0] == honest.body


def test_a_manifest_that_is_not_its_digest_is_refused_before_any_blob_moves(target):
    source = FakeSource()
    source.digest = _sha256(b"another manifest")
    repository = f"lies/{uuid.uuid4().hex[:12]}"
    with pytest.raises(RegistryError, match="the manifest's bytes do not match its digest"):
        copy_image(source, target, repository, "v1")
    assert not target.blob_exists(repository, _sha256(source.config))


def test_a_manifest_with_a_malformed_blob_digest_is_refused(target):
    source = FakeSource(layer_digest="sha256:../../../v2/_catalog")
    with pytest.raises(RegistryError, match=r"fake source: digest 'sha256:\.\./.*' is not <algorithm>:<hex>"):
        copy_image(source, target, f"lies/{uuid.uuid4().hex[:12]}", "v1")


@pytest.mark.parametrize(("media_type", "complaint"), [
    (oci.OCI_INDEX, "this is an image list/index"),
    ("application/vnd.docker.distribution.manifest.v1+prettyjws", "only Docker schema 2 and OCI image manifests"),
])
def test_other_manifest_kinds_are_refused(media_type, complaint, target):
    with pytest.raises(RegistryError, match=complaint):
        copy_image(FakeSource(media_type=media_type), target, f"lies/{uuid.uuid4().hex[:12]}", "v1")


def test_bad_names_are_refused_before_anything_moves(target):
    with pytest.raises(ValueError, match="repository 'Not Valid'"):
        copy_image(FakeSource(), target, "Not Valid", "v1")
    with pytest.raises(ValueError, match="tag"):
        copy_image(FakeSource(), target, "fine/name", "bad tag")
