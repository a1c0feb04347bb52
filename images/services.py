"""Building a revision's runner image: the one place that decides what goes in, where it goes and
what is recorded. The onboarding pipeline's "build image" step and the "Create microservice"
button both end in `execute`."""

from __future__ import annotations

import logging
import re
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from acumos_portal import jobs
from acumos_portal.api.refusals import Refused
from acumos_portal.choices import UNFINISHED, JobStatus
from images import dependencies
from images.builders.base import BuilderUnavailable, BuildFailed, BuildRequest
from images.builders.daemonless import DaemonlessBuilder
from images.builders.docker_engine import DockerEngineBuilder
from images.choices import BuilderKind, BuildTrigger
from images.models import ImageBuild
from images.oci import ImageRef, Registry
from marketplace import downloads, storage
from marketplace import services as marketplace_services
from marketplace.choices import BUNDLE_KINDS, ArtifactKind, RevisionStatus
from marketplace.models import Artifact, Blob, Revision
from runner_image.package import read_manifest_from_zip

log = logging.getLogger(__name__)
LABEL_PREFIX = "ai.acumos"
# Read by everyone who meets it (the revision page, a refused build, onboarding's skipped step): the
# settings that fix it are on the revision page for admins only (images.panels).
NOT_CONFIGURED = "no image builder is configured on this site"


# ---------------------------------------------------------------- configuration

def configuration_problem() -> str:
    """Why images cannot be built here, in one plain sentence; empty when they can. Only NOT_CONFIGURED
    is for anyone: the others name the setting to fix, for admins (images.panels shows them so)."""
    kind = settings.ACUMOS_IMAGE_BUILDER
    if not kind:
        return NOT_CONFIGURED
    if kind not in BuilderKind.values:
        return f"ACUMOS_IMAGE_BUILDER is {kind!r}; it must be one of: {', '.join(BuilderKind.values)}"
    if not settings.ACUMOS_IMAGE_BASE:
        return "ACUMOS_IMAGE_BASE is not set: the builder needs the runner base image's reference in a registry"
    try:
        ImageRef.parse(settings.ACUMOS_IMAGE_BASE)
    except ValueError as exc:
        return f"ACUMOS_IMAGE_BASE: {exc}"
    return ""


def builds_enabled() -> bool:
    return not configuration_problem()


def base_image() -> ImageRef:
    return ImageRef.parse(settings.ACUMOS_IMAGE_BASE)


def registry_host() -> str:
    return settings.ACUMOS_IMAGE_REGISTRY or base_image().registry


def registry(host: str | None = None) -> Registry:
    return Registry(host or registry_host(), insecure=settings.ACUMOS_REGISTRY_INSECURE,
                    username=settings.ACUMOS_REGISTRY_USERNAME, password=settings.ACUMOS_REGISTRY_PASSWORD)


def make_builder(kind: str):
    if kind == BuilderKind.DOCKER:
        return DockerEngineBuilder(username=settings.ACUMOS_REGISTRY_USERNAME,
                                   password=settings.ACUMOS_REGISTRY_PASSWORD,
                                   timeout=settings.ACUMOS_IMAGE_BUILD_TIMEOUT)
    return DaemonlessBuilder(registry(), settings.ACUMOS_IMAGE_CACHE)


def platform() -> dependencies.Platform:
    return dependencies.Platform(settings.ACUMOS_IMAGE_PYTHON, settings.ACUMOS_IMAGE_GLIBC, settings.ACUMOS_IMAGE_ARCH)


# ---------------------------------------------------------------- naming and labels

def target_for(revision: Revision) -> ImageRef:
    """<registry>/<prefix>/<solution-name>-<solution id>:<version>: unique per revision, readable."""
    solution = revision.solution
    name = (slugify(solution.name)[:60] or "model") + "-" + solution.id.hex[:8]
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", revision.version)[:120]
    if not re.match(r"[A-Za-z0-9_]", tag):
        tag = "v" + tag
    return ImageRef(registry_host(), f"{settings.ACUMOS_IMAGE_REPOSITORY}/{name}", tag)


