"""What each pipeline step does. Each takes (job, step), returns log text, and raises StepFailed
(permanent), StepSkipped or acumos_portal.jobs.Transient (retried). The steps are listed once, in
onboarding.choices.STEPS; each is the function of its name here (STEP_FUNCTIONS)."""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager

from django.conf import settings
from django.db import transaction

from acumos_portal.jobs import Transient
from images import services as image_services
from images.builders.base import BuilderUnavailable, BuildFailed
from marketplace import descriptors, storage
from marketplace import services as marketplace_services
from marketplace.choices import ARTIFACT_FILE_NAMES, ArtifactKind, RevisionStatus
from marketplace.models import Artifact, Blob, Revision
from onboarding import bundle, smoke, validation
from onboarding.bundle import PART_FILES, PART_KINDS, staged
from onboarding.choices import STEPS
from onboarding.validation import Invalid


class StepFailed(Exception):
    """A permanent failure: the bundle is wrong, retrying cannot help."""

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class StepSkipped(Exception):
    """The step does not apply to this upload (no licence, no image builder configured)."""


@contextmanager
def invalid_is_failure():
    try:
        yield
    except Invalid as exc:
        raise StepFailed(exc.message, exc.as_details()) from exc


def _metadata(job) -> dict:
    with staged(job, "metadata") as path:
        return json.loads(path.read_bytes())


# ---------------------------------------------------------------- validation steps

def validate_metadata(job, step) -> str:
    with staged(job, "metadata") as path, invalid_is_failure():
        metadata = validation.validate_metadata(path)
    methods = ", ".join(metadata["methods"])
    return f"schema {metadata['schema']}; name {metadata['name']}; methods: {methods}\n"


def validate_proto(job, step) -> str:
    with staged(job, "schema") as path, invalid_is_failure():
        proto = validation.validate_proto(path, _metadata(job))
    rpcs = "; ".join(f"{n}({m.input.DESCRIPTOR.name}) -> {m.output.DESCRIPTOR.name}" for n, m in proto.methods.items())
    return f"compiled; service {proto.service_name}: {rpcs}\n"


def validate_package(job, step) -> str:
    with staged(job, "schema") as proto_path, invalid_is_failure():
        proto = validation.validate_proto(proto_path, _metadata(job))
        with staged(job, "model") as path:
            manifest = validation.validate_package(path, proto)
    samples = ", ".join(manifest.samples) or "none (the smoke test can only load it)"
    return f"flavour {manifest.flavour}; model {manifest.model}; samples for: {samples}\n"


def validate_licence(job, step) -> str:
    if "license" not in job.parts:
        raise StepSkipped("no license.json was uploaded")
    with staged(job, "license") as path, invalid_is_failure():
        licence = validation.validate_licence(path)
    return f"licence {licence['licenseName']} ({licence['keyword']})\n"


# ---------------------------------------------------------------- storing and recording

def store_artifacts(job, step) -> str:
    stored, lines = {}, []
    for part in job.parts:
        try:
            with staged(job, part) as path:
                blob, created = storage.store_file(path)
        except OSError as exc:  # storage full or unreachable: say so, not "internal error"
            raise StepFailed(f"could not store {PART_FILES[part]} in the artifact storage: {exc}") from exc
        if created:
            # Recorded at once: if a later part fails, or the worker dies, the cleanup still finds it
            # (a re-run would see it as "already stored" and never record it).
            job.created_blobs.append(blob.pk)
            job.save(update_fields=["created_blobs"])
        stored[part] = blob.pk
        reused = "" if created else ", already stored"
        lines.append(f"{PART_FILES[part]}: sha256 {blob.sha256} ({blob.size} bytes){reused}")
    step.details = {"blobs": stored}
    step.save(update_fields=["details"])
    return "\n".join(lines) + "\n"


def create_revision(job, step) -> str:
    made = Revision.objects.select_related("solution").filter(pk=job.revision_uuid).first()
    if made is not None:  # made by an attempt whose worker stopped (or lost the database) before recording it
        return f"revision {made.version} ({made.id}) of solution {made.solution.name} was already made\n"
    metadata = _metadata(job)
    blobs = job.steps.get(name="store_artifacts").details["blobs"]
    flavour = bundle.package_manifest(job).flavour
    with transaction.atomic(), imported_is_failure():
        revision, created = marketplace_services.revision_create(
            owner=job.owner, solution_id=job.solution_uuid, solution_name=job.model_name, toolkit=flavour,
            revision_id=job.revision_uuid, version=job.version, metadata=metadata,
            artifacts={PART_KINDS[part]: Blob.objects.get(pk=blob_id) for part, blob_id in blobs.items()})
        if created:  # recorded with it: the cleanup deletes the solution only if this job made it
            job.created_solution = True
            job.save(update_fields=["created_solution"])
    solution = revision.solution
    verb = "created solution" if created else "new revision of solution"
    return f"{verb} {solution.name} ({solution.id}); revision {revision.version} ({revision.id})\n"


