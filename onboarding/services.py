"""Accepting an upload: check it, reserve its solution, revision and version, stage its parts,
and start the pipeline after commit. A refused upload (closed site, quota reached, bad bundle)
leaves nothing behind."""

from __future__ import annotations

import contextlib
import re
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from acumos_portal import capacity, jobs
from acumos_portal.api.refusals import Refused
from acumos_portal.accounts.models import SiteSettings
from marketplace.models import Revision, Solution
from onboarding import validation
from onboarding.choices import STEPS, JobStatus, Source
from onboarding.models import OnboardingJob, StepResult
from onboarding.validation import Invalid

# Acumos part names -> the file each one is in a bundle.
PART_FILES = {"metadata": "metadata.json", "schema": "model.proto", "model": "modelpackage.zip",
              "license": "license.json"}
REQUIRED_PARTS = ("model", "metadata", "schema")
STAGING = "staging"  # staging/<job id>/<part file> in the default storage, until the job ends
PART_LABELS = {"model": "model (modelpackage.zip)", "metadata": "metadata (metadata.json)",
               "schema": "schema (model.proto)", "license": "license (license.json)"}


# ---------------------------------------------------------------- open or closed

CLOSED_MESSAGE = "Onboarding is closed on this site: an administrator has turned it off for now."


class OnboardingClosed(Refused):
    """The site does not take new models now (SiteSettings.onboarding_open is off)."""

    def __init__(self):
        super().__init__(CLOSED_MESSAGE)


def onboarding_open() -> bool:
    return SiteSettings.current().onboarding_open


def check_open() -> None:
    """Asked by every entry point before it reads an upload's body, so a closed site stores nothing."""
    if not onboarding_open():
        raise OnboardingClosed()


# ---------------------------------------------------------------- the jobs-in-flight quota

IN_FLIGHT = (JobStatus.PENDING, JobStatus.RUNNING)


class OnboardingQuotaReached(Refused):
    """The user has as many onboarding jobs in flight as ACUMOS_QUOTA_ONBOARDING_JOBS allows (everyone,
    admins too: each job runs the uploaded model's code in its smoke test). The message says so and
    how to free one; `details` (the quota, the jobs' ids) is for the APIs."""

    def __init__(self, jobs: list[str], limit: int):
        have = f"{len(jobs)} onboarding job{'' if len(jobs) == 1 else 's'} in flight"
        if len(jobs) == limit:
            message = f"You have {have}, the most allowed per user: wait for one to finish"
        else:  # the quota was lowered below what the user had
            message = (f"You have {have} and the most allowed per user is {limit}: "
                       f"wait for {len(jobs) - limit + 1} to finish")
        super().__init__(f"{message} (each job's page shows its steps), then upload again.",
                         details={"quota": limit, "in_flight": len(jobs), "jobs": jobs,
                                  "setting": "ACUMOS_QUOTA_ONBOARDING_JOBS"})


def check_quota(user) -> None:
    """Asked by every entry point before it reads an upload's body (so a refused upload is not even
    received), and again by onboarding_start under the user's row lock, which is what holds."""
    limit = settings.ACUMOS_QUOTA_ONBOARDING_JOBS
    jobs_in_flight = [str(pk) for pk in OnboardingJob.objects.filter(owner=user, status__in=IN_FLIGHT)
                      .order_by("created").values_list("pk", flat=True)]
    if len(jobs_in_flight) >= limit:
        raise OnboardingQuotaReached(jobs_in_flight, limit)


def _lock_user(user) -> None:
    """Two uploads of one user at once take turns from here to their commit, so the second counts the
    first's job (PostgreSQL, READ COMMITTED). SQLite ignores the lock; it lets one transaction write at a
    time, and one that read before another wrote cannot write after it ("database is locked")."""
    get_user_model().objects.select_for_update().only("pk").get(pk=user.pk)


# ---------------------------------------------------------------- accepting an upload

