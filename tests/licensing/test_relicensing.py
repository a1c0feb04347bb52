"""licensing.relicensing: a new licence is a new ready version with the same files (the same blobs), its
image reference and a new license.json; the old version is unchanged; who may, and what is refused
with nothing made."""

from __future__ import annotations

import json

import pytest

from acumos_portal.api.refusals import Refused
from licensing import relicensing, templates
from licensing.choices import ProfileSource
from licensing.models import LicenceProfile
from licensing.services import NotAllowed
from marketplace import services, storage
from marketplace.choices import ArtifactKind, RevisionStatus
from marketplace.models import Blob, Revision, Solution
from marketplace.signals import revision_ready

from ..factories import RevisionFactory, SolutionFactory

pytestmark = pytest.mark.django_db

IMAGE_URI = "registry.example/models/iris@sha256:" + "a" * 64
APACHE = templates.render("apache-2.0", year=2024, company="Acme")
METADATA = {"schema": "acumos.schema.model:0.6.0", "name": "iris", "modelVersion": "1.0.0"}


def onboarded(owner, licence: dict | None = None, **solution_fields) -> Revision:
    """A ready version as onboarding leaves one: metadata, proto, model package, onboarding log, licence
    (Apache-2.0 unless told), an image; made ready through marketplace, so that its licence is noted."""
    revision = RevisionFactory(solution=SolutionFactory(owner=owner, **solution_fields), version="1.0.0",
                               status=RevisionStatus.ONBOARDING, ready_at=None, metadata=METADATA)
    parts = {ArtifactKind.METADATA: json.dumps(METADATA), ArtifactKind.PROTO: 'syntax = "proto3";\n',
             ArtifactKind.MODEL: f"model bytes of {revision.pk}", ArtifactKind.LOG: "onboarding log\n",
             ArtifactKind.LICENCE: json.dumps(licence or APACHE)}
    for kind, text in parts.items():
        services.artifact_add(revision, kind, blob=storage.store_text(text)[0])
    services.artifact_add(revision, ArtifactKind.IMAGE, name="iris:1.0.0", uri=IMAGE_URI)
    services.revision_mark_ready(revision)
    return revision


def proprietary(company: str = "Acme") -> dict:
    profile = templates.render("proprietary", year=2025, company=company)
    return {**profile, "licenseText": f"Copyright (c) 2025 {company}. Use needs a signed agreement.\n"}


def licence_file(revision: Revision) -> dict:
    artifact = revision.artifacts.get(kind=ArtifactKind.LICENCE)
    with storage.open_blob(artifact.blob) as handle:
        return json.load(handle)


def files_of(revision: Revision) -> dict:
    return {a.kind: (a.name, a.blob_id, a.uri) for a in revision.artifacts.all()}


@pytest.fixture
def source(owner):
    return onboarded(owner)


# ---------------------------------------------------------------- a new version

def test_it_makes_a_ready_version_with_the_new_licence(owner, source):
    mit = templates.render("mit", year=2025, company="Acme")
    made = relicensing.relicense(owner, source, version="1.1.0", profile=mit)
    made.refresh_from_db()
    assert (made.solution_id, made.version, made.status, made.created_by) == (
        source.solution_id, "1.1.0", RevisionStatus.READY, owner)
    assert made.ready_at is not None
    assert licence_file(made) == {**mit, "spdx": "MIT"}


def test_the_new_version_has_the_same_files_and_image_and_a_new_licence(owner, source):
    before = files_of(source)
    made = relicensing.relicense(owner, source, version="1.1.0", profile=proprietary())
    after = files_of(made)
    for kind in (ArtifactKind.METADATA, ArtifactKind.PROTO, ArtifactKind.MODEL, ArtifactKind.IMAGE):
        assert after[kind] == before[kind]  # the same blob, not a copy; the same image
    assert after[ArtifactKind.LICENCE][1] != before[ArtifactKind.LICENCE][1]
    assert ArtifactKind.LOG not in after  # the source's onboarding log tells another upload
    assert files_of(source) == before and licence_file(source) == APACHE


def test_the_old_version_keeps_its_licence_profile(owner, source):
    old = LicenceProfile.objects.get(revision=source)
    relicensing.relicense(owner, source, version="1.1.0", profile=proprietary())
    kept = LicenceProfile.objects.get(revision=source)
    assert (kept.spdx, kept.rtu_required, kept.source, kept.profile) == (
        "Apache-2.0", False, ProfileSource.UPLOADED, old.profile)


