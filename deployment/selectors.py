"""Reads, and the one place that decides who may see and change deployments.

Operators and admins see and run every deployment; anyone else sees and runs only those they
created. Deploying needs a revision the user may see (marketplace.selectors decides) and either
an operator or admin role or being the model's owner. Targets are configured by admins only."""

from __future__ import annotations

from django.db.models import QuerySet

from acumos_portal.accounts.choices import Role
from acumos_portal.choices import JobStatus
from deployment.choices import SERVING_CHANGES, DeploymentStatus
from deployment.models import Deployment, Operation, Target
from marketplace import signature
from marketplace.choices import ArtifactKind, RevisionStatus
from marketplace.models import Revision
from marketplace.selectors import can_change_solution, visible_revisions


def _signed_in(user) -> bool:
    return bool(user and user.is_authenticated)


def runs_any_deployment(user) -> bool:
    return _signed_in(user) and (user.is_portal_admin or user.has_role(Role.OPERATOR))


def visible_deployments(user) -> QuerySet[Deployment]:
    if not _signed_in(user):
        return Deployment.objects.none()
    deployments = Deployment.objects.select_related("target", "revision__solution", "created_by", "follows")
    return deployments if runs_any_deployment(user) else deployments.filter(created_by=user)


def can_manage(user, deployment: Deployment) -> bool:
    """Swap, roll back, stop, start, destroy: operators and admins, or whoever created it."""
    return _signed_in(user) and (runs_any_deployment(user) or deployment.created_by_id == user.pk)


def can_deploy(user, revision: Revision, *, seen: bool = False, manages: bool | None = None) -> bool:
    """Operators and admins deploy any revision they see, owners and co-owners their own. A caller
    that knows already passes it on: `seen` (found through visible_revisions), `manages`
    (can_change_solution's answer)."""
    if not _signed_in(user) or not (seen or visible_revisions(user).filter(pk=revision.pk).exists()):
        return False
    if runs_any_deployment(user):
        return True
    return manages if manages is not None else can_change_solution(user, revision.solution)


def can_configure_targets(user) -> bool:
    return _signed_in(user) and user.is_portal_admin


def usable_targets() -> QuerySet[Target]:
    return Target.objects.filter(enabled=True)


def swappable_revisions(user) -> QuerySet[Revision]:
    """What may be swapped into a deployment: any ready revision the user may see, of any model."""
    return (visible_revisions(user).filter(status=RevisionStatus.READY)
            .order_by("solution__name", "-ready_at"))


def history(deployment: Deployment) -> QuerySet[Operation]:
    return deployment.operations.select_related("requested_by", "revision__solution", "previous_revision__solution")


def rollback_points(deployment: Deployment) -> list[Operation]:
    """Earlier serving changes that can be gone back to: one per runner generation, newest first,
    without the one serving now."""
    seen, points = set(), []
    changes = history(deployment).filter(kind__in=SERVING_CHANGES, status=JobStatus.SUCCEEDED)
    for operation in changes.exclude(generation=None):
        if operation.generation not in seen:
            seen.add(operation.generation)
            points.append(operation)
    return points[1:]


def deployments_of_revision(user, revision: Revision) -> QuerySet[Deployment]:
    return visible_deployments(user).filter(revision=revision).exclude(status=DeploymentStatus.DESTROYED)


def samples_of(revision: Revision | None) -> dict:
    """The requests the model's package says it answers (its smoke-test samples), to fill the
    "try it" box. Read from the zip's manifest only, and once per package (marketplace.signature)."""
    if revision is None:
        return {}
    return signature.samples_of(list(revision.artifacts.filter(kind=ArtifactKind.MODEL).select_related("blob")))


def deploy_panel(revision: Revision, user) -> dict:
    """What the revision page shows about deploying it."""
    from deployment.forms import DeployForm

    return {"deployments": list(deployments_of_revision(user, revision)),
            "can_deploy": can_deploy(user, revision), "deploy_form": DeployForm()}
