"""Signed revision manifests and tombstones.

A manifest says what a revision is: its solution and version, its metadata, its licence profile,
every file artifact's sha256 and size, its image's manifest digest, and the instance it was onboarded
on. The origin signs it (federation.signing); an imported revision keeps the origin's manifest and
signature unchanged, so a model that travels A -> B -> C still proves at C that A made it. A
tombstone says, signed, that an instance withdrew a revision from a catalog."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from federation import identity, signing
from federation.certificates import CertificateProblem, load_bundle
from federation.choices import PeerStatus, SignatureStatus
from federation.models import ChangeEvent, Peer, RevisionOrigin
from images import oci
from images import services as image_services
from marketplace import storage
from marketplace.choices import ArtifactKind
from marketplace.models import Revision

SCHEMA = "acumos-federation-manifest/1"
TOMBSTONE = "acumos-federation-tombstone/1"
# Artifacts that are files and travel: the bundle, its descriptors and the onboarding log. The image
# travels by its digest; its build log is the origin's own business.
FILE_KINDS = (ArtifactKind.METADATA, ArtifactKind.PROTO, ArtifactKind.MODEL, ArtifactKind.LICENCE,
              ArtifactKind.PROTOBUF_JSON, ArtifactKind.TGIF, ArtifactKind.LOG)
MAX_MANIFEST_BYTES = 256 << 10


class ManifestRefused(Exception):
    """A manifest (or tombstone) that is not to be believed, with the sentence that says why."""


# ---------------------------------------------------------------- the origin's side

def origin_of(revision: Revision) -> RevisionOrigin:
    """The revision's manifest and signature: kept as imported, or made and signed here the first
    time a peer asks for a revision onboarded here (ready revisions never change, so it stays true)."""
    existing = RevisionOrigin.objects.filter(revision=revision).first()
    if existing is not None and (existing.signature_status != SignatureStatus.LOCAL or _image_current(existing)):
        return existing
    me = identity.load()
    manifest = build(revision, me)
    if existing is not None:  # its image was rebuilt (or built) since it was signed: sign what it is now
        RevisionOrigin.objects.filter(pk=existing.pk).update(manifest=manifest, signature=signing.sign(manifest, me),
                                                             signer_sha256=me.fingerprint)
        return RevisionOrigin.objects.get(pk=existing.pk)
    try:
        with transaction.atomic():
            return RevisionOrigin.objects.create(
                revision=revision, manifest=manifest, signature=signing.sign(manifest, me), origin_name=me.name,
                origin_instance=me.instance_id, signer_sha256=me.fingerprint,
                signature_status=SignatureStatus.LOCAL, hops=[me.name])
    except IntegrityError:  # two peers asked at once: the other made it
        return RevisionOrigin.objects.get(revision=revision)


def _image_current(origin: RevisionOrigin) -> bool:
    """The signed image is still the revision's (a rebuild replaces it; its other artifacts never change)."""
    image = origin.revision.artifacts.filter(kind=ArtifactKind.IMAGE).exclude(uri="").values_list("uri", flat=True)
    uri = next(iter(image), None)
    signed = (origin.manifest.get("image") or {}).get("digest")
    if uri is None:
        return signed is None
    ref = oci.ImageRef.parse(uri)
    return bool(ref.digest) and ref.digest == signed


def build(revision: Revision, me) -> dict:
    solution = revision.solution
    artifacts = revision.artifacts.select_related("blob")
    files = [{"kind": a.kind, "name": a.name, "sha256": a.blob.sha256, "size": a.blob.size}
             for a in artifacts if a.kind in FILE_KINDS and a.blob_id]
    image = next((a for a in artifacts if a.kind == ArtifactKind.IMAGE and a.uri), None)
    return {
        "schema": SCHEMA,
        "origin": {"name": me.name, "instance": str(me.instance_id)},
        "solution": {"id": str(solution.id), "name": solution.name, "description": solution.description,
                     "modelType": solution.model_type, "toolkit": solution.toolkit,
                     "tags": sorted(solution.tags.values_list("name", flat=True))},
        "revision": {"id": str(revision.id), "version": revision.version, "description": revision.description,
                     "created": revision.created.isoformat(), "metadata": revision.metadata},
        "licence": _licence_profile(revision),
        "artifacts": sorted(files, key=lambda f: f["kind"]),
        "image": _image_entry(image.uri) if image else None,
        "signed": timezone.now().isoformat(),
    }