def test_the_profile_is_noted_with_source_editor_and_search_follows_it(owner, source):
    made = relicensing.relicense(owner, source, version="1.1.0", profile=proprietary("Acme Labs"))
    noted = LicenceProfile.objects.get(revision=made)
    assert (noted.source, noted.spdx, noted.rtu_required) == (
        ProfileSource.EDITOR, "LicenseRef-Acme-Labs-Proprietary", True)
    assert noted.text_sha256 and len(noted.text_sha256) == 64
    solution = Solution.objects.get(pk=source.solution_id)
    assert (solution.licence, solution.licence_ids, solution.rtu_required) == (
        "LicenseRef-Acme-Labs-Proprietary", " LicenseRef-Acme-Labs-Proprietary ", True)


def test_the_metadata_is_copied_and_says_where_the_licence_came_from(owner, source):
    made = relicensing.relicense(owner, source, version="1.1.0", profile=APACHE)
    assert made.metadata == {**METADATA, "licence_source": "editor", "relicensed_from": str(source.pk)}
    assert made.description == source.description


def test_revision_ready_is_sent_once_for_the_new_version(owner, source):
    heard = []

    def listen(sender, revision, **kwargs):
        heard.append(revision.pk)

    revision_ready.connect(listen, dispatch_uid="test-relicense")
    try:
        made = relicensing.relicense(owner, source, version="1.1.0", profile=APACHE)
    finally:
        revision_ready.disconnect(dispatch_uid="test-relicense")
    assert heard == [made.pk]


def test_an_expression_is_saved_canonical(owner, source):
    made = relicensing.relicense(owner, source, version="1.1.0", profile={**APACHE, "spdx": "apache-2.0 or mit"})
    assert licence_file(made)["spdx"] == "Apache-2.0 OR MIT"
    assert Solution.objects.get(pk=source.solution_id).licence_ids == " Apache-2.0 MIT "


def test_a_co_owner_may_relicense(owner, co_owner, source):
    services.share(owner, source.solution, co_owner.username)
    made = relicensing.relicense(co_owner, source, version="2.0.0", profile=APACHE)
    assert made.created_by == co_owner


def test_the_next_version_is_suggested(owner, source):
    assert relicensing.suggested_version(source.solution) == "1.1.0"
    relicensing.relicense(owner, source, version="1.4.2", profile=APACHE)
    assert relicensing.suggested_version(source.solution) == "1.5.0"


# ---------------------------------------------------------------- refused, with nothing made

def nothing_made(action) -> Refused:
    revisions, blobs = Revision.objects.count(), Blob.objects.count()
    with pytest.raises(Refused) as caught:
        action()
    assert (Revision.objects.count(), Blob.objects.count()) == (revisions, blobs)
    return caught.value


def test_someone_who_does_not_own_the_model_is_refused(other_user, source):
    refused = nothing_made(lambda: relicensing.relicense(other_user, source, version="1.1.0", profile=APACHE))
    assert isinstance(refused, NotAllowed) and refused.status == 403
    assert "only the owners" in refused.message


def test_an_imported_model_is_refused(owner):
    imported = onboarded(owner, imported_from="CN=peer.example")
    refused = nothing_made(lambda: relicensing.relicense(owner, imported, version="1.1.0", profile=APACHE))
    assert isinstance(refused, NotAllowed)


def test_a_duplicate_version_is_refused_naming_the_field(owner, source):
    refused = nothing_made(lambda: relicensing.relicense(owner, source, version="1.0.0", profile=APACHE))
    assert refused.field == "version"
    assert "has a version 1.0.0 already" in refused.message


@pytest.mark.parametrize("version", ["", "  ", "-1", "1.0 beta", "v" * 51])
def test_a_version_that_is_not_one_is_refused(owner, source, version):
    refused = nothing_made(lambda: relicensing.relicense(owner, source, version=version, profile=APACHE))
    assert refused.field == "version"


def test_an_invalid_spdx_expression_is_refused_with_nothing_made(owner, source):
    refused = nothing_made(lambda: relicensing.relicense(owner, source, version="1.1.0",
                                                         profile={**APACHE, "spdx": "MIT OR Foo-1.0"}))
    assert refused.field == "license.json spdx"
    assert "unknown licence id 'Foo-1.0'" in refused.message
    assert list(source.solution.revisions.values_list("version", flat=True)) == ["1.0.0"]


def test_a_profile_that_is_not_an_object_is_refused(owner, source):
    assert nothing_made(lambda: relicensing.relicense(owner, source, version="1.1.0", profile=["MIT"])).field == (
        "profile")


def test_a_version_still_onboarding_is_refused(owner):
    onboarding = RevisionFactory(solution=SolutionFactory(owner=owner), status=RevisionStatus.ONBOARDING)
    refused = nothing_made(lambda: relicensing.relicense(owner, onboarding, version="9.0.0", profile=APACHE))
    assert refused.field == "revision"