def archive_file_name(revision: Revision) -> str:
    return slugify(f"{revision.solution.name}-{revision.version}") + "-image.tar"


def labels_for(revision: Revision, artifacts: list[Artifact], base: ImageRef) -> dict[str, str]:
    labels = {
        "org.opencontainers.image.title": revision.solution.name,
        "org.opencontainers.image.version": revision.version,
        "org.opencontainers.image.base.name": str(base),
        f"{LABEL_PREFIX}.solution.id": str(revision.solution_id),
        f"{LABEL_PREFIX}.revision.id": str(revision.id),
        f"{LABEL_PREFIX}.version": revision.version,
        f"{LABEL_PREFIX}.toolkit": revision.solution.toolkit,
    }
    for artifact in artifacts:
        labels[f"{LABEL_PREFIX}.artifact.{artifact.file_name}.sha256"] = artifact.sha256
    return labels


# ---------------------------------------------------------------- requests and runs

class BuildRefused(Refused):
    """A build that cannot start: the revision is still onboarding, or no builder is configured."""


def check_can_build(revision: Revision) -> None:
    """When an image build may start, for every way in (the page, the API, the pipeline's step)."""
    if revision.status != RevisionStatus.READY:
        raise BuildRefused("this version is still being onboarded; its image is built at the end", "revision")
    if problem := configuration_problem():
        raise BuildRefused(problem, "revision")


def request_build(revision: Revision, user) -> ImageBuild:
    """"Create microservice": one build at a time per revision; a second press shows the first."""
    check_can_build(revision)
    with transaction.atomic():
        Revision.objects.select_for_update().filter(pk=revision.pk).first()
        running = ImageBuild.objects.filter(revision=revision, status__in=UNFINISHED).first()
        if running is not None:
            return running
        build = ImageBuild.objects.create(revision=revision, trigger=BuildTrigger.MANUAL, requested_by=user,
                                          builder=settings.ACUMOS_IMAGE_BUILDER)
        jobs.enqueue(BUILD_TASK, str(build.pk))
    return build


def start_pipeline_build(revision: Revision, user) -> ImageBuild:
    """The onboarding pipeline's build, run by its own step (which sends no task): made and claimed
    here like any other, so the reaper sees the same row a manual build makes."""
    build = ImageBuild.objects.create(revision=revision, trigger=BuildTrigger.ONBOARDING, requested_by=user,
                                      builder=settings.ACUMOS_IMAGE_BUILDER)
    jobs.claim(ImageBuild.objects.filter(pk=build.pk))
    build.refresh_from_db()
    return build


def run_build(build_id: str) -> None:
    """The task body: claim the row (a duplicate delivery does nothing), build, record the result.
    An engine or registry out of reach is retried (acumos_portal.jobs); a build that cannot succeed
    fails with its reason."""
    rows = ImageBuild.objects.filter(pk=build_id)
    if not jobs.claim(rows):
        return
    build = rows.select_related("revision__solution").get()
    jobs.run_claimed(build, lambda claimed: execute(claimed, store_log=store_log), fail=fail,
                     permanent=(BuildFailed,), transient=(BuilderUnavailable,), what=f"image build {build_id}")


def fail(build: ImageBuild, message: str) -> None:
    jobs.finish(ImageBuild.objects.filter(pk=build.pk), JobStatus.FAILED, error=message)


