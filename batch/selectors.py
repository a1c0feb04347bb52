"""Reads, and the one place that decides who may start, see and cancel batch jobs.

Starting one on a deployment: whoever may manage that deployment (deployment.selectors.can_manage: its
creator, operators, admins). Not whoever may merely try it (a shared deployment's Try it): a batch sends a
deployment millions of rows at full speed, straight to its endpoint, which is its manager's capacity (and
licence meter) to spend, while Try it is one request at a time through the portal. Seeing and cancelling a
job: whoever asked for it, and admins (its outputs are their data)."""

from __future__ import annotations

from django.db.models import QuerySet

from batch.models import BatchJob, BatchUpload
from deployment import selectors as deployment_selectors


def _signed_in(user) -> bool:
    return bool(user and user.is_authenticated)


def can_start(user, deployment) -> bool:
    return _signed_in(user) and user.is_active and deployment_selectors.can_manage(user, deployment)


def visible_jobs(user) -> QuerySet[BatchJob]:
    if not _signed_in(user):
        return BatchJob.objects.none()
    jobs = BatchJob.objects.select_related("deployment__revision__solution", "requested_by")
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
