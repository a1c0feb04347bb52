"""The revision page's image panel refreshed alone (pages.views.revisions.revision_image): htmx asks for
it while a build runs, and it says what the page says, the local target included; whoever sees the
page sees it, and nobody else."""

from __future__ import annotations

import pytest
from django.urls import reverse

from acumos_portal.choices import JobStatus
from deployment.choices import TargetDeployers, TargetKind
from marketplace.choices import RevisionStatus

from ..factories import ImageBuildFactory, RevisionFactory, SolutionFactory, TargetFactory, published_revision

pytestmark = pytest.mark.django_db


@pytest.fixture
def revision(owner, settings):
    settings.ACUMOS_IMAGE_BUILDER, settings.ACUMOS_IMAGE_BASE = "daemonless", "127.0.0.1:5000/acumos/runner-base:x"
    TargetFactory(name="This host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)
    return RevisionFactory(solution=SolutionFactory(owner=owner), status=RevisionStatus.READY)


def fragment(client, revision):
    return client.get(reverse("marketplace:revision-image", args=[revision.pk]))


def test_the_panel_polls_while_a_build_runs_and_stops_with_its_outcome(revision, owner, client_for):
    build = ImageBuildFactory(revision=revision, status=JobStatus.RUNNING)
    client = client_for(owner)
    running = fragment(client, revision).content.decode()
    assert running.lstrip().startswith('<section class="card card--flush" id="image"') and "<html" not in running
    assert 'hx-trigger="every 2s"' in running and "An image is being built for this version" in running

    build.status, build.error = JobStatus.FAILED, "could not get these Python packages for the image: nope==1"
    build.save()
    done = " ".join(fragment(client, revision).content.decode().split())
    assert "hx-trigger" not in done
    assert "because its last build failed: could not get these Python packages for the image: nope==1" in done
    assert 'deploy it to <a href="#deploy">This host</a>' in done  # as the page says it


def test_whoever_sees_the_page_sees_the_panel_and_nobody_else(revision, other_user, catalogs, client_for):
    assert fragment(client_for(other_user), revision).status_code == 404
    assert fragment(client_for(None), revision).status_code == 404
    public = published_revision(catalogs["company"])  # signed-in users see it, with its page
    assert client_for(other_user).get(reverse("marketplace:revision", args=[public.pk])).status_code == 200
    assert fragment(client_for(other_user), public).status_code == 200
