"""Accepting an upload: check it, reserve its solution, revision and version, stage its parts,
and start the pipeline after commit. A refused upload (closed site, quota reached, bad bundle)
leaves nothing behind."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction

from acumos_portal import jobs
from acumos_portal.accounts.models import SiteSettings
from acumos_portal.accounts.services import lock_for_quota
from acumos_portal.api.refusals import Refused
from acumos_portal.choices import UNFINISHED
from marketplace.models import Revision, Solution
from onboarding import bundle, validation
from onboarding.bundle import PART_LABELS, REQUIRED_PARTS
from onboarding.choices import STEPS, Source, step_task_name
from onboarding.models import OnboardingJob, StepResult
from onboarding.validation import Invalid

# ---------------------------------------------------------------- open or closed

CLOSED_MESSAGE = "Onboarding is closed on this site: an administrator has turned it off for now."


class OnboardingClosed(Refused):
    """The site does not take new models now (SiteSettings.onboarding_open is off)."""

    # 503, not 403: it is the same for every caller (admins too) and says "not now" rather than
    # "not you" (403 reads as a missing role or a bad token, and the caller would look at their
    # credentials). No Retry-After: nobody knows when an admin reopens it.
    status = 503
    code = "onboarding_closed"

    def __init__(self):
        super().__init__(CLOSED_MESSAGE)


def onboarding_open() -> bool:
    return SiteSettings.current().onboarding_open


def check_open() -> None:
    """Asked by every entry point before it reads an upload's body, so a closed site stores nothing."""
    if not onboarding_open():
        raise OnboardingClosed()


# ---------------------------------------------------------------- the jobs-in-flight quota

class OnboardingQuotaReached(Refused):
    """The user has as many onboarding jobs in flight as ACUMOS_QUOTA_ONBOARDING_JOBS allows (everyone,
    admins too: each job runs the uploaded model's code in its smoke test). The message says so and
    how to free one; `details` (the quota, the jobs' ids) is for the APIs."""

    # 429 Too Many Requests: "not you, not now", until one of the user's jobs ends. No Retry-After:
    # nobody knows when that is.
    status = 429
    code = "quota_exceeded"

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
    jobs_in_flight = [str(pk) for pk in OnboardingJob.objects.filter(owner=user, status__in=UNFINISHED)
                      .order_by("created").values_list("pk", flat=True)]
    if len(jobs_in_flight) >= limit:
        raise OnboardingQuotaReached(jobs_in_flight, limit)


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
                     create_microservice: bool = True, scope: uuid.UUID | None = None) -> OnboardingJob:
    """`scope`: the solution a scoped token limits the upload to (accounts.services.token_scope)."""
    check_open()  # the callers asked already; this keeps any future entry point from forgetting
    check_quota(user)  # likewise (before the bundle's checks); asked again below, where it holds
    metadata = check_bundle(parts)
    check_scope(user, metadata, scope)
    job_id = uuid.uuid4()
    staged: list[str] = []
    try:
        # Staged before the transaction: copying gigabytes must not hold the database's write lock
        # (SQLite has one), and a full disk fails the upload before any row is written.
        keys = {part: bundle.stage(job_id, part, path, staged) for part, path in parts.items()}
        with transaction.atomic():
            lock_for_quota(user)
            check_quota(user)
            job = _create_job(job_id, user, metadata, parts=keys, source=source, tracking_id=tracking_id,
                              create_microservice=create_microservice)
            _create_steps(job)
            jobs.enqueue(step_task_name(STEPS[0][0]), str(job.id))
    except BaseException:
        bundle.discard_staged(job_id, staged)
        raise
    return job


class OutOfScope(Refused):
    """A scoped token's upload that would not be a revision of its solution."""

    status = 403
    code = "token_scope"


def check_scope(user, metadata: dict, scope: uuid.UUID | None) -> None:
    """A scoped token (a retraining hook's) may only add a revision to its solution. The solution is
    found as every upload's is, by owner and name (_create_job; the token is its owner's), so the
    metadata must name it: a revision is not moved into a solution under another name than the one
    its bundle carries (its proto package, its page, a later re-push all say the bundle's name), and
    a trainer that pushes the wrong model learns it at once rather than finding a revision elsewhere.
    Nor may the token make a new solution (a renamed or deleted one is refused the same way)."""
    if scope is None:
        return
    solution = Solution.objects.filter(pk=scope, deleted_at__isnull=True).only("name", "owner_id").first()
    if solution is None or solution.owner_id != user.pk:
        raise OutOfScope(f"this token may only push revisions of solution {scope}, which is gone or no longer "
                         "this account's")
    if metadata["name"] != solution.name:
        raise OutOfScope(f"this token may only push revisions of “{solution.name}” (solution {scope}); the "
                         f"metadata names “{metadata['name']}”: push it with that name", "metadata")


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
    reserved = (OnboardingJob.objects.filter(owner=user, model_name=name, status__in=UNFINISHED)
                .order_by("created").values_list("solution_uuid", flat=True).first())
    return reserved or uuid.uuid4()


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
    pending = OnboardingJob.objects.filter(owner=user, model_name=name, status__in=UNFINISHED)
    taken = set(pending.values_list("version", flat=True))
    if solution is not None:
        taken |= set(Revision.objects.filter(solution=solution).values_list("version", flat=True))
    return taken


def _semver(text: str) -> tuple[int, int, int] | None:
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        return None
    return int(match[1]), int(match[2]), int(match[3] or 0)


