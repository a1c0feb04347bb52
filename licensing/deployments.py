"""The policy's questions as deployment asks them, named for the moment it asks (deploy, start, swap in,
try) so that deployment.services never spells out the options of `policy.authorize`. Every rule is
still licensing.policy's; this only picks the action and what each moment consumes."""

from __future__ import annotations

from licensing import policy, services
from licensing.choices import Action
from licensing.models import DeploymentGrant
from marketplace.models import Revision


def authorize_deploy(user, revision: Revision, deployment_id) -> policy.Decision:
    """A new deployment: one deploy from the agreement's count and a live slot for it (a
    DeploymentGrant). Called inside the transaction that made the deployment, so a denial (raised)
    takes the row back with it."""
    return policy.authorize(policy.Who.of(user), revision, Action.DEPLOY, consume=1, deployment_id=deployment_id)


def authorize_start(user, revision: Revision, deployment_id) -> policy.Decision:
    """A stopped deployment started again: its live slot again (dates, revocation, the live limit), no
    deploy from the count: it was counted when it was made."""
    return policy.authorize(policy.Who.of(user), revision, Action.DEPLOY, deployment_id=deployment_id)


def decide_swap_in(user, revision: Revision) -> policy.Decision:
    """May a running deployment take `revision`? Dates, revocation, prohibition and whether the agreement
    covers that revision; no count and no new live slot (the deployment keeps the one it has)."""
    return policy.decide(policy.Who.of(user), revision, Action.DEPLOY, swap_in=True)


def authorize_swap_in(user, revision: Revision) -> policy.Decision:
    decision = decide_swap_in(user, revision)
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
