"""My models, the model and revision pages, and downloads of a private model: visible to the owner
(and portal admins), a 404 for everyone else; My models sends anonymous visitors to sign in."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest
from django.urls import reverse

from marketplace.choices import ArtifactKind, RevisionStatus
from marketplace.models import Revision
from onboarding.models import OnboardingJob
from onboarding.services import onboarding_start

from ..factories import RevisionFactory, SolutionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def revision(owner, bundle_parts, inline_jobs, settings) -> Revision:
    """The example bundle onboarded by `owner` (smoke test off: these tests are about the pages)."""
    settings.ACUMOS_SMOKE_TEST = False
    with inline_jobs():
        job = onboarding_start(user=owner, parts=bundle_parts, source="web")
    job.refresh_from_db()
    assert job.finished_ok, job.error
    return Revision.objects.get(pk=job.revision_uuid)


def content_of(response) -> bytes:
    return b"".join(response.streaming_content)


def test_it_sends_anonymous_visitors_to_sign_in_for_my_models(client):
    response = client.get(reverse("marketplace:my-models"))
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))


def test_a_private_model_is_a_404_for_anonymous_visitors(client, revision):
    """Pages of models anyone may see are public; a private one does not exist for a visitor."""
    artifact = revision.artifacts.first()
    for url in (reverse("marketplace:model", args=[revision.solution_id]),
                reverse("marketplace:revision", args=[revision.pk]),
                reverse("marketplace:artifact-download", args=[artifact.pk]),
                reverse("marketplace:bundle-download", args=[revision.pk])):
        assert client.get(url).status_code == 404, url


def test_it_lists_my_models_with_their_revisions_and_jobs(client_for, owner, other_user, revision):
    theirs = RevisionFactory(solution=SolutionFactory(owner=other_user, name="Not mine"))
    response = client_for(owner).get(reverse("marketplace:my-models"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "IrisClassifier" in html and reverse("marketplace:revision", args=[revision.pk]) in html
    assert "Not mine" not in html and str(theirs.pk) not in html
    job = OnboardingJob.objects.get(owner=owner)
    assert reverse("onboarding:job", args=[job.pk]) not in html  # finished: no longer "in progress"


def test_it_shows_an_empty_state_to_a_newcomer(client_for, other_user):
    html = client_for(other_user).get(reverse("marketplace:my-models")).content.decode()
    assert "No models yet" in html and reverse("onboarding:new") in html


def test_it_shows_the_model_with_its_revisions(client_for, owner, revision):
    newer = RevisionFactory(solution=revision.solution, version="0.9.0", status=RevisionStatus.ONBOARDING)
    response = client_for(owner).get(reverse("marketplace:model", args=[revision.solution_id]))
    assert response.status_code == 200
    assert [r.version for r in response.context["revisions"]] == ["0.9.0", "1.0.0"]
    assert response.context["revision"] == revision  # the newest ready one
    html = response.content.decode()
    assert f'value="{newer.pk}"' in html and "0.9.0 (onboarding)" in html
    assert reverse("marketplace:revision", args=[revision.pk]) in html


def test_it_shows_the_revision_metadata_methods_artifacts_and_steps(client_for, owner, revision):
    response = client_for(owner).get(reverse("marketplace:revision", args=[revision.pk]))
    assert response.status_code == 200
    summary = response.context["summary"]
    assert summary["methods"] == [{"name": "classify", "input": "ClassifyIn", "output": "ClassifyOut",
                                   "description": "Iris species from sepal and petal sizes (RandomForest, 10 trees)"}]
    assert "scikit-learn==1.9.1" in summary["requirements"]
    kinds = [a.kind for a in response.context["artifacts"]]
    assert kinds == [ArtifactKind.MODEL, ArtifactKind.METADATA, ArtifactKind.PROTO, ArtifactKind.PROTOBUF_JSON,
                     ArtifactKind.TGIF, ArtifactKind.LOG]
    html = response.content.decode()
    model = revision.artifacts.get(kind=ArtifactKind.MODEL)
    assert model.sha256 in html and "modelpackage.zip" in html
    assert "Smoke-test the model in a runner" in html and "smoke tests are switched off" in html


def test_it_hides_solutions_and_revisions_from_other_users(client_for, other_user, revision):
    client = client_for(other_user)
    assert client.get(reverse("marketplace:model", args=[revision.solution_id])).status_code == 404
    assert client.get(reverse("marketplace:revision", args=[revision.pk])).status_code == 404


def test_it_shows_everything_to_a_portal_admin(client_for, admin_user, revision):
    client = client_for(admin_user)
    assert client.get(reverse("marketplace:revision", args=[revision.pk])).status_code == 200
    artifact = revision.artifacts.get(kind=ArtifactKind.PROTO)
    assert client.get(reverse("marketplace:artifact-download", args=[artifact.pk])).status_code == 200


def test_it_downloads_an_artifact_with_its_exact_bytes(client_for, owner, revision, bundle_parts):
    for kind, part in ((ArtifactKind.MODEL, "model"), (ArtifactKind.METADATA, "metadata"),
                       (ArtifactKind.PROTO, "schema")):
        artifact = revision.artifacts.get(kind=kind)
        response = client_for(owner).get(reverse("marketplace:artifact-download", args=[artifact.pk]))
        assert response.status_code == 200
        body = content_of(response)
        expected = bundle_parts[part].read_bytes()
        assert body == expected
        assert hashlib.sha256(body).hexdigest() == artifact.sha256 == response["X-Checksum-Sha256"]
        assert f'filename="{artifact.file_name}"' in response["Content-Disposition"]


def test_it_hides_downloads_from_other_users(client_for, other_user, revision):
    client = client_for(other_user)
    artifact = revision.artifacts.get(kind=ArtifactKind.MODEL)
    assert client.get(reverse("marketplace:artifact-download", args=[artifact.pk])).status_code == 404
    assert client.get(reverse("marketplace:bundle-download", args=[revision.pk])).status_code == 404


def test_it_downloads_the_bundle_as_a_zip(client_for, owner, revision, bundle_parts):
    response = client_for(owner).get(reverse("marketplace:bundle-download", args=[revision.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('filename="IrisClassifier-1.0.0.zip"')
    with zipfile.ZipFile(io.BytesIO(content_of(response))) as archive:
        assert sorted(archive.namelist()) == ["metadata.json", "model.proto", "modelpackage.zip"]
        assert archive.read("modelpackage.zip") == bundle_parts["model"].read_bytes()
        assert archive.read("model.proto") == bundle_parts["schema"].read_bytes()


def test_it_offers_no_bundle_of_a_revision_still_onboarding(client_for, owner):
    unfinished = RevisionFactory(solution=SolutionFactory(owner=owner), status=RevisionStatus.ONBOARDING)
    client = client_for(owner)
    assert client.get(reverse("marketplace:bundle-download", args=[unfinished.pk])).status_code == 404
    html = client.get(reverse("marketplace:revision", args=[unfinished.pk])).content.decode()
    assert reverse("marketplace:bundle-download", args=[unfinished.pk]) not in html
    assert "still being onboarded" in html
