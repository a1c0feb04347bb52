"""The revision page's image panel as each reader sees it (images/panels.py): without an image it says
why in one sentence and what can still be done (deploy to the local target, download the model
bundle), the settings that make images only for admins, no raw backticks for anyone; with an image,
the deployment bundle, which downloads. No engine or registry: an image is an artifact here."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from django.urls import reverse

from acumos_portal.choices import JobStatus
from deployment.choices import TargetDeployers, TargetKind
from images.panels import code_spans, last_line
from marketplace.choices import ArtifactKind, RevisionStatus
from marketplace.models import Artifact

from ..factories import ImageBuildFactory, RevisionFactory, SolutionFactory, TargetFactory, published_revision

pytestmark = pytest.mark.django_db

BASE = "127.0.0.1:5000/acumos/runner-base:x"
IMAGE = "127.0.0.1:5000/acumos/models/iris-1a2b3c4d:1.0.0@sha256:" + "c3" * 32
SETTING_NAMES = ("ACUMOS_IMAGE_BASE", "ACUMOS_IMAGE_BUILDER", "DOCKER_HOST", "ACUMOS_IMAGE_REGISTRY")
PANEL = re.compile(r'<section class="card card--flush" id="image".*?</section>', re.S)


@pytest.fixture
def revision(owner):
    return RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris"), version="1.0.0",
                           metadata={"methods": {"classify": {}}})


@pytest.fixture
def this_host(db):
    """As `make run` makes it: the sandboxed local target, open to model owners."""
    return TargetFactory(name="This host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)


@pytest.fixture
def builds_on(settings):
    settings.ACUMOS_IMAGE_BUILDER, settings.ACUMOS_IMAGE_BASE = "daemonless", BASE


def panel(client, revision) -> str:
    """The image panel alone, as the revision page draws it, its white space collapsed (as a browser shows it)."""
    response = client.get(reverse("marketplace:revision", args=[revision.pk]))
    assert response.status_code == 200
    return " ".join(PANEL.search(response.content.decode()).group(0).split())


def with_image(revision):
    Artifact.objects.create(revision=revision, kind=ArtifactKind.IMAGE, name=IMAGE.split("@", maxsplit=1)[0], uri=IMAGE)


def test_a_data_scientist_reads_why_there_is_no_image_and_what_still_works(revision, owner, this_host, client_for):
    html = panel(client_for(owner), revision)
    assert "No image exists for this version: no image builder is configured on this site." in html
    assert 'You can still deploy it to <a href="#deploy">This host</a> (a sandboxed runner on this site' in html
    assert f'<a href="{reverse("marketplace:bundle-download", args=[revision.pk])}">model bundle</a>' in html
    assert "An admin of this site sets up image building" in html
    assert not any(name in html for name in SETTING_NAMES)
    assert "data-builder-settings" not in html
    assert "`" not in html


def test_an_admin_reads_the_settings_that_make_images(revision, admin_user, this_host, client_for):
    html = panel(client_for(admin_user), revision)
    assert "<strong>For admins:</strong> No image builder is configured on this site." in html
    for name in SETTING_NAMES:
        assert f"<dt><code>{name}</code></dt>" in html
    assert "<code>scripts/build-runner-base.sh --push 127.0.0.1:5000</code>" in html
    assert "An admin of this site sets up image building" not in html  # the admin is that admin
    assert "You can still deploy it to" in html  # an admin deploys anything they see
    assert "`" not in html


def test_a_wrong_setting_is_named_to_admins_only(settings, revision, owner, admin_user, client_for):
    settings.ACUMOS_IMAGE_BUILDER, settings.ACUMOS_IMAGE_BASE = "kaniko", BASE
    owners = panel(client_for(owner), revision)
    assert "this site's image builder is not set up correctly." in owners
    assert "kaniko" not in owners and not any(name in owners for name in SETTING_NAMES)
    admins = panel(client_for(admin_user), revision)
    assert "ACUMOS_IMAGE_BUILDER is &#x27;kaniko&#x27;; it must be one of: docker, daemonless." in admins


def test_a_consumer_is_not_offered_a_deployment_but_the_download(catalogs, other_user, this_host, client_for):
    public = published_revision(catalogs["company"], name="Shared")
    html = panel(client_for(other_user), public)
    assert "You can still download its" in html and "deploy it to" not in html
    assert reverse("marketplace:bundle-download", args=[public.pk]) in html
    assert not any(name in html for name in SETTING_NAMES) and "`" not in html


def test_the_local_target_is_offered_only_where_the_user_may_deploy(catalogs, owner, operator, client_for):
    shared = published_revision(catalogs["company"], owner=owner)  # the operator sees it too
    TargetFactory(name="Sandbox", kind=TargetKind.LOCAL, deployers=TargetDeployers.OPERATORS)
    TargetFactory(name="Cluster", kind=TargetKind.KUBERNETES, deployers=TargetDeployers.OWNERS)
    assert "deploy it to" not in panel(client_for(owner), shared)  # Sandbox is for operators; Cluster needs an image
    assert 'deploy it to <a href="#deploy">Sandbox</a>' in panel(client_for(operator), shared)


def test_a_failed_build_gives_its_last_line_as_the_reason(builds_on, revision, owner, client_for):
    ImageBuildFactory(revision=revision, status=JobStatus.FAILED,
                      error="pip could not resolve the requirements\nrun `pip install nope==1` to see why\n")
    html = panel(client_for(owner), revision)
    assert "because its last build failed: run <code>pip install nope==1</code> to see why" in html
    assert "pip could not resolve the requirements<br>run <code>pip install nope==1</code>" in html  # the table
    assert "You can still download its" in html
    assert "`" not in html


def test_a_version_never_built_says_so_and_admins_get_no_settings_then(builds_on, revision, admin_user, client_for):
    html = panel(client_for(admin_user), revision)
    assert "No image has been built for this version yet." in html
    assert "data-builder-settings" not in html  # nothing to set: the button builds one
    assert 'type="submit">Create microservice</button>' in html


def test_a_version_still_onboarding_offers_nothing_yet(revision, owner, this_host, client_for):
    onboarding = RevisionFactory(solution=revision.solution, version="2.0.0", status=RevisionStatus.ONBOARDING)
    html = panel(client_for(owner), onboarding)
    assert "No image yet: this version is still being onboarded." in html
    assert "You can still" not in html


def test_the_deployment_bundle_is_offered_exactly_when_an_image_exists(revision, owner, client_for):
    client = client_for(owner)
    url = reverse("deployment:bundle", args=[revision.pk])
    before = panel(client, revision)
    assert url not in before
    assert "The deployment bundle (Kubernetes and Docker Compose files for this version) appears here once an image " \
           "is built." in before

    with_image(revision)
    after = panel(client, revision)
    assert f'href="{url}" download data-deployment-bundle>Deployment bundle (Kubernetes, Compose)</a>' in after
    assert "appears here once" not in after and "You can still" not in after and "`" not in after
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == [".env.example", "README.md", "docker-compose.yml", "kubernetes.yaml"]
    assert "127.0.0.1:5000/acumos/models/iris-1a2b3c4d@sha256:" + "c3" * 32 in archive.read("kubernetes.yaml").decode()


def test_terminal_quotes_become_code_and_nothing_is_left_unescaped():
    assert code_spans("run `make <it>` & `go`") == "run <code>make &lt;it&gt;</code> &amp; <code>go</code>"
    assert code_spans("a lone ` tick") == "a lone ' tick"
    assert code_spans("") == ""
    assert last_line("first\nsecond\n\n") == "second"
    assert last_line("") == "no reason was recorded"


def test_where_an_image_is_pulled_from_is_shown_only_to_those_its_licence_lets_download(catalogs, owner,
                                                                                          other_user, client_for):
    """Pulling from the registry would pass the licence the image tarball is gated by: the image's name
    and `docker run` line are for the owners and licensees; others read why not."""
    from licensing.models import LicenceProfile

    from ..factories import agreement_for

    gated = published_revision(catalogs["company"], owner=owner, name="Gated Iris")
    with_image(gated)
    LicenceProfile.objects.create(revision=gated, keyword="Acme", rtu_required=True)
    registry_host = IMAGE.split("/", maxsplit=1)[0]
    assert registry_host in panel(client_for(owner), gated)
    refused = panel(client_for(other_user), gated)
    assert registry_host not in refused and "docker run" not in refused
    assert "An image of this version exists. To download Gated Iris you need an agreement" in refused
    agreement_for(gated.solution, user=other_user)
    assert "docker run" in panel(client_for(other_user), gated)
