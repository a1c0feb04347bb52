"""A new licence for a model that is already onboarded: a new revision with the same files and a new
`license.json` (design section 6, "Licence editor"). A ready revision never changes (its profile is
what agreements and acceptances were made against), so a licence is changed by a new version.

The profile given is checked here against the licence profile schema and with
`licensing.profiles.check` (the SPDX expression, the text), as onboarding checks an uploaded one."""

from __future__ import annotations

import json
import re

from django.db import IntegrityError, transaction

from acumos_portal.api.refusals import Refused
from licensing import profiles
from licensing.choices import ProfileSource
from licensing.services import NotAllowed, may_license
from marketplace import services as market_services
from marketplace import storage
from marketplace.choices import ArtifactKind
from marketplace.models import Revision

# As metadata.json's modelVersion (onboarding/schemas/model-metadata.json): what a version may look like.
VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+-]{0,49}")
# Not carried over: the licence is the point, and the onboarding log tells the upload of the revision it
# came from (this one was not uploaded).
NOT_COPIED = (ArtifactKind.LICENCE, ArtifactKind.LOG)


def relicense(user, revision: Revision, *, version: str, profile: dict) -> Revision:
    """A new ready revision of the same solution: the source's files (the same blobs: storage is
    content-addressed, nothing is copied), its image reference, and a new license.json with `profile`.
    The model's bytes passed their smoke test with the source, so it is marked ready at once, through
    marketplace's one path (revision_ready: licensing notes the profile with source "editor", search
    follows). The source revision is unchanged. Everything happens in one transaction."""
    solution = revision.solution
    if not may_license(user, solution):
        raise NotAllowed(f"only the owners of {solution.name} may change its licence")
    if not revision.is_ready:
        raise Refused(f"version {revision.version} is still being onboarded: change its licence once it is ready",
                      field="revision")
    version = checked_version(solution, version)
    if not isinstance(profile, dict):
        raise Refused("the licence profile is a JSON object (license.json)", field="profile")
    problems = profiles.schema_errors(profile)
    if problems:
        raise Refused(f"license.json does not match the schema: {problems[0]['field']}: {problems[0]['message']}",
                      field=f"profile.{problems[0]['field']}")
    summary = profiles.check(profile)
    with transaction.atomic():
        made = _new_revision(user, revision, version)
        _copy_artifacts(revision, made)
        market_services.artifact_add(made, ArtifactKind.LICENCE, blob=_licence_blob(summary.profile))
        market_services.revision_mark_ready(made)
    return made


def suggested_version(solution) -> str:
    """The next minor version after the solution's highest (1.2.0 -> 1.3.0), as an upload without a
    modelVersion gets; "1.0.0" when no version reads as one."""
    numbers = [_numbers(v) for v in solution.revisions.values_list("version", flat=True)]
    known = [n for n in numbers if n is not None]
    if not known:
        return "1.0.0"
    major, minor, _ = max(known)
    return f"{major}.{minor + 1}.0"


def _numbers(version: str) -> tuple[int, int, int] | None:
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    return (int(match[1]), int(match[2]), int(match[3] or 0)) if match else None


def checked_version(solution, version: str) -> str:
    """`version` trimmed, if it may be a new version of `solution`; else Refused naming the field."""
    version = (version or "").strip()
    if not VERSION.fullmatch(version):
        raise Refused("a version is 1 to 50 letters, digits, dots, + or -, starting with a letter or digit "
                      "(e.g. 1.1.0)", field="version")
    if solution.revisions.filter(version=version).exists():
        raise Refused(_taken(solution, version), field="version")
    return version


def _taken(solution, version: str) -> str:
    return f"{solution.name} has a version {version} already: choose a new version for the new licence"


def _new_revision(user, source: Revision, version: str) -> Revision:
    metadata = {**source.metadata, "licence_source": ProfileSource.EDITOR.value, "relicensed_from": str(source.pk)}
    try:
        with transaction.atomic():  # two saves of the same version at once: the second one is told so
            return Revision.objects.create(solution=source.solution, version=version, metadata=metadata,
                                           description=source.description, created_by=user)
    except IntegrityError:
        raise Refused(_taken(source.solution, version), field="version") from None


def _copy_artifacts(source: Revision, made: Revision) -> None:
    for artifact in source.artifacts.exclude(kind__in=NOT_COPIED).select_related("blob"):
        market_services.artifact_add(made, artifact.kind, blob=artifact.blob, uri=artifact.uri, name=artifact.name)


def _licence_blob(profile: dict):
    """The checked profile as license.json (its SPDX expression canonical). ensure_ascii keeps it ASCII
    whatever the text (a lone surrogate could not be written as UTF-8)."""
    blob, _ = storage.store_text(json.dumps(profile, indent=2) + "\n", ".json")
    return blob
