"""Reads, and the one place that decides who may see and change deployments.

Operators and admins see and run every deployment; anyone else sees and runs only those they
created. Deploying needs a revision the user may see (marketplace.selectors decides) and either
an operator or admin role, being the model's owner, or an agreement that lets the user deploy it
(a licensee, treated as an owner would be); and a target open to the user: operators and admins use
every enabled target, owners and licensees only those whose `deployers` is "owners".
Anyone but operators and admins has at most ACUMOS_QUOTA_LIVE_DEPLOYMENTS live deployments.
A stopped deployment's grace period is ended early by admins, or by its creator if the site allows
(can_end_grace_early). Targets are configured by admins only."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from acumos_portal.accounts.choices import Role
from acumos_portal.accounts.models import SiteSettings
from acumos_portal.choices import UNFINISHED, JobStatus
from deployment.choices import SERVING_CHANGES, DeploymentStatus, OperationKind, TargetDeployers
from deployment.models import Deployment, Operation, Rollout, Target
from licensing import deployments as licence
from licensing.policy import Decision
from marketplace import signature
from marketplace.choices import ArtifactKind, RevisionStatus
from marketplace.models import Revision, Solution
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


def in_grace_period(deployment: Deployment) -> bool:
    """Stopped, and kept (restartable) until `destroy_after`: the schedule destroys it then."""
    due = deployment.destroy_after
    return deployment.status in (DeploymentStatus.STOPPED, DeploymentStatus.FAILED) and bool(
        due and due > timezone.now())


def owners_may_end_grace_early() -> bool:
    """The site's choice (Manage → Site settings); off until an admin turns it on."""
    return bool(SiteSettings.objects.filter(pk=1).values_list("owners_may_end_grace_early", flat=True).first())


def can_end_grace_early(user, deployment: Deployment) -> bool:
    """Destroy a stopped deployment before its grace period ends: admins always; whoever created it
    (an operator too, for their own) when the site allows it. An operator does not end the grace
    period of someone else's deployment: the grace period is its owner's time to change their mind."""
    if not _signed_in(user):
        return False
    if user.is_portal_admin:
        return True
    return deployment.created_by_id == user.pk and owners_may_end_grace_early()


def destroy_waits(user, deployment: Deployment) -> bool:
    """The page says when it goes instead of offering a Destroy that would be refused."""
    return in_grace_period(deployment) and not can_end_grace_early(user, deployment)


def can_deploy(user, revision: Revision, *, seen: bool = False, manages: bool | None = None) -> bool:
    """Operators and admins deploy any revision they see, owners and co-owners their own, and licensees
    a revision their agreement lets them deploy (where its owners may: targets_for). A caller that knows
    already passes it on: `seen` (found through visible_revisions), `manages` (can_change_solution's
    answer)."""
    if not _signed_in(user) or not (seen or visible_revisions(user).filter(pk=revision.pk).exists()):
        return False
    if runs_any_deployment(user):
        return True
    if manages if manages is not None else can_change_solution(user, revision.solution):
        return True
    return licence.entitled_to_deploy(user, revision)


def deploy_refusal(user, revision: Revision) -> Decision | None:
    """Why a signed-in user who may not deploy `revision` (can_deploy said no) may not, when its licence
    is the reason: the licence's decision (no agreement, revoked, ended, used up), whose sentence says
    what to do next. None: the licence is not what is missing (an open model is its owners' to deploy)."""
    if not _signed_in(user):
        return None
    decision = licence.decide_deploy(user, revision)
    return None if decision.allowed else decision


# ---------------------------------------------------------------- shared for Try it

def can_share(user, deployment: Deployment) -> bool:
    """Turn `shared` on or off: whoever may change the deployment (can_manage)."""
    return can_manage(user, deployment)


def _tryable_by(user, deployments: QuerySet[Deployment]) -> QuerySet[Deployment]:
    """Those of `deployments` that `user` may try: shared, running with an endpoint, serving a revision
    the user may see (marketplace.selectors.visible_revisions: not only the model, the very version, so
    an unpublished version of a public model is not tried through a shared deployment); none for a
    visitor who is not signed in or whose account is inactive."""
    if not _signed_in(user) or not user.is_active:
        return deployments.none()
    return (deployments.filter(shared=True, status=DeploymentStatus.RUNNING).exclude(endpoint_url="")
            .filter(revision__in=visible_revisions(user).values("pk")))


def shared_deployment_for(solution: Solution, user=None) -> Deployment | None:
    """The deployment a model page's Try it sends requests to, or None.

    Contract: among the running deployments marked `shared` (with an endpoint) that serve any revision
    of `solution`, the one serving the newest revision (by the revision's creation), then the most
    recently created. With `user`, only those the user may try (can_try_shared), so an older shared
    version they may see is found when the newest is not theirs to see; without it, any (then ask
    can_try_shared before calling it). Read with its target, revision, solution and creator."""
    deployments = Deployment.objects.filter(revision__solution=solution)
    deployments = (_tryable_by(user, deployments) if user is not None
                   else deployments.filter(shared=True, status=DeploymentStatus.RUNNING).exclude(endpoint_url=""))
    return (deployments.select_related("target", "revision__solution", "created_by")
            .order_by("-revision__created", "-created").first())


def can_try_shared(user, deployment: Deployment) -> bool:
    """Whether `user` may send requests to `deployment` through the portal's Try it (not its endpoint,
    which they are not told). Contract: a signed-in, active user; the deployment is `shared` and
    running with an endpoint; and the user may see the revision it serves now (visible_revisions; a
    swap to a version they may not see closes it to them). No role is needed: who may deploy is
    can_deploy's question, not this one."""
    return _tryable_by(user, Deployment.objects.filter(pk=deployment.pk)).exists()