@contextmanager
def imported_is_failure():
    try:
        yield
    except marketplace_services.ImportedReadOnly as exc:
        raise StepFailed(exc.message) from exc


@contextmanager
def immutable_is_failure():
    try:
        yield
    except marketplace_services.RevisionImmutable as exc:
        raise StepFailed(exc.message) from exc


def add_artifact(revision: Revision, kind: str, *, blob: Blob | None = None, uri: str = "") -> Artifact:
    """marketplace.services.artifact_add, its refusal a failure of the step (the job page says why)."""
    with immutable_is_failure():
        return marketplace_services.artifact_add(revision, kind, blob=blob, uri=uri)


def generate_descriptors(job, step) -> str:
    revision = Revision.objects.select_related("solution").get(pk=job.revision_uuid)
    with staged(job, "schema") as path:
        proto = validation.validate_proto(path, revision.metadata)
    marketplace_services.record_interface(revision, descriptors.interface(proto))
    documents = {ArtifactKind.PROTOBUF_JSON: descriptors.protobuf_json(proto),
                 ArtifactKind.TGIF: descriptors.tgif_json(proto, revision)}
    lines = []
    made = set(revision.artifacts.values_list("kind", flat=True))  # by an attempt cut short before it was recorded
    for kind, document in documents.items():
        if kind in made:
            continue
        blob = _store_json(job, document)
        add_artifact(revision, kind, blob=blob)
        lines.append(f"{ARTIFACT_FILE_NAMES[kind]}: sha256 {blob.sha256}")
    return "\n".join(lines) + "\n"


def _store_json(job, document: dict) -> Blob:
    return _store_generated(job, json.dumps(document, indent=2, sort_keys=True), ".json")


def _store_generated(job, text: str, suffix: str) -> Blob:
    """Store a file the pipeline made (descriptors, the log) and record a new blob for cleanup."""
    blob, created = storage.store_text(text, suffix)
    if created:
        job.created_blobs.append(blob.pk)
        job.save(update_fields=["created_blobs"])
    return blob


# ---------------------------------------------------------------- running it

def smoke_test(job, step) -> str:
    if not settings.ACUMOS_SMOKE_TEST:
        raise StepSkipped("smoke tests are switched off (ACUMOS_SMOKE_TEST=false)")
    directory = smoke.workspace()
    try:
        bundle = directory / "bundle"
        bundle.mkdir()
        for part in ("metadata", "schema", "model"):
            with staged(job, part) as path:
                shutil.copyfile(path, bundle / PART_FILES[part])  # streams: packages can be gigabytes
        checked = smoke.run(directory, bundle, timeout=settings.ACUMOS_SMOKE_TIMEOUT)
    except smoke.SmokeFailed as exc:
        raise StepFailed(str(exc), {"runner_log": exc.log_tail}) from exc
    finally:
        smoke.discard(directory)
    marketplace_services.record_resources(job.revision_uuid, checked.resources)
    return checked.log + smoke.describe(checked.resources)


def build_image(job, step) -> str:
    """The runner image: base + the bundle, pushed to the registry (images.services). A build that
    cannot succeed fails the onboarding, saying why; an unreachable engine or registry is retried."""
    if not job.create_microservice:
        raise StepSkipped("isCreateMicroservice was false")
    problem = image_services.configuration_problem()
    if problem:
        raise StepSkipped(problem)
    revision = Revision.objects.select_related("solution").get(pk=job.revision_uuid)
    build = image_services.start_pipeline_build(revision, job.owner)
    step.details = {"image_build": str(build.pk)}
    step.save(update_fields=["details"])
    try:
        pushed = image_services.execute(build, store_log=lambda text: _store_generated(job, text, ".log"))
    except BuildFailed as exc:
        raise StepFailed(f"the image build failed: {exc}", {"image_build": str(build.pk)}) from exc
    except BuilderUnavailable as exc:
        image_services.fail(build, str(exc))
        raise Transient(str(exc)) from exc
    build.refresh_from_db()
    return build.log + f"image {pushed}\n"


def mark_ready(job, step) -> str:
    revision = Revision.objects.get(pk=job.revision_uuid)
    if revision.status == RevisionStatus.READY:  # an attempt cut short after it made it ready
        return f"revision {revision.version} is ready\n"
    if not revision.artifacts.filter(kind=ArtifactKind.LOG).exists():
        add_artifact(revision, ArtifactKind.LOG, blob=_store_generated(job, onboarding_log(job), ".log"))
    marketplace_services.revision_mark_ready(revision)
    return f"revision {revision.version} is ready\n"


def onboarding_log(job) -> str:
    lines = [f"onboarding job {job.id} for {job.model_name} {job.version}"]
    for step in job.steps.all():
        lines.append(f"== {step.title}: {step.status}")
        lines.extend(filter(None, [step.log.rstrip(), step.error]))
    return "\n".join(lines) + "\n"


# Each step is the function of its name (onboarding.choices.STEPS is the one list).
STEP_FUNCTIONS = {name: globals()[name] for name, _ in STEPS}