def _licence_profile(revision: Revision) -> dict | None:
    """The licence profile travels inside the signed manifest (licensing reads it from there)."""
    artifact = revision.artifacts.filter(kind=ArtifactKind.LICENCE).select_related("blob").first()
    if artifact is None or artifact.blob is None:
        return None
    with storage.open_blob(artifact.blob) as handle:
        data = handle.read(MAX_MANIFEST_BYTES)
    try:
        return json.loads(data)
    except ValueError:
        return None


def _image_entry(uri: str) -> dict:
    """The image by its manifest's digest: what a copy anywhere must match."""
    ref = oci.ImageRef.parse(uri)
    if ref.digest:
        digest = ref.digest
    else:
        with image_services.registry(ref.registry) as registry:
            _, _, digest = registry.manifest_bytes(ref.repository, ref.reference)
    return {"digest": digest}


def tombstone(event: ChangeEvent) -> dict:
    """The signed statement that this instance withdrew a revision from a catalog."""
    me = identity.load()
    document = {"schema": TOMBSTONE, "origin": {"name": me.name, "instance": str(me.instance_id)},
                "catalogId": str(event.catalog_id), "solutionId": str(event.solution_id),
                "revisionId": str(event.revision_id), "withdrawn": event.created.isoformat(), "seq": event.seq}
    return {"document": document, "signature": signing.sign(document, me)}


# ---------------------------------------------------------------- the subscriber's side

@dataclass(frozen=True)
class Checked:
    """A manifest whose signature holds, and what that proves here."""

    manifest: dict
    signature: dict
    signer: signing.Signer
    status: str


# Peers whose registered certificate says who signed a manifest: those an admin registered (active or
# not), never one that only asked to join, nor one declined.
KNOWN = (PeerStatus.ACTIVE, PeerStatus.INACTIVE)


def anchors_for(signer_name: str) -> list:
    """What may vouch for a signer of this name: this instance's own certificate and CA for its own
    name, else the certificate or CA registered for the peer of that subject. A peer's CA vouches for
    its own instance only: B's CA minting a certificate named C proves nothing about C."""
    if identity.exists() and identity.load().name == signer_name:
        return identity.load().anchors
    anchors = []
    for pem in Peer.objects.filter(subject=signer_name, status__in=KNOWN).values_list("certificate", flat=True):
        try:
            anchors += load_bundle(pem)
        except CertificateProblem:
            continue
    return anchors


def check(manifest: dict, signature: dict, *, solution_id: str, revision_id: str) -> Checked:
    """Believe a revision's manifest only if its signature holds, its signer is the origin it names,
    and it is about the revision it came with; ManifestRefused otherwise."""
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise ManifestRefused(f"the manifest is not a {SCHEMA} document")
    if len(signing.canonical(manifest)) > MAX_MANIFEST_BYTES:
        raise ManifestRefused(f"the manifest is over {MAX_MANIFEST_BYTES >> 10} KiB")
    try:
        signer = signing.verify(manifest, signature, [])
        signer = signing.verify(manifest, signature, anchors_for(signer.name))
    except signing.BadSignature as exc:
        raise ManifestRefused(str(exc)) from exc
    origin = manifest.get("origin") or {}
    if signer.name != origin.get("name"):
        raise ManifestRefused(f"the manifest names {origin.get('name')!r} as its origin but {signer.name!r} signed it")
    if (manifest.get("solution") or {}).get("id") != str(solution_id) or \
            (manifest.get("revision") or {}).get("id") != str(revision_id):
        raise ManifestRefused("the manifest is about another revision than the one it came with")
    status = SignatureStatus.VERIFIED if signer.trusted else SignatureStatus.UNKNOWN_SIGNER
    return Checked(manifest=manifest, signature=signature, signer=signer, status=status)


def check_tombstone(signed: dict, *, peer: Peer, revision_id: str) -> dict:
    """A tombstone is believed when the peer it came from signed it, about this revision."""
    document, signature = (signed or {}).get("document"), (signed or {}).get("signature")
    if not isinstance(document, dict) or document.get("schema") != TOMBSTONE:
        raise ManifestRefused(f"the withdrawal is not a signed {TOMBSTONE} document")
    try:
        signer = signing.verify(document, signature, load_bundle(peer.certificate))
    except (signing.BadSignature, CertificateProblem) as exc:
        raise ManifestRefused(f"the withdrawal's signature does not hold: {exc}") from exc
    if not signer.trusted or signer.name != peer.subject:
        raise ManifestRefused(f"the withdrawal was signed by {signer.name!r}, not by the peer {peer.name}")
    if document.get("revisionId") != str(revision_id):
        raise ManifestRefused("the withdrawal is about another revision")
    return document
