"""images.services without an engine: names, labels, the task's claim, and the reaper."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from acumos_portal import jobs
from acumos_portal.choices import JobStatus
from images import services
from images.builders.base import BuilderUnavailable
from images.models import ImageBuild
from marketplace.choices import RevisionStatus

from ..factories import ImageBuildFactory, RevisionFactory, SolutionFactory


@pytest.fixture
def revision(owner, settings):
    settings.ACUMOS_IMAGE_BUILDER, settings.ACUMOS_IMAGE_BASE = "daemonless", "127.0.0.1:5000/acumos/runner-base:x"
    return RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris Classifier!"), version="1.0.0+build/7",
                           status=RevisionStatus.READY)


@pytest.mark.django_db
def test_images_are_named_per_solution_and_version_in_the_configured_registry(revision, settings):
    target = services.target_for(revision)
    assert target.registry == "127.0.0.1:5000"
    assert target.repository == f"acumos/models/iris-classifier-{revision.solution.id.hex[:8]}"
    assert target.tag == "1.0.0-build-7"
    settings.ACUMOS_IMAGE_REGISTRY, settings.ACUMOS_IMAGE_REPOSITORY = "registry.example:5000", "team/models"
    assert str(services.target_for(revision)).startswith("registry.example:5000/team/models/iris-classifier-")


@pytest.mark.django_db
def test_a_wrong_configuration_is_explained(settings):
    settings.ACUMOS_IMAGE_BUILDER = "kaniko"
    assert "must be one of: docker, daemonless" in services.configuration_problem()
    settings.ACUMOS_IMAGE_BUILDER, settings.ACUMOS_IMAGE_BASE = "docker", ""
    assert "ACUMOS_IMAGE_BASE is not set" in services.configuration_problem()
    settings.ACUMOS_IMAGE_BASE = "not a reference!"
    assert services.configuration_problem().startswith("ACUMOS_IMAGE_BASE: ")
    settings.ACUMOS_IMAGE_BASE = "127.0.0.1:5000/acumos/runner-base:x"
    assert services.configuration_problem() == "" and services.builds_enabled()


@pytest.mark.django_db
def test_a_build_is_claimed_once(revision, monkeypatch):
    build = ImageBuildFactory(revision=revision)
    calls = []
    monkeypatch.setattr(services, "execute", lambda b, store_log: calls.append(b.pk))
    services.run_build(str(build.pk))
    services.run_build(str(build.pk))  # a duplicate delivery
    assert calls == [build.pk]


@pytest.mark.django_db
def test_a_bug_in_a_build_ends_it_visibly(revision, monkeypatch):
    build = ImageBuildFactory(revision=revision)

    def broken(build, store_log):
        raise KeyError("surprise")

    monkeypatch.setattr(services, "execute", broken)
    services.run_build(str(build.pk))
    build.refresh_from_db()
    assert build.status == JobStatus.FAILED and "internal error (error id " in build.error
    assert build.finished is not None


@pytest.mark.django_db
def test_the_reaper_ends_builds_whose_worker_stopped_and_resends_lost_ones(revision, settings, monkeypatch):
    old = timezone.now() - timedelta(seconds=settings.ACUMOS_JOB_STALE_SECONDS + 60)
    stale = ImageBuildFactory(revision=revision, status=JobStatus.RUNNING, heartbeat=old)
    alive = ImageBuildFactory(revision=revision, status=JobStatus.RUNNING, heartbeat=timezone.now())
    lost = ImageBuildFactory(revision=revision)
    ImageBuild.objects.filter(pk=lost.pk).update(created=old)
    sent = []
    monkeypatch.setattr(jobs, "send", lambda task, *args: sent.append((task.name, args)))

    actions = services.JOBS.reap()

    assert f"image build {stale.pk}: failed (its worker stopped)" in actions
    assert f"image build {lost.pk}: sent again" in actions
    stale.refresh_from_db()
    alive.refresh_from_db()
    assert stale.status == JobStatus.FAILED and "worker building this image stopped" in stale.error
    assert alive.status == JobStatus.RUNNING
    assert sent == [("images.build", (str(lost.pk),))]


@pytest.mark.django_db
def test_an_unreachable_builder_is_retried_and_fails_on_the_last_attempt_saying_why(revision, settings,
                                                                                    monkeypatch):
    build = ImageBuildFactory(revision=revision)

    def unreachable(build, store_log):
        raise BuilderUnavailable("the registry at 127.0.0.1:5000 did not answer")

    monkeypatch.setattr(services, "execute", unreachable)
    for attempt in range(1, settings.ACUMOS_JOB_MAX_ATTEMPTS):
        with pytest.raises(jobs.Transient):  # the task's retry sends it again
            services.run_build(str(build.pk))
        build.refresh_from_db()
        assert build.status == JobStatus.PENDING and build.attempts == attempt
    services.run_build(str(build.pk))
    build.refresh_from_db()
    assert build.status == JobStatus.FAILED and build.attempts == settings.ACUMOS_JOB_MAX_ATTEMPTS
    assert build.error == "gave up after 3 attempts: the registry at 127.0.0.1:5000 did not answer"
