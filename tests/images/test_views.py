"""The image panel's actions, without an engine: who may build, when a build is refused and why.
(What the panel says to each reader: test_panels.py; builds themselves: test_build.py.)"""

from __future__ import annotations

import pytest
from django.urls import reverse

from acumos_portal.choices import JobStatus
from images.models import ImageBuild
from images.services import NOT_CONFIGURED
from marketplace.choices import RevisionStatus

from ..factories import ImageBuildFactory, RevisionFactory, SolutionFactory

BASE = "127.0.0.1:5000/acumos/runner-base:x"
BUTTON = "type=\"submit\">Create microservice</button>"


@pytest.fixture
def revision(owner):
    return RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris"), version="1.0.0",
                           status=RevisionStatus.READY)


@pytest.fixture
def builds_on(settings):
    settings.ACUMOS_IMAGE_BUILDER, settings.ACUMOS_IMAGE_BASE = "daemonless", BASE


def page(client, revision) -> str:
    response = client.get(reverse("marketplace:revision", args=[revision.pk]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
def test_without_a_builder_no_build_starts_and_the_refusal_says_why(revision, owner, client_for):
    html = page(client_for(owner), revision)
    assert NOT_CONFIGURED in html and BUTTON not in html
    response = client_for(owner).post(reverse("images:build", args=[revision.pk]), follow=True)
    assert "No image builder is configured on this site." in response.content.decode()
    assert not ImageBuild.objects.exists()


@pytest.mark.django_db
def test_a_base_image_alone_selects_the_daemonless_builder():
    from importlib import reload

    from acumos_portal import settings as module

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ACUMOS_IMAGE_BASE", BASE)
        patch.delenv("ACUMOS_IMAGE_BUILDER", raising=False)
        assert reload(module).ACUMOS_IMAGE_BUILDER == "daemonless"
        patch.setenv("ACUMOS_IMAGE_BUILDER", "docker")
        assert reload(module).ACUMOS_IMAGE_BUILDER == "docker"
    reload(module)


@pytest.mark.django_db
def test_the_owner_starts_one_build_at_a_time(builds_on, revision, owner, client_for,
                                              django_capture_on_commit_callbacks):
    client = client_for(owner)
    assert BUTTON in page(client, revision)
    with django_capture_on_commit_callbacks() as sent:
        client.post(reverse("images:build", args=[revision.pk]))
        client.post(reverse("images:build", args=[revision.pk]))
    build = ImageBuild.objects.get()
    assert (build.status, build.requested_by, build.builder) == (JobStatus.PENDING, owner, "daemonless")
    assert len(sent) == 1  # the second press found the first build waiting
    html = page(client, revision)
    assert BUTTON not in html and 'hx-trigger="every 2s"' in html


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["other_user", "publisher"])
def test_others_cannot_see_or_build_an_image(builds_on, revision, persona, request, client_for):
    client = client_for(request.getfixturevalue(persona))
    for name, method in (("images:build", "post"), ("marketplace:revision-image", "get"), ("images:archive", "get")):
        assert getattr(client, method)(reverse(name, args=[revision.pk])).status_code == 404, name
    assert not ImageBuild.objects.exists()


@pytest.mark.django_db
def test_anonymous_callers_are_sent_to_sign_in(builds_on, revision, client_for):
    for name, method in (("images:build", "post"), ("images:archive", "get")):
        response = getattr(client_for(None), method)(reverse(name, args=[revision.pk]))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], name


@pytest.mark.django_db
def test_an_admin_may_build_and_a_revision_still_onboarding_may_not(builds_on, revision, admin_user, owner,
                                                                     client_for):
    client_for(admin_user).post(reverse("images:build", args=[revision.pk]))
    assert ImageBuild.objects.get().requested_by == admin_user
    onboarding = RevisionFactory(solution=revision.solution, version="2.0.0", status=RevisionStatus.ONBOARDING)
    response = client_for(owner).post(reverse("images:build", args=[onboarding.pk]), follow=True)
    assert "still being onboarded" in response.content.decode()
    assert not ImageBuild.objects.filter(revision=onboarding).exists()


@pytest.mark.django_db
def test_there_is_no_tarball_before_an_image_exists(builds_on, revision, owner, client_for):
    assert client_for(owner).get(reverse("images:archive", args=[revision.pk])).status_code == 404


@pytest.mark.django_db
def test_a_failed_build_shows_its_reason(builds_on, revision, owner, client_for):
    ImageBuildFactory(revision=revision, builder="docker", status=JobStatus.FAILED,
                      error="could not get these Python packages for the image: nope==1", log="pip said no")
    html = page(client_for(owner), revision)
    assert "could not get these Python packages for the image: nope==1" in html and "pip said no" in html
    assert BUTTON in html  # try again