def check_bundle(parts: dict[str, Path]) -> dict:
    """Run the cheap checks now, so a caller learns at once what is wrong. Returns the metadata."""
    missing = [p for p in REQUIRED_PARTS if p not in parts]
    if missing:
        labels = ", ".join(PART_LABELS[p] for p in missing)
        raise Invalid(missing[0], f"the upload is missing required parts: {labels}",
                      [{"field": p, "message": "this part is required"} for p in missing])
    metadata = validation.validate_metadata(parts["metadata"])
    proto = validation.validate_proto(parts["schema"], metadata)
    validation.validate_package(parts["model"], proto)
    if "license" in parts:
        validation.validate_licence(parts["license"])
    return metadata


def onboarding_start(*, user, parts: dict[str, Path], source: str = Source.API, tracking_id: str = "",
                     create_microservice: bool = True) -> OnboardingJob:
    check_open()  # the callers asked already; this keeps any future entry point from forgetting
    check_quota(user)  # likewise (before the bundle's checks); asked again below, where it holds
    metadata = check_bundle(parts)
    job_id = uuid.uuid4()
    staged: list[str] = []
    try:
        # Staged before the transaction: copying gigabytes must not hold the database's write lock
        # (SQLite has one), and a full disk fails the upload before any row is written.
        keys = {part: _stage(job_id, part, path, staged) for part, path in parts.items()}
        with transaction.atomic():
            _lock_user(user)
            check_quota(user)
            job = _create_job(job_id, user, metadata, parts=keys, source=source, tracking_id=tracking_id,
                              create_microservice=create_microservice)
            _create_steps(job)
            from onboarding.tasks import first_step_task

            jobs.enqueue(first_step_task(), str(job.id))
    except BaseException:
        discard_staged(job_id, staged)
        raise
    return job


def _create_job(job_id, user, metadata: dict, *, parts: dict[str, str], source: str, tracking_id: str,
                create_microservice: bool) -> OnboardingJob:
    name = metadata["name"]
    solution = Solution.objects.select_for_update().filter(owner=user, name=name).first()
    version = reserve_version(user, name, solution, metadata.get("modelVersion"))
    return OnboardingJob.objects.create(
        id=job_id, owner=user, source=source, tracking_id=tracking_id or str(uuid.uuid4()), model_name=name,
        solution_uuid=solution.id if solution else _reserved_solution(user, name), version=version,
        parts=parts, create_microservice=create_microservice)


def _reserved_solution(user, name: str) -> uuid.UUID:
    """The id a new solution of this name will have. An unfinished job of the same user and name
    has reserved one already (two first uploads of a name at once, taking turns under the user's
    lock): the second gets the same id, because its revision goes to the solution the first makes
    (onboarding.steps._solution_for); the answer's solutionId must be where the revision goes."""
    reserved = (OnboardingJob.objects.filter(owner=user, model_name=name, status__in=IN_FLIGHT)
                .order_by("created").values_list("solution_uuid", flat=True).first())
    return reserved or uuid.uuid4()


def _stage(job_id, part: str, path: Path, staged: list[str]) -> str:
    key = f"staging/{job_id}/{PART_FILES[part]}"
    staged.append(key)  # before the save: a save cut short (the disk full) leaves part of a file
    with open(path, "rb") as handle:
        saved = default_storage.save(key, File(handle))
    if saved != key:
        staged.append(saved)
    return saved


def discard_staged(job_id, keys) -> None:
    """Delete a job's staged files and its staging directory (of a local storage)."""
    for key in keys:
        default_storage.delete(key)
    with contextlib.suppress(NotImplementedError, OSError):  # remote storage has no directories
        Path(default_storage.path(f"staging/{job_id}")).rmdir()


