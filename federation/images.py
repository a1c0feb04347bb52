"""A revision's image, copied from a peer's registry into this site's through the peer API: the
manifest from artifacts/<id>/content, each blob from artifacts/<id>/blobs/<digest>, written with
images.oci.copy_image (blobs this registry has are skipped or mounted from the runner base, never
sent again; every blob's digest is checked as it streams). The image must be the one the signed
manifest names: its manifest's digest is checked before a byte of it is copied."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from dataclasses import dataclass

from django.conf import settings

from federation.client import PeerClient
from images import oci
from images import services as image_services
from marketplace.choices import ArtifactKind
from marketplace.models import Artifact, Revision, Solution

CHUNK = 1 << 20


class WrongImage(Exception):
    """The peer's image is not the one its signed manifest names."""


@dataclass(frozen=True)
class Copied:
    ref: oci.ImageRef
    report: oci.CopyReport
    created: bool  # this copy made the tag (an import that fails then removes it; never one that was there)

    @property
    def name_and_uri(self) -> tuple[str, str]:
        """As an image build records an image: its name without the digest, its uri with it."""
        return str(oci.ImageRef(self.ref.registry, self.ref.repository, self.ref.tag)), str(self.ref)


class _Stream:
    """A blob streamed from the peer, as oci.BlobStream, within the client's deadline."""

    def __init__(self, response, client: PeerClient):
        self.response = response
        self.client = client
        self.chunks = client.chunks(response, CHUNK)
        self.buffer = b""

    def read(self, size: int = -1) -> bytes:
        self.client.check_deadline()
        while size < 0 or len(self.buffer) < size:
            try:
                self.buffer += next(self.chunks)
            except StopIteration:
                break
        size = len(self.buffer) if size < 0 else size
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def __iter__(self):
        while data := self.read(CHUNK):
            yield data

    def close(self) -> None:
        self.response.close()


class PeerImageSource:
    """An image artifact of a peer, as oci.ImageSource."""

    def __init__(self, client: PeerClient, artifact_id: str, expected_digest: str):
        self.client, self.artifact_id, self.expected = client, artifact_id, expected_digest

    def __str__(self) -> str:
        return f"peer {self.client.peer.name}: image {self.expected}"

    def manifest(self) -> tuple[bytes, str, str]:
        body, content_type = self.client.raw(f"artifacts/{self.artifact_id}/content")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if digest != self.expected:
            raise WrongImage(f"the peer's image is {digest}, but its signed manifest names {self.expected}")
        return body, content_type.split(";")[0].strip(), digest

    def open_blob(self, digest: str) -> _Stream:
        return _Stream(self.client.stream(f"artifacts/{self.artifact_id}/blobs/{digest}"), self.client)


def why_no_copy(manifest: dict) -> str:
    if not manifest.get("image"):
        return "the origin has no image for it"
    return f"its image was not copied: {image_services.configuration_problem() or 'no registry here'}"


def copy(client: PeerClient, manifest: dict, detail: dict, artifact_id: str) -> Copied | None:
    """Copy the image the manifest names into this site's registry, under the name an image build of
    this revision would have; None when this site has no registry configured."""
    if image_services.configuration_problem():
        return None
    target = target_for(manifest)
    expected = str(manifest["image"].get("digest", ""))
    source = PeerImageSource(client, artifact_id, expected)
    with image_services.registry(target.registry) as registry:
        there = registry.tag_digest(target.repository, target.tag)
        if there is not None and there != expected:
            raise WrongImage(f"{target} holds another image ({there}) already; it is not replaced")
        report = oci.copy_image(source, registry, target.repository, target.tag, mount_from=mount_candidates(target))
    return Copied(ref=oci.ImageRef(target.registry, target.repository, target.tag, report.digest), report=report,
                  created=there is None)


def target_for(manifest: dict) -> oci.ImageRef:
    """Where an imported image goes: a repository of imports named by the full solution id (a local
    model's repository is never one of them, whatever name or id the peer gives), tagged by version."""
    local = image_services.target_for(_unsaved_revision(manifest))
    repository = f"{settings.ACUMOS_IMAGE_REPOSITORY}/imported/{_unsaved_revision(manifest).solution.id}"
    return oci.ImageRef(local.registry, repository, local.tag)


MOUNT_CANDIDATES = 6


def mount_candidates(target: oci.ImageRef) -> list[str]:
    """Repositories of this registry likely to hold the image's blobs, to mount them from instead of
    fetching them: the runner base's, then those of the latest images here (models built on the same
    base with the same dependencies share their dependency layer). A few: each is one request a blob."""
    base = image_services.base_image()
    found = [base.repository] if base.registry == target.registry else []
    uris = (Artifact.objects.filter(kind=ArtifactKind.IMAGE, uri__startswith=f"{target.registry}/")
            .order_by("-created").values_list("uri", flat=True)[:50])
    for uri in uris:
        with contextlib.suppress(ValueError):
            repository = oci.ImageRef.parse(uri).repository
            if repository not in found and repository != target.repository:
                found.append(repository)
        if len(found) >= MOUNT_CANDIDATES:
            break
    return found


def discard(copied: Copied) -> None:
    """Untag an image copied for an import that then failed (its blobs stay for the next try); only
    a tag this copy made."""
    if not copied.created:
        return
    with contextlib.suppress(oci.RegistryError), image_services.registry(copied.ref.registry) as registry:
        registry.delete_image(copied.ref.repository, copied.ref.digest)


def _unsaved_revision(manifest: dict) -> Revision:
    about = manifest["solution"]
    solution = Solution(id=uuid.UUID(str(about["id"])), name=str(about.get("name", "model")))
    return Revision(solution=solution, version=str(manifest["revision"].get("version", "1")))
