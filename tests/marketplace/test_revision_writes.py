"""marketplace.services' revision writes: a ready revision's artifacts never change, except its
image and build log, which a rebuild replaces; undoing an onboarding never removes a ready revision."""

from __future__ import annotations

import pytest

from marketplace import services, storage
from marketplace.choices import ArtifactKind, RevisionStatus
from marketplace.models import Artifact, Blob, Revision, Solution
from marketplace.signals import revision_ready
from tests.factories import RevisionFactory

pytestmark = pytest.mark.django_db


def blob(text: str) -> Blob:
    return storage.store_text(text, ".txt")[0]


def kinds(revision: Revision) -> set[str]:
    return set(revision.artifacts.values_list("kind", flat=True))


def test_a_ready_revision_refuses_a_new_artifact_and_keeps_what_it_has():
    revision = RevisionFactory()
    Artifact.objects.create(revision=revision, kind=ArtifactKind.MODEL, name="modelpackage.zip", blob=blob("model"))

    with pytest.raises(services.RevisionImmutable, match="is ready and can no longer change"):
        services.artifact_add(revision, ArtifactKind.LOG, blob=blob("log"))

    assert kinds(revision) == {ArtifactKind.MODEL}


def test_a_revision_still_onboarding_takes_artifacts():
    revision = RevisionFactory(status=RevisionStatus.ONBOARDING, ready_at=None)

    artifact = services.artifact_add(revision, ArtifactKind.LOG, blob=blob("log"))

    assert artifact.name == "onboarding.log"  # named after its kind's file
    assert kinds(revision) == {ArtifactKind.LOG}


def test_a_rebuild_replaces_the_image_and_build_log_of_a_ready_revision_and_nothing_else():
    revision = RevisionFactory()
    model = Artifact.objects.create(revision=revision, kind=ArtifactKind.MODEL, name="modelpackage.zip",
                                    blob=blob("model"))
    first_log = blob("first build")
    services.revision_set_image(revision, "registry/iris:1", "registry/iris:1@sha256:aa", first_log)

    replaced = services.revision_set_image(revision, "registry/iris:1", "registry/iris:1@sha256:bb",
                                           blob("second build"))

    assert replaced == [first_log]  # the caller deletes it once nothing uses it
    assert kinds(revision) == {ArtifactKind.MODEL, ArtifactKind.IMAGE, ArtifactKind.BUILD_LOG}
    assert revision.artifacts.get(kind=ArtifactKind.IMAGE).uri == "registry/iris:1@sha256:bb"
    assert revision.artifacts.get(kind=ArtifactKind.BUILD_LOG).blob.sha256 != first_log.sha256
    assert revision.artifacts.get(kind=ArtifactKind.MODEL) == model


def test_discarding_leaves_a_ready_revision_and_its_solution_alone():
    revision = RevisionFactory()

    services.revision_discard(revision.pk, solution_id=revision.solution_id)

    assert Revision.objects.filter(pk=revision.pk).exists()
    assert Solution.objects.filter(pk=revision.solution_id).exists()


def test_discarding_an_unfinished_revision_takes_the_solution_made_for_it():
    revision = RevisionFactory(status=RevisionStatus.ONBOARDING, ready_at=None)

    services.revision_discard(revision.pk, solution_id=revision.solution_id)

    assert not Revision.objects.filter(pk=revision.pk).exists()
    assert not Solution.objects.filter(pk=revision.solution_id).exists()


def test_marking_ready_sends_the_signal_once():
    revision = RevisionFactory(status=RevisionStatus.ONBOARDING, ready_at=None)
    sent = []

    def receiver(sender, revision, **kwargs):
        sent.append(revision.pk)

    revision_ready.connect(receiver)
    try:
        services.revision_mark_ready(revision)
        services.revision_mark_ready(revision)
    finally:
        revision_ready.disconnect(receiver)

    assert sent == [revision.pk]
    assert revision.status == RevisionStatus.READY and revision.ready_at is not None
