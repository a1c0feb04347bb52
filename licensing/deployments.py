"""The policy's questions as deployment asks them, named for the moment it asks (deploy, start, swap in,
try) so that deployment.services never spells out the options of `policy.authorize`. Every rule is
still licensing.policy's; this only picks the action and what each moment consumes.

And a metered deployment's entitlements as deployment handles them (licensing.entitlements makes and
counts them; deployment's backends and services start runners with them and carry them there)."""

from __future__ import annotations

import uuid

from licensing import entitlements, policy, services
from licensing.choices import Action
from licensing.models import DeploymentGrant, Entitlement, LicenceProfile
from marketplace.models import Revision


def decide_deploy(user, revision: Revision) -> policy.Decision:
    """May `user` deploy `revision` under its licence (a dry run: nothing counted, no slot taken)?
    Code `entitled`: an agreement allows it, and its holder deploys it where its owners may."""
    return policy.decide(policy.Who.of(user), revision, Action.DEPLOY)


def entitled_to_deploy(user, revision: Revision) -> bool:
    return _may_need_agreement(revision) and decide_deploy(user, revision).code == policy.ALLOWED_ENTITLED


def _may_need_agreement(revision: Revision) -> bool:
    """False when it is known without a query that the licence needs no agreement: the profile came with
    the revision (the model page reads it with the versions) and says so, or there is none."""
    if not Revision.licence_profile.is_cached(revision):
        return True
    try:
        return revision.licence_profile.rtu_required
    except LicenceProfile.DoesNotExist:
        return False


def authorize_deploy(user, revision: Revision, deployment_id) -> policy.Decision:
    """A new deployment: one deploy from the agreement's count and a live slot for it (a
    DeploymentGrant). Called inside the transaction that made the deployment, so a denial (raised)
    takes the row back with it."""
    return policy.authorize(policy.Who.of(user), revision, Action.DEPLOY, consume=1, deployment_id=deployment_id)


def authorize_start(user, revision: Revision, deployment_id) -> policy.Decision:
    """A stopped deployment started again: its live slot again (dates, revocation, the live limit), no
    deploy from the count: it was counted when it was made."""
    return policy.authorize(policy.Who.of(user), revision, Action.DEPLOY, deployment_id=deployment_id)


def decide_swap_in(user, revision: Revision, deployment_id) -> policy.Decision:
    """May the running deployment `deployment_id` take `revision`? Dates, revocation, prohibition and
    whether the agreement covers that revision; no count and no new live slot (the deployment keeps the
    one it has). A deployment made under an agreement takes only what it covers, and one made without
    (no meter) takes no model that needs an agreement."""
    return policy.decide(policy.Who.of(user), revision, Action.DEPLOY, swap_in=True, deployment_id=deployment_id)


def authorize_swap_in(user, revision: Revision, deployment_id) -> policy.Decision:
    decision = decide_swap_in(user, revision, deployment_id)
    if not decision.allowed:
        raise policy.LicenceDenied(decision)
    return decision


def authorize_predict(user, revision: Revision) -> policy.Decision:
    """A try through someone's shared deployment: the trying user needs the right to predict. Nothing is
    counted here: the deployer's runner meters its predictions."""
    return policy.authorize(policy.Who.of(user), revision, Action.PREDICT)


def release(deployment_id) -> bool:
    """The deployment stopped, was destroyed or failed: its live slot goes back, once."""
    return services.release_deployment(deployment_id)


def live_deployment_ids(agreement) -> list:
    """The deployments running under `agreement` now (their slots are held): whose runners to tell of
    a revocation."""
    return list(DeploymentGrant.objects.filter(agreement=agreement, active=True)
                .values_list("deployment_id", flat=True))


# ---------------------------------------------------------------- metering at the runner

def runner_environment(deployment_id) -> dict[str, str]:
    """The variables a metered deployment's runner starts with (none for one that is not metered)."""
    return entitlements.runner_environment(deployment_id)


def is_metered(deployment_id) -> bool:
    return entitlements.metered(deployment_id) is not None


def issue_entitlement(deployment_id, replica: int, replicas: int) -> entitlements.Issued | None:
    return entitlements.issue(deployment_id, replica, replicas)


def entitlement_not_delivered(issued: entitlements.Issued) -> None:
    """The runner did not take the document: its reservation goes back to the agreement."""
    entitlements.abandon(issued.entitlement)


def why_no_entitlement(deployment_id) -> str:
    """Why a metered deployment got no document: the policy's sentence on its creator's predictions, or
    that another reservation took what was left between the question and the reservation."""
    grant = entitlements.metered(deployment_id)
    if grant is None:
        return "the deployment is not metered"
    decision = policy.decide(policy.Who.of(grant.user), grant.revision, Action.PREDICT)
    return decision.message if not decision.allowed else "no predictions were left to reserve"


def record_runner_usage(deployment_id, answer: dict) -> entitlements.Report:
    """A runner's GET /model/usage answer into usage records (each use once, whoever pulls it)."""
    report = entitlements.Report.of(answer)
    entitlements.record_report(deployment_id, report)
    return report


def needs_entitlement(deployment_id, replica: int, report: entitlements.Report) -> bool:
    """A runner holding no document (it never got one, lost its state, or a revocation took it: the
    policy then refuses a new one), or one mostly used or mostly expired."""
    return report.current is None or entitlements.due_for_renewal(deployment_id, replica, report.used)


def replica_of(deployment_id, report: entitlements.Report, default: int) -> int:
    """The replica the runner's document was issued to: a cluster lists its pods in no fixed order, so
    the position in the list is only the number of a runner that holds none."""
    try:
        current = uuid.UUID(str(report.current))
    except ValueError:
        return default
    replica = (Entitlement.objects.filter(pk=current, grant__deployment_id=deployment_id)
               .values_list("replica", flat=True).first())
    return default if replica is None else replica
