"""How the peer API writes solutions, revisions, artifacts and catalogs: Acumos's field names
(solutionId, revisionId, artifactTypeCode...), plain dicts."""

from __future__ import annotations

from federation.models import ChangeEvent, RevisionOrigin
from marketplace.models import Artifact, Catalog, Revision, Solution


def catalog(c: Catalog) -> dict:
    return {"catalogId": str(c.id), "name": c.name, "description": c.description, "accessTypeCode": c.access,
            "created": c.created.isoformat()}


def solution(s: Solution) -> dict:
    return {"solutionId": str(s.id), "name": s.name, "description": s.description, "modelTypeCode": s.model_type,
            "toolkitTypeCode": s.toolkit, "tags": sorted(t.name for t in s.tags.all()),
            "created": s.created.isoformat(), "modified": s.modified.isoformat()}


def revision(r: Revision, origin: RevisionOrigin | None = None) -> dict:
    body = {"revisionId": str(r.id), "solutionId": str(r.solution_id), "version": r.version,
            "description": r.description, "metadata": r.metadata, "created": r.created.isoformat(),
            # What this instance measured in its own smoke test; an importer measures again in its own.
            "resources": r.resources}
    if origin is not None:
        body.update({"manifest": origin.manifest, "signature": origin.signature,
                     "origin": {"name": origin.origin_name, "instance": str(origin.origin_instance),
                                "hops": origin.hops}})
    return body


def artifact(a: Artifact) -> dict:
    return {"artifactId": str(a.id), "artifactTypeCode": a.kind, "name": a.name, "sha256": a.sha256,
            "size": a.size, "uri": f"artifacts/{a.id}/content"}


def change(event: ChangeEvent, tombstone: dict | None, name: tuple[str, str] | None = None) -> dict:
    """`name` and `version` say what changed, for a subscriber's dry run and pages (empty when the
    revision is gone); what is imported is what the signed manifest says."""
    body = {"seq": event.seq, "kind": event.kind, "catalogId": str(event.catalog_id),
            "solutionId": str(event.solution_id), "revisionId": str(event.revision_id),
            "name": name[0] if name else "", "version": name[1] if name else "",
            "created": event.created.isoformat()}
    if tombstone is not None:
        body["tombstone"] = tombstone
    return body
