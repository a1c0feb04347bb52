"""The peer API (Acumos E5 paths, README "Federation"): what another marketplace reads from this one,
over mutual TLS through the terminator. Every view gets the calling peer from envelope.peer_api and
reads only through federation.selectors, which decide what that peer sees."""

from __future__ import annotations

import json
import re
from uuid import UUID

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse

from federation import identity, manifests, selectors, services, signing, transfer
from federation.api import serializers
from federation.api.envelope import not_found, ok, peer_api, refused
from federation.choices import ChangeKind
from images import oci
from licensing import exports, policy
from licensing.choices import Action
from licensing.models import Agreement
from marketplace.choices import ArtifactKind

CHANGES_LIMIT = 500
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _uuid(value) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None


@peer_api()
def ping(request, peer):
    me = identity.load()
    return ok({"name": me.name, "instance": str(me.instance_id), "apiUrl": settings.ACUMOS_FEDERATION_URL,
               "fingerprint": me.fingerprint, "you": peer.name}, "pong")


@peer_api()
def catalogs(request, peer):
    return ok([serializers.catalog(c) for c in selectors.catalogs_for(peer)], "catalogs this peer may read")


@peer_api()
def solutions(request, peer):
    catalog_id = _uuid(request.GET.get("catalogId"))
    if catalog_id is None:
        return refused("invalid", "catalogId is required: the id of a catalog from /federation/catalogs", 400)
    catalog = selectors.catalog_for(peer, catalog_id)
    if catalog is None:
        return not_found("catalog")
    found = selectors.solutions_for(peer, catalog).prefetch_related("tags")
    return ok([serializers.solution(s) for s in found], f"solutions in {catalog.name}")


@peer_api()
def solution(request, peer, solution_id):
    found = selectors.solutions_for(peer).filter(pk=solution_id).prefetch_related("tags").first()
    return ok(serializers.solution(found)) if found else not_found("solution")


@peer_api()
def revisions(request, peer, solution_id):
    found = selectors.revisions_for(peer).filter(solution_id=solution_id).order_by("created")
    return ok([serializers.revision(r) for r in found])


@peer_api()
def revision(request, peer, solution_id, revision_id):
    """One revision with its signed manifest: what a subscriber checks every byte against. A licence
    that needs an agreement also sends the peer's agreement, signed as the manifest is; the export is
    counted once, when the peer first asks."""
    found = selectors.revision_for(peer, solution_id, revision_id)
    if found is None:
        return not_found("revision")
    try:
        origin = manifests.origin_of(found)
    except oci.RegistryError as exc:  # the image's digest could not be read: say so, try again later
        return refused("registry_unavailable", f"this revision's image cannot be described just now: {exc}", 503)
    try:
        agreement = _export(peer, found)
    except policy.LicenceDenied as denied:
        return refused(denied.code, denied.message, denied.status)
    body = serializers.revision(found, origin)
    if agreement is not None:
        body["agreement"] = agreement
    return ok(body)


def _export(peer, revision) -> dict | None:
    """The policy's word on sending `revision` to `peer` (LicenceDenied if not), and the agreement that
    allows it as a signed {document, signature}; None for a licence that needs no agreement. A revision
    the peer received before takes nothing more from the count (the dates, a revocation and a
    prohibition still hold: the policy's swap-in check is that one)."""
    who = policy.Who.for_peer(peer.subject)
    if exports.already_exported(peer.subject, revision):
        decision = policy.authorize(who, revision, Action.EXPORT, swap_in=True)
    else:
        decision = policy.authorize(who, revision, Action.EXPORT, consume=1, kind="revision")
    if decision.agreement_id is None:
        return None
    document = exports.agreement_document(Agreement.objects.get(pk=decision.agreement_id))
    return {"document": document, "signature": signing.sign(document, identity.load())}


@peer_api()
def artifacts(request, peer, solution_id, revision_id):
    found = selectors.revision_for(peer, solution_id, revision_id)
    if found is None:
        return not_found("revision")
    listed = found.artifacts.select_related("blob").exclude(kind=ArtifactKind.BUILD_LOG)
    return ok([serializers.artifact(a) for a in listed])


@peer_api()
def artifact_content(request, peer, artifact_id):
    """A file artifact's bytes, streamed, with Range (an interrupted transfer resumes); for the image,
    its manifest (its layers come from artifact_blob)."""
    artifact = selectors.artifact_for(peer, artifact_id)
    if artifact is None:
        return not_found("artifact")
    if artifact.kind == ArtifactKind.IMAGE:
        return _image_manifest(artifact)
    if artifact.blob is None:
        return not_found("artifact content")
    return transfer.ranged_blob_response(request, artifact.blob, artifact.file_name)


def _image_manifest(artifact) -> HttpResponse:
    try:
        body, media_type, digest = transfer.image_manifest(artifact)
    except oci.RegistryError as exc:
        return refused("registry_unavailable", f"the image cannot be read just now: {exc}", 503)
    response = HttpResponse(body, content_type=media_type)
    response["Docker-Content-Digest"] = digest
    return response


@peer_api()
def artifact_blob(request, peer, artifact_id, digest):
    """A layer or the config of an image artifact, streamed from this site's registry; only the
    blobs that image names (the registry holds others' too)."""
    artifact = selectors.artifact_for(peer, artifact_id)
    if artifact is None or artifact.kind != ArtifactKind.IMAGE or not DIGEST.match(digest):
        return not_found("image blob")
    try:
        stream = transfer.image_blob(artifact, digest)
    except transfer.NotInImage:
        return not_found("image blob")
    except oci.RegistryError as exc:
        return refused("registry_unavailable", f"the image cannot be read just now: {exc}", 503)
    response = StreamingHttpResponse(stream, content_type="application/octet-stream")
    response["Docker-Content-Digest"] = digest
    return response


@peer_api()
def changes(request, peer):
    """The catalog's changes after `since` (a cursor from an earlier answer), oldest first, at most
    `limit`: a subscriber reads only what changed since its last run. A withdrawal carries a signed
    tombstone. `since` omitted or 0: the catalog's whole current content, as published events."""
    catalog = selectors.catalog_for(peer, _uuid(request.GET.get("catalogId")))
    if catalog is None:
        return not_found("catalog")
    try:
        since = int(request.GET.get("since") or 0)
        limit = min(max(int(request.GET.get("limit") or CHANGES_LIMIT), 1), CHANGES_LIMIT)
    except ValueError:
        return refused("invalid", "since and limit must be whole numbers", 400)
    events = selectors.changes_for(peer, catalog, since, limit)
    names = selectors.names_of([e.revision_id for e in events])
    body = [serializers.change(e, manifests.tombstone(e) if e.kind == ChangeKind.WITHDRAWN else None,
                               names.get(e.revision_id)) for e in events]
    cursor = events[-1].seq if events else max(since, 0)
    return ok({"changes": body, "cursor": cursor, "more": len(events) == limit,
               "latest": selectors.latest_change(catalog)})


@peer_api(methods=("POST",), registered=False)
def register(request, caller):
    """An unknown instance asks to become a peer (if this site allows it): an admin decides."""
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return refused("invalid", "the body must be JSON: {\"apiUrl\": ..., \"contact\": ...}", 400)
    status = services.request_registration(caller, body if isinstance(body, dict) else {})
    return ok({"status": status}, "an admin of this site will review the request", status=202)