def can_configure_targets(user) -> bool:
    return _signed_in(user) and user.is_portal_admin


def usable_targets() -> QuerySet[Target]:
    return Target.objects.filter(enabled=True)


def targets_for(user) -> QuerySet[Target]:
    """The enabled targets the user may deploy to: every one for operators and admins; for anyone
    else signed in, those open to model owners (and to licensees, who deploy there as owners would).
    With can_deploy (which models) this is the whole rule: the deploy form offers these, and the API
    and the form refuse any other target as if it did not exist."""
    if not _signed_in(user):
        return Target.objects.none()
    if runs_any_deployment(user):
        return usable_targets()
    return usable_targets().filter(deployers=TargetDeployers.OWNERS)


# ---------------------------------------------------------------- the live-deployments quota

# A runner stands behind these, or soon will (pending: its deploy operation has not run yet).
QUOTA_STATUSES = (DeploymentStatus.PENDING, DeploymentStatus.RUNNING, DeploymentStatus.DOWN)


def deployment_quota(user) -> int | None:
    """How many live deployments the user may have; None: no limit (operators and admins run the site)."""
    return None if runs_any_deployment(user) else settings.ACUMOS_QUOTA_LIVE_DEPLOYMENTS


def live_deployments_of(user) -> QuerySet[Deployment]:
    """What counts against the user's quota: the deployments they created that are pending, running
    or not answering, and stopped or failed ones with a start under way (the start makes them live)."""
    starting = Operation.objects.filter(kind=OperationKind.START, status__in=UNFINISHED)
    return Deployment.objects.filter(created_by=user).filter(
        Q(status__in=QUOTA_STATUSES) | Q(pk__in=starting.values("deployment_id")))


def deployment_quota_reached(user, *, starting: Deployment | None = None) -> tuple[str, dict]:
    """("", {}) while the user may have one more live deployment (deploy, or start `starting` again);
    else the message that says the quota and how to free it, and the details the API gives."""
    limit = deployment_quota(user)
    if limit is None:
        return "", {}
    live = live_deployments_of(user)
    if starting is not None:
        live = live.exclude(pk=starting.pk)
    ids = [str(pk) for pk in live.values_list("pk", flat=True)]
    if len(ids) < limit:
        return "", {}
    what = "start this one again" if starting is not None else "deploy another"
    have = f"{len(ids)} live deployment{'' if len(ids) == 1 else 's'}"
    if len(ids) == limit:
        message = f"You have {have}, the most allowed per user: stop one (Deployments → Stop) to {what}."
    else:  # the quota was lowered below what the user had
        message = (f"You have {have} and the most allowed per user is {limit}: stop {len(ids) - limit + 1} "
                   f"(Deployments → Stop) to {what}.")
    return message, {"quota": limit, "live": len(ids), "live_deployments": ids,
                     "setting": "ACUMOS_QUOTA_LIVE_DEPLOYMENTS"}


def swappable_revisions(user) -> QuerySet[Revision]:
    """What may be swapped into a deployment: any ready revision the user may see, of any model."""
    return (visible_revisions(user).filter(status=RevisionStatus.READY)
            .order_by("solution__name", "-ready_at"))


def rollouts_of(deployment: Deployment) -> QuerySet[Rollout]:
    """Its canary and shadow rollouts, newest first: whoever may see the deployment sees them; whoever may
    manage it (can_manage) promotes, aborts and sets how new revisions roll out."""
    return deployment.rollouts.select_related("revision__solution", "previous_revision__solution", "decided_by")


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


def already_deployed(user, revision: Revision) -> dict[str, list[Deployment]]:
    """What the deploy form warns of before a second copy is made: the user's visible deployments of
    this very revision, not destroyed, on the targets the user may deploy to, as "running" (pending,
    running, not answering) and "kept" (stopped or failed, still restartable). Another user's
    deployments are not told (visible_deployments)."""
    found = deployments_of_revision(user, revision).filter(target__in=targets_for(user)).order_by("-created")
    running = [deployment for deployment in found if deployment.status in QUOTA_STATUSES]
    return {"running": running, "kept": [deployment for deployment in found if deployment not in running]}


def deployments_serving(solution: Solution) -> QuerySet[Deployment]:
    """Every deployment, whoever made it, that serves a version of `solution` and is not destroyed: what
    deleting the model leaves running (the model page's delete warning lists them to its owner, who
    sees each one's name, target, status and creator; only can_manage opens their pages)."""
    return (Deployment.objects.filter(revision__solution=solution).exclude(status=DeploymentStatus.DESTROYED)
            .select_related("target", "revision__solution", "created_by").order_by("-created"))


def served_methods(revision: Revision | None) -> list[str]:
    """The methods the revision's proto declares: all that "Try it" may call on its deployment."""
    if revision is None:
        return []
    try:
        methods = signature.api_signature(list(revision.artifacts.select_related("blob")))
    except signature.SignatureUnavailable:
        return list(samples_of(revision))
    return [method.name for method in methods]


def samples_of(revision: Revision | None) -> dict:
    """The requests the model's package says it answers (its smoke-test samples), to fill the
    "try it" box. Read from the zip's manifest only, and once per package (marketplace.signature)."""
    if revision is None:
        return {}
    return signature.samples_of(list(revision.artifacts.filter(kind=ArtifactKind.MODEL).select_related("blob")))