def sweep_staging() -> list[str]:
    """Staged files no unfinished job holds, left by a process that died between staging an upload
    and its commit, or while discarding a finished job's. Only those untouched for
    ACUMOS_JOB_STALE_SECONDS: a directory being staged right now has no job row yet."""
    try:
        folders, _ = default_storage.listdir(STAGING)
    except FileNotFoundError:
        return []
    cutoff = timezone.now() - timedelta(seconds=settings.ACUMOS_JOB_STALE_SECONDS)
    live = {str(pk) for pk in OnboardingJob.objects.filter(status__in=IN_FLIGHT).values_list("pk", flat=True)}
    done = []
    for folder in sorted(set(folders) - live):
        keys = [f"{STAGING}/{folder}/{name}" for name in default_storage.listdir(f"{STAGING}/{folder}")[1]]
        if all(default_storage.get_modified_time(key) < cutoff for key in keys):
            discard_staged(folder, keys)
            done.append(f"staging/{folder}: removed (no unfinished job holds it)")
    return done


def _create_steps(job: OnboardingJob) -> None:
    StepResult.objects.bulk_create(StepResult(job=job, name=name, position=i) for i, (name, _) in enumerate(STEPS))


# ---------------------------------------------------------------- versions

def reserve_version(user, name: str, solution: Solution | None, requested: str | None) -> str:
    """metadata `modelVersion`, or the next minor version after every known and pending one."""
    taken = _taken_versions(user, name, solution)
    if requested:
        if requested in taken:
            raise Invalid("metadata", f"version {requested} of {name!r} already exists; change modelVersion "
                          "or leave it out to get the next version", [{"field": "modelVersion",
                                                                       "message": "already exists"}])
        return requested
    parsed = [v for v in (_semver(t) for t in taken) if v is not None]
    if not parsed:
        return "1.0.0"
    major, minor, _ = max(parsed)
    return f"{major}.{minor + 1}.0"


def _taken_versions(user, name: str, solution: Solution | None) -> set[str]:
    pending = OnboardingJob.objects.filter(owner=user, model_name=name, status__in=[JobStatus.PENDING,
                                                                                    JobStatus.RUNNING])
    taken = set(pending.values_list("version", flat=True))
    if solution is not None:
        taken |= set(Revision.objects.filter(solution=solution).values_list("version", flat=True))
    return taken


def _semver(text: str) -> tuple[int, int, int] | None:
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        return None
    return int(match[1]), int(match[2]), int(match[3] or 0)


# ---------------------------------------------------------------- a whole bundle in one zip

_BUNDLE_NAMES = {"metadata.json": "metadata", "model.proto": "schema", "modelpackage.zip": "model",
                 "model.zip": "model", "license.json": "license"}


def split_bundle_zip(bundle: Path, dest: Path, max_bytes: int) -> dict[str, Path]:
    """The parts of a bundle uploaded as one zip (flat, or inside one folder), streamed out."""
    try:
        archive = zipfile.ZipFile(bundle)
    except (zipfile.BadZipFile, OSError) as exc:
        raise Invalid("bundle", f"the bundle is not a readable zip: {exc}") from exc
    parts: dict[str, Path] = {}
    with archive:
        for info in archive.infolist():
            part = _BUNDLE_NAMES.get(PurePosixPath(info.filename).name)
            if part and not info.is_dir() and part not in parts:
                parts[part] = _extract_part(archive, info, dest / PART_FILES[part], max_bytes)
    return parts


def _extract_part(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, max_bytes: int) -> Path:
    if info.file_size > max_bytes:
        raise Invalid("bundle", f"{info.filename} is larger than the limit of {max_bytes} bytes")
    written = 0
    try:
        with archive.open(info) as src, open(target, "wb") as out:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > max_bytes:
                    raise Invalid("bundle", f"{info.filename} expands past the limit of {max_bytes} bytes")
                out.write(chunk)
    except OSError as exc:
        if capacity.is_disk_full(exc):  # the server's fault, not the bundle's (507)
            raise
        raise Invalid("bundle", f"{info.filename} in the bundle is corrupt: {exc}") from exc
    except (zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError) as exc:
        raise Invalid("bundle", f"{info.filename} in the bundle is corrupt: {exc}") from exc
    return target
