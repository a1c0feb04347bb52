"""The image tarball and the deployment bundle are downloads like any other (marketplace.services.
begin_download): under a licence that needs an agreement, the owner downloads freely, a granted user
takes one download from the agreement, anyone else is refused before a byte is sent, with the licence's
page (a browser) or the API's error shape (`Accept: application/json`), 403 or 402. Open licences are
counted as downloads and refused to nobody.

The tarball is streamed from a throwaway registry of the test's own (tests/registries.py) holding a
one-layer image; no Docker engine is needed."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from collections.abc import Iterator

import pytest
from django.urls import reverse

from images import oci
from licensing import services as licensing
from licensing.choices import Action, AssigneeKind
from licensing.models import LicenceProfile, Rule, UsageRecord
from marketplace.choices import ArtifactKind
from marketplace.models import Artifact, Download

from ..factories import RevisionFactory, SolutionFactory
from ..registries import throwaway_registry

pytestmark = pytest.mark.django_db

REPOSITORY = "acumos/models/iris"


@pytest.fixture(scope="module")
def pushed_image(tmp_path_factory) -> Iterator[str]:
    """A one-layer image in a throwaway registry: its reference, tag and digest."""
    tree = tmp_path_factory.mktemp("tree")
    (tree / "hello.txt").write_text("a model's image, small\n")
    layer = oci.layer_from_tree({"app": tree}, tmp_path_factory.mktemp("layer") / "layer.tar.gz")
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}).encode()
    with throwaway_registry() as host, oci.Registry(host) as registry:
        config_digest = oci._sha256(config)
        registry.upload_blob(REPOSITORY, config, config_digest)
        registry.upload_blob(REPOSITORY, layer.path, layer.digest)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": oci.DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                       "digest": config_digest},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": layer.size,
                        "digest": layer.digest}]}).encode()
        digest = registry.put_manifest(REPOSITORY, "1.0.0", manifest, oci.DOCKER_MANIFEST)
        yield f"{host}/{REPOSITORY}:1.0.0@{digest}"


def with_image(revision, uri: str):
    Artifact.objects.create(revision=revision, kind=ArtifactKind.IMAGE, name=uri.split("@", maxsplit=1)[0], uri=uri)
    return revision


@pytest.fixture
def revision(owner, catalogs):
    """A model others here may see (published in the company catalog), whose licence needs an agreement."""
    from marketplace import services as marketplace_services

    revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris"), version="1.0.0")
    marketplace_services.publish_directly(revision, catalogs["company"])
    LicenceProfile.objects.create(revision=revision, keyword="proprietary", spdx="LicenseRef-Acme-Proprietary",
                                  rtu_required=True)
    return revision


def grant(owner, revision, user, **download):
    return licensing.grant(owner, revision.solution, licensing.Assignee(AssigneeKind.USER, user=user),
                           licensing.Terms((licensing.RuleTerms(Action.DOWNLOAD, **download),)))


def tarball(client, revision, **headers):
    return client.get(reverse("images:archive", args=[revision.pk]), headers=headers)


def streamed(response) -> bytes:
    return b"".join(response.streaming_content)


def names_in(data: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return set(archive.getnames())


# ---------------------------------------------------------------- the image tarball

def test_the_owner_downloads_the_tarball_freely(owner, revision, pushed_image, client_for):
    with_image(revision, pushed_image)
    response = tarball(client_for(owner), revision)
    assert response.status_code == 200
    data = streamed(response)
    assert len(data) == int(response["Content-Length"]) and "manifest.json" in names_in(data)
    assert not UsageRecord.objects.exists() and Download.objects.count() == 1


def test_the_tarball_is_refused_without_an_agreement_before_a_byte_is_sent(other_user, revision, pushed_image,
                                                                           client_for):
    with_image(revision, pushed_image)
    page = tarball(client_for(other_user), revision)
    assert page.status_code == 403 and page["Content-Type"].startswith("text/html")
    html = page.content.decode()
    assert 'data-denial="agreement_not_found"' in html and "To download Iris you need an agreement" in html

    api = tarball(client_for(other_user), revision, Accept="application/json")
    assert api.status_code == 403
    error = api.json()["error"]
    assert error["code"] == "agreement_not_found" and "To download Iris" in error["message"]
    assert error["details"]["request_url"] == f"/licensing/solutions/{revision.solution.pk}/"
    assert not Download.objects.exists() and not UsageRecord.objects.exists()


def test_a_granted_user_downloads_the_tarball_once_per_download_left(owner, other_user, revision, pushed_image,
                                                                     client_for):
    with_image(revision, pushed_image)
    agreement = grant(owner, revision, other_user, count_limit=1)
    client = client_for(other_user)
    response = tarball(client, revision)
    assert response.status_code == 200 and "manifest.json" in names_in(streamed(response))
    [usage] = UsageRecord.objects.all()
    assert (usage.action, usage.kind, usage.user, usage.agreement) == (Action.DOWNLOAD, "image", other_user, agreement)
    assert Rule.objects.get(agreement=agreement).count_used == 1

    refused = tarball(client, revision, Accept="application/json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "usage_exhausted"
    assert Download.objects.count() == 1


def test_an_open_licence_is_counted_and_refused_to_nobody(other_user, revision, pushed_image, client_for):
    LicenceProfile.objects.filter(revision=revision).update(rtu_required=False)
    with_image(revision, pushed_image)
    assert tarball(client_for(other_user), revision).status_code == 200
    assert Download.objects.count() == 1 and not UsageRecord.objects.exists()


def test_a_registry_that_cannot_say_the_size_counts_no_download(owner, revision, client_for):
    with_image(revision, "127.0.0.1:9/acumos/models/iris:1.0.0@sha256:" + "c3" * 32)  # nothing listens there
    with pytest.raises(oci.RegistryError):
        tarball(client_for(owner), revision)
    assert not Download.objects.exists()


# ---------------------------------------------------------------- the deployment bundle

IMAGE = "127.0.0.1:5000/acumos/models/iris-1a2b3c4d:1.0.0@sha256:" + "c3" * 32  # pinned, never pulled here


def deployment_bundle(client, revision):
    return client.get(reverse("deployment:bundle", args=[revision.pk]))


def test_the_deployment_bundle_is_refused_without_an_agreement(other_user, revision, client_for):
    with_image(revision, IMAGE)
    response = deployment_bundle(client_for(other_user), revision)
    assert response.status_code == 403 and 'data-denial="agreement_not_found"' in response.content.decode()
    assert not Download.objects.exists()


def test_a_granted_user_downloads_the_deployment_bundle(owner, other_user, revision, client_for):
    with_image(revision, IMAGE)
    grant(owner, revision, other_user)
    response = deployment_bundle(client_for(other_user), revision)
    assert response.status_code == 200
    assert "kubernetes.yaml" in zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    [usage] = UsageRecord.objects.all()
    assert (usage.kind, usage.user) == ("deployment_bundle", other_user)


def test_a_deployment_bundle_without_an_image_counts_nothing(owner, other_user, revision, client_for):
    grant(owner, revision, other_user)
    response = deployment_bundle(client_for(other_user), revision)
    assert response.status_code == 302 and response["Location"].endswith("#image")
    assert not Download.objects.exists() and not UsageRecord.objects.exists()