def execute(build: ImageBuild, *, store_log) -> ImageRef:
    """Build, push and record. Raises BuildFailed (say why, nothing recorded) or BuilderUnavailable."""
    progress = BuildLog(build)
    revision = build.revision
    artifacts = list(revision.artifacts.filter(kind__in=BUNDLE_KINDS).select_related("blob"))
    with tempfile.TemporaryDirectory(prefix="acumos-image-") as tmp, progress.alive():
        request = BuildRequest(base=base_image(), target=target_for(revision), bundle=Path(tmp, "bundle"),
                               deps=_dependencies(revision, artifacts, progress.write),
                               labels=labels_for(revision, artifacts, base_image()), log=progress.write)
        downloads.write_bundle(artifacts, request.bundle)
        started = time.monotonic()
        pushed = make_builder(build.builder).build(request)
        size, layers = _pushed_size(pushed)
        progress.write(f"pushed {pushed} ({size / 1e6:.1f} MB compressed, {layers} layers) "
                       f"in {time.monotonic() - started:.1f} s")
    record_image(build, pushed, size, store_log(progress.text()))
    return pushed


def _dependencies(revision: Revision, artifacts: list[Artifact], write) -> dependencies.Dependencies | None:
    target = platform()
    try:
        dependencies.check_python(revision.metadata, target)
        wanted = dependencies.requirements_of(revision.metadata, _manifest_requirements(artifacts))
        return dependencies.prepare(wanted, target, wheelhouse=settings.ACUMOS_WHEELHOUSE,
                                    cache=settings.ACUMOS_IMAGE_CACHE, offline=settings.ACUMOS_WHEELHOUSE_ONLY,
                                    log=write)
    except dependencies.DependencyError as exc:
        write(str(exc))
        raise BuildFailed(str(exc)) from exc


def _manifest_requirements(artifacts: list[Artifact]) -> list[str]:
    package = next(a for a in artifacts if a.kind == ArtifactKind.MODEL)
    with storage.local_copy(package.blob.storage_key, suffix=".zip") as path:
        return list(read_manifest_from_zip(path).requirements)


def _pushed_size(pushed: ImageRef) -> tuple[int, int]:
    manifest, _, _ = registry(pushed.registry).manifest(pushed.repository, pushed.digest)
    layers = manifest.get("layers", [])
    return sum(layer["size"] for layer in layers) + manifest["config"]["size"], len(layers)


def record_image(build: ImageBuild, pushed: ImageRef, size: int, log_blob: Blob) -> None:
    """The revision's image and build log (marketplace.services.revision_set_image: the one change a
    ready revision allows) and the build's success, together."""
    image = str(replace(pushed, digest=""))
    with transaction.atomic():
        old_logs = marketplace_services.revision_set_image(build.revision, image, str(pushed), log_blob)
        ImageBuild.objects.filter(pk=build.pk).update(
            status=JobStatus.SUCCEEDED, image=image, digest=pushed.digest, size=size, finished=timezone.now(),
            error="")
    for blob in old_logs:
        storage.delete_blob_if_orphan(blob)


def store_log(text: str) -> Blob:
    return storage.store_text(text, ".log")[0]


class BuildLog:
    """The build's log, written to its row as it grows (the page shows it live), and a heartbeat
    that tells the reaper the worker is alive while a quiet phase (pip, a push) runs."""

    FLUSH_SECONDS = 1.0

    def __init__(self, build: ImageBuild):
        self.build_id, self.lines, self.flushed, self.started = build.pk, [], 0.0, time.monotonic()

    def write(self, line: str) -> None:
        self.lines.append(f"[{time.monotonic() - self.started:6.1f}s] {line.rstrip()}")
        if time.monotonic() - self.flushed >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.flushed = time.monotonic()
        ImageBuild.objects.filter(pk=self.build_id).update(log=self.text()[-100_000:], heartbeat=timezone.now())

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def alive(self):
        return jobs.keep_alive(ImageBuild.objects.filter(pk=self.build_id), on_exit=self.flush)


# ---------------------------------------------------------------- for the reaper

BUILD_TASK = "images.build"
# Manual builds only: the pipeline's builds run inside its own step, which the pipeline takes up.
JOBS = jobs.JobKind("image build", ImageBuild, BUILD_TASK, fail=fail, lost=Q(trigger=BuildTrigger.MANUAL),
                    stopped_message="the worker building this image stopped; press Create microservice to try again")
