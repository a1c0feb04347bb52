"""Reads, and the one place that decides who may start, see and cancel batch jobs.

Starting one on a deployment: whoever may manage that deployment (deployment.selectors.can_manage: its
creator, operators, admins). Not whoever may merely try it (a shared deployment's Try it): a batch sends a
deployment millions of rows at full speed, straight to its endpoint, which is its manager's capacity (and
licence meter) to spend, while Try it is one request at a time through the portal. Starting one on a revision
(run in a sandbox of its own on this host for the job's time): its owners and co-owners, operators and admins,
for a ready revision they see. Not a licensee: a licensed model's use is metered by its deployment's runner (the
entitlement it holds), and a sandbox started for a job has no meter; a licensee deploys it and starts the job on
that deployment. Nor anyone else who may see the model: the host's CPU is the site's to spend. Seeing and
cancelling a job: whoever asked for it, and admins (its outputs are their data)."""

from __future__ import annotations

from pathlib import PurePosixPath

from django.core.files.storage import default_storage
from django.db.models import QuerySet

from batch import outputs
from batch.models import BatchJob, BatchUpload
from deployment import selectors as deployment_selectors
from marketplace.choices import RevisionStatus
from marketplace.models import Revision
from marketplace.selectors import can_change_solution, owned_solutions, visible_revisions


def _signed_in(user) -> bool:
    return bool(user and user.is_authenticated)


def can_start(user, deployment) -> bool:
    return _signed_in(user) and user.is_active and deployment_selectors.can_manage(user, deployment)


def can_start_on_revision(user, revision: Revision) -> bool:
    """May `user` run `revision` in a sandbox for a job (the module's docstring says who and why)? Whether it is
    ready is the service's question (a refusal of its own, saying its state)."""
    if not (_signed_in(user) and user.is_active and visible_revisions(user).filter(pk=revision.pk).exists()):
        return False
    return deployment_selectors.runs_any_deployment(user) or can_change_solution(user, revision.solution)


def startable_revisions(user, limit: int = 50) -> list[Revision]:
    """The page's choices of revisions to run in the sandbox: the ready ones of the models the user owns or co-owns,
    newest first (an operator or admin may name any other they see through the API or the model page's link)."""
    if not (_signed_in(user) and user.is_active):
        return []
    ready = Revision.objects.filter(solution__in=owned_solutions(user), status=RevisionStatus.READY)
    return list(ready.select_related("solution").order_by("-ready_at")[:limit])


def visible_jobs(user) -> QuerySet[BatchJob]:
    if not _signed_in(user):
        return BatchJob.objects.none()
    jobs = BatchJob.objects.select_related("deployment__revision__solution", "revision__solution", "requested_by")
    return jobs if user.is_portal_admin else jobs.filter(requested_by=user)


def can_cancel(user, job: BatchJob) -> bool:
    return _signed_in(user) and (user.is_portal_admin or job.requested_by_id == user.pk)


def own_uploads(user) -> QuerySet[BatchUpload]:
    if not _signed_in(user):
        return BatchUpload.objects.none()
    return BatchUpload.objects.filter(owner=user)


def startable_deployments(user):
    """The deployments the user may start a batch job on (the API's choices, the page's list)."""
    return [d for d in deployment_selectors.visible_deployments(user) if can_start(user, d)]


OUTPUTS = ("predictions", "errors")


def output_download(job: BatchJob, which: str):
    """(an open file, its download name, its content type) for one of a finished job's outputs kept in the
    portal's storage, or None (no such output, or not made yet)."""
    key = {"predictions": job.predictions_key, "errors": job.errors_key}.get(which)
    if not key:
        return None
    return default_storage.open(key, "rb"), f"{job.pk}-{PurePosixPath(key).name}", outputs.media_type(key)
