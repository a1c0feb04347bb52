"""Model images end to end, on a real Docker engine and a real registry: onboarding builds the image
with either builder, it runs (host network), answers, takes a hot swap; it survives a round trip
through the registry; the daemonless image loads with `docker load` from the portal's download;
a build that cannot succeed says why and leaves nothing behind."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from django.urls import reverse

from images import oci
from images.choices import BuildTrigger
from images.models import ImageBuild
from marketplace.choices import ArtifactKind, RevisionStatus
from marketplace.models import Blob, Revision, Solution
from onboarding.choices import JobStatus, StepStatus
from onboarding.services import onboarding_start

from ..bundles import builders, parts_of
from .conftest import post_json

TOKEN = "image-test-admin-token-K4v8"  # the runner refuses a token under 24 characters
BUILDERS = ["docker", "daemonless"]
BUTTON = "type=\"submit\">Create microservice</button>"


@pytest.fixture(scope="session")
def image_cache(tmp_path_factory, docker_client):
    """Installed extra packages and their layers, shared by this session's builds, then removed
    with the intermediate images the Docker builder made from them."""
    before = {image.id for image in docker_client.images.list(name="acumos-deps")}
    yield tmp_path_factory.mktemp("image-cache")
    for image in docker_client.images.list(name="acumos-deps"):
        if image.id not in before:
            docker_client.images.remove(image.id, force=True)


@pytest.fixture
def image_settings(settings, monkeypatch, base_image, wheelhouse, image_cache, unique_repository, docker_host,
                   registry_host, docker_client):
    """`image_settings("docker" | "daemonless")` configures the portal to build; what the test
    pushed is deleted from the registry, and from the engine, when it ends."""

    def configure(builder: str) -> None:
        settings.ACUMOS_IMAGE_BUILDER = builder
        settings.ACUMOS_IMAGE_BASE = base_image
        settings.ACUMOS_IMAGE_REGISTRY = ""
        settings.ACUMOS_IMAGE_REPOSITORY = unique_repository
        settings.ACUMOS_WHEELHOUSE = wheelhouse
        settings.ACUMOS_IMAGE_CACHE = image_cache
        monkeypatch.setenv("DOCKER_HOST", docker_host)

    yield configure
    registry = oci.Registry(registry_host)
    for build in ImageBuild.objects.exclude(digest=""):
        reference = oci.ImageRef.parse(build.reference)
        registry.delete_image(reference.repository, reference.digest)
        for image in docker_client.images.list(name=f"{reference.registry}/{reference.repository}"):
            docker_client.images.remove(image.id, force=True)


def onboard(owner, parts, inline_jobs):
    with inline_jobs():
        job = onboarding_start(user=owner, parts=parts)
    job.refresh_from_db()
    return job


def image_of(revision: Revision) -> oci.ImageRef:
    return oci.ImageRef.parse(revision.artifacts.get(kind=ArtifactKind.IMAGE).uri)


def classify(base_url: str, sample: dict) -> dict:
    return post_json(f"{base_url}/model/methods/classify", sample)


def swap_in(base_url: str, bundle: Path) -> requests.Response:
    files = {part: open(bundle / name, "rb") for part, name in  # noqa: SIM115 (closed below)
             {"model": "modelpackage.zip", "proto": "model.proto", "metadata": "metadata.json"}.items()}
    try:
        return requests.put(f"{base_url}/model", headers={"Authorization": f"Bearer {TOKEN}"}, files=files, timeout=60)
    finally:
        for handle in files.values():
            handle.close()


@pytest.mark.django_db
@pytest.mark.parametrize("builder", BUILDERS)
def test_onboarding_builds_an_image_that_runs_answers_and_takes_a_hot_swap(
        builder, image_settings, owner, bundle_parts, inline_jobs, run_container, docker_client, tmp_path):
    image_settings(builder)
    job = onboard(owner, bundle_parts, inline_jobs)
    assert job.status == JobStatus.SUCCEEDED, job.error
    step = job.steps.get(name="build_image")
    assert step.status == StepStatus.SUCCEEDED
    revision = Revision.objects.get(pk=job.revision_uuid)
    build = ImageBuild.objects.get(revision=revision)
    assert (build.status, build.trigger, build.builder) == (JobStatus.SUCCEEDED, BuildTrigger.ONBOARDING, builder)
    pushed = image_of(revision)
    assert pushed.digest == build.digest and pushed.digest.startswith("sha256:")
    assert revision.artifacts.get(kind=ArtifactKind.BUILD_LOG).blob.size > 0
    assert f"pushed {pushed}" in step.log

    container, base_url = run_container(str(pushed), admin_token=TOKEN)
    labels = container.image.labels
    package = revision.artifacts.get(kind=ArtifactKind.MODEL)
    assert labels["ai.acumos.revision.id"] == str(revision.pk)
    assert labels["ai.acumos.solution.id"] == str(revision.solution_id)
    assert labels["ai.acumos.version"] == "1.0.0"
    assert labels["ai.acumos.artifact.modelpackage.zip.sha256"] == package.sha256
    assert classify(base_url, builders.IRIS_SAMPLE) == {"species": 0}
    assert classify(base_url, builders.IRIS_VIRGINICA) == {"species": 2}

    batch = builders.iris_bundle(tmp_path / "batch", repeated=True)  # another interface: repeated fields
    response = swap_in(base_url, batch)
    assert response.status_code == 200, response.text
    both = {key: [builders.IRIS_SAMPLE[key], builders.IRIS_VIRGINICA[key]] for key in builders.IRIS_SAMPLE}
    assert classify(base_url, both) == {"species": [0, 2]}
    assert requests.get(f"{base_url}/model", timeout=10).json()["active"]["generation"] == 2


@pytest.mark.django_db
def test_the_pushed_image_comes_back_from_the_registry_and_runs(
        image_settings, owner, bundle_parts, inline_jobs, run_container, docker_client):
    image_settings("docker")
    job = onboard(owner, bundle_parts, inline_jobs)
    pushed = image_of(Revision.objects.get(pk=job.revision_uuid))
    tag = str(replace(pushed, digest=""))
    docker_client.images.remove(tag, force=True)
    with pytest.raises(Exception, match="No such image|not found"):
        docker_client.images.get(tag)
    pulled = docker_client.images.pull(f"{pushed.registry}/{pushed.repository}", tag=pushed.tag)
    assert pushed.digest in " ".join(pulled.attrs["RepoDigests"])
    _, base_url = run_container(tag)
    assert classify(base_url, builders.IRIS_VIRGINICA) == {"species": 2}


@pytest.mark.django_db
def test_the_daemonless_image_downloaded_from_the_portal_loads_and_answers_the_same(
        image_settings, owner, client_for, bundle_parts, inline_jobs, cleanup_images, run_container, docker_client,
        tmp_path):  # cleanup_images before run_container: the container goes first, then its image
    image_settings("daemonless")
    job = onboard(owner, bundle_parts, inline_jobs)
    revision = Revision.objects.get(pk=job.revision_uuid)
    pushed = image_of(revision)
    response = client_for(owner).get(reverse("images:archive", args=[revision.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('-image.tar"')
    archive = tmp_path / "image.tar"
    with open(archive, "wb") as out:
        for chunk in response.streaming_content:
            out.write(chunk)
    assert archive.stat().st_size == int(response["Content-Length"])
    tag = str(replace(pushed, digest=""))
    cleanup_images(tag)
    with open(archive, "rb") as handle:
        (loaded,) = docker_client.images.load(handle)
    assert tag in loaded.tags
    _, base_url = run_container(tag)
    assert classify(base_url, builders.IRIS_SAMPLE) == {"species": 0}
    assert classify(base_url, builders.IRIS_VIRGINICA) == {"species": 2}


def with_requirement(bundle: Path, out: Path, requirement: dict) -> dict[str, Path]:
    metadata = json.loads((bundle / "metadata.json").read_text())
    metadata["runtime"]["dependencies"]["pip"]["requirements"].append(requirement)
    out.mkdir()
    (out / "metadata.json").write_text(json.dumps(metadata))
    return {**parts_of(bundle), "metadata": out / "metadata.json"}


@pytest.mark.django_db
@pytest.mark.parametrize("builder", BUILDERS)
def test_a_missing_extra_package_fails_the_build_by_name_and_leaves_nothing(
        builder, image_settings, owner, example_bundle, inline_jobs, tmp_path, artifact_storage):
    image_settings(builder)
    parts = with_requirement(example_bundle, tmp_path / "bad", {"name": "acumos-no-such-package", "version": "9.9.9"})
    job = onboard(owner, parts, inline_jobs)
    assert job.status == JobStatus.FAILED
    step = job.steps.get(name="build_image")
    assert step.status == StepStatus.FAILED
    assert "could not get these Python packages for the image: acumos-no-such-package==9.9.9" in step.error
    assert job.error == step.error
    assert not Revision.objects.exists() and not Solution.objects.exists()
    assert not ImageBuild.objects.exists()  # went with its revision; the step kept the reason
    assert not Blob.objects.exists()
    assert not [p for p in artifact_storage.rglob("*") if p.is_file()]


@pytest.mark.django_db
def test_create_microservice_builds_a_ready_revision_on_demand(
        image_settings, settings, owner, other_user, client_for, bundle_parts, inline_jobs, run_container):
    job = onboard(owner, bundle_parts, inline_jobs)  # no builder configured yet: the step is skipped
    revision = Revision.objects.get(pk=job.revision_uuid)
    assert job.steps.get(name="build_image").status == StepStatus.SKIPPED
    assert "no image builder is configured" in job.steps.get(name="build_image").log
    page = client_for(owner).get(reverse("marketplace:revision", args=[revision.pk])).content.decode()
    assert "no image builder is configured" in page and BUTTON not in page

    image_settings("daemonless")
    page = client_for(owner).get(reverse("marketplace:revision", args=[revision.pk])).content.decode()
    assert BUTTON in page
    url = reverse("images:build", args=[revision.pk])
    assert client_for(other_user).post(url).status_code == 404
    assert not ImageBuild.objects.exists()
    with inline_jobs():
        response = client_for(owner).post(url)
    assert response.status_code == 302
    build = ImageBuild.objects.get(revision=revision)
    assert (build.status, build.trigger, build.requested_by) == (JobStatus.SUCCEEDED, BuildTrigger.MANUAL, owner)
    revision.refresh_from_db()
    assert revision.status == RevisionStatus.READY
    pushed = image_of(revision)
    _, base_url = run_container(str(pushed))
    assert classify(base_url, builders.IRIS_SAMPLE) == {"species": 0}
    page = client_for(owner).get(reverse("marketplace:revision", args=[revision.pk])).content.decode()
    assert pushed.digest in page and "Rebuild image" in page

    # A rebuild that cannot succeed says why and keeps the image the revision has.
    settings.ACUMOS_IMAGE_BASE = f"{pushed.registry}/acumos/no-such-base:missing"
    with inline_jobs():
        client_for(owner).post(url)
    failed = ImageBuild.objects.filter(revision=revision).exclude(pk=build.pk).get()
    assert failed.status == JobStatus.FAILED
    assert "acumos/no-such-base" in failed.error and "not found" in failed.error.lower()
    assert image_of(revision) == pushed
    assert revision.artifacts.filter(kind=ArtifactKind.BUILD_LOG).count() == 1
    page = client_for(owner).get(reverse("marketplace:revision", args=[revision.pk])).content.decode()
    assert "acumos/no-such-base" in page
