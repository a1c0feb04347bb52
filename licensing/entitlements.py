"""Entitlements: what a runner of a model under an agreement may answer, signed, so that it meters every
prediction without asking the portal. Issued to each replica of a deployment that holds a live slot
(a DeploymentGrant), reserving predictions from the agreement's predict rule up front (the licensor never
loses: a runner that loses its state loses at most the use since the last report); renewed when most of
it is used or its time is mostly gone; its use pulled back into usage records by the status check, and
its unused reservation given back once its final count is known.

The runner side is runner_image.entitlement (verify) and runner_image.meter (count)."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from acumos_portal.canonical import canonical
from licensing import keys, policy, services
from licensing.choices import Action, UsageSource
from licensing.models import DeploymentGrant, Entitlement, Rule
from marketplace.choices import ArtifactKind, RevisionStatus
from marketplace.models import Artifact

log = logging.getLogger(__name__)

VERSION = 1
ALGORITHM = "EdDSA"
# Renew when this share of the reservation is used, or of the document's lifetime has passed.
RENEW_USED = 0.8
RENEW_AGE = 0.75


def metered(deployment_id) -> DeploymentGrant | None:
    """The live slot that makes a deployment metered: a model under an agreement deployed by someone
    other than its owners. None: nothing to meter (an open licence, or the owners' own deployment)."""
    return (DeploymentGrant.objects.filter(deployment_id=deployment_id, active=True)
            .select_related("agreement", "revision__solution", "user", "rule").first())


def runner_environment(deployment_id) -> dict[str, str]:
    """What a metered deployment's runner is started with: it refuses every prediction until an
    entitlement is installed, and accepts only this site's signature for this deployment."""
    if metered(deployment_id) is None:
        return {}
    import json

    return {"RUNNER_REQUIRE_ENTITLEMENT": "1", "RUNNER_DEPLOYMENT_ID": str(deployment_id),
            "RUNNER_ENTITLEMENT_KEYS": json.dumps(keys.runner_keys())}


def covered_models(grant: DeploymentGrant) -> list[str]:
    """The sha256 of every ready model package the agreement covers: a swap to one of them needs no
    new document; a model past the portal's back (another package put straight into the runner) is
    refused at predict."""
    agreement = grant.agreement
    revisions = {"revision__solution_id": agreement.solution_id, "revision__status": RevisionStatus.READY}
    if agreement.revision_id:
        revisions = {"revision_id": agreement.revision_id}
    return sorted(set(Artifact.objects.filter(kind=ArtifactKind.MODEL, blob__isnull=False, **revisions)
                      .values_list("blob__sha256", flat=True)))


@dataclass(frozen=True)
class Issued:
    entitlement: Entitlement
    document: dict


def issue(deployment_id, replica: int = 0, replicas: int = 1) -> Issued | None:
    """A signed document for one replica, or None when the deployment is not metered or its creator may
    no longer predict (the runner then answers every call with the reason it has: no entitlement)."""
    grant = metered(deployment_id)
    if grant is None:
        return None
    decision = policy.decide(policy.Who.of(grant.user), grant.revision, Action.PREDICT)
    if not decision.allowed or decision.rule_id is None:
        log.info("deployment %s: no entitlement issued (%s)", deployment_id, decision.code)
        return None
    rule = Rule.objects.select_related("agreement").get(pk=decision.rule_id)
    with transaction.atomic():
        reserved = _reserve(rule, replicas)
        if reserved == 0:
            return None
        return _signed(grant, rule, replica, reserved)


def _reserve(rule: Rule, replicas: int) -> int | None:
    """Predictions taken from the rule for one replica's document: an equal share of what is left, at
    most a block. None: unlimited (bound by time only). 0: none left."""
    if rule.count_limit is None:
        return None
    for _ in range(3):  # another reservation may take units between the read and the update
        rule.refresh_from_db(fields=["count_used", "count_limit"])
        left = rule.count_limit - rule.count_used
        share = min(settings.ACUMOS_ENTITLEMENT_BLOCK, max(1, left // max(1, replicas))) if left > 0 else 0
        if share == 0 or services.consume_count(rule, share):
            return share
    return 0


def _signed(grant: DeploymentGrant, rule: Rule, replica: int, predictions: int | None) -> Issued:
    now = timezone.now()
    not_after = now + dt.timedelta(seconds=settings.ACUMOS_ENTITLEMENT_TTL)
    if rule.agreement.ends is not None:
        not_after = min(not_after, rule.agreement.ends)
    entitlement_id = uuid.uuid4()
    raw = keys.public_raw()
    body = {"v": VERSION, "id": str(entitlement_id), "kid": keys.key_id(raw), "issuer": settings.SITE_NAME,
            "deployment": str(grant.deployment_id), "replica": replica, "solution": str(grant.revision.solution_id),
            "models": covered_models(grant), "agreement": str(rule.agreement_id),
            "assignee": f"user:{grant.user.username}" if grant.user else "", "actions": [Action.PREDICT],
            "predictions": predictions, "not_before": _iso(rule.agreement.starts or now),
            "not_after": _iso(not_after), "issued": _iso(now)}
    signature = keys.signing_key().sign(canonical(body))
    document = {"entitlement": body, "alg": ALGORITHM, "sig": base64.b64encode(signature).decode()}
    Entitlement.objects.filter(grant=grant, replica=replica, superseded_at__isnull=True).update(superseded_at=now)
    row = Entitlement.objects.create(id=entitlement_id, grant=grant, replica=replica, predictions=predictions,
                                     not_after=not_after, issued=now, document=document)
    return Issued(row, document)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- usage back

@dataclass(frozen=True)
class Report:
    """What a runner's GET /model/usage says: the installed document's id and use, and the final use of
    the documents it replaced."""

    current: str | None
    used: int
    previous: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, answer: dict) -> Report:
        current = (answer.get("entitlement") or {}).get("id")
        previous = tuple((str(p.get("id")), int(p.get("used") or 0)) for p in answer.get("previous") or ()
                         if isinstance(p, dict) and p.get("id"))
        return cls(str(current) if current else None, int(answer.get("used") or 0), previous)


def record_report(deployment_id, report: Report) -> int:
    """Usage records for what was used since the last report (each use recorded once, whichever
    checker pulls it); documents replaced settle their unused reservation. Answers the predictions
    newly recorded."""
    recorded = 0
    for entitlement_id, used in report.previous:
        if entitlement_id == report.current:  # a runner may not settle the document it still holds
            continue
        recorded += _record(deployment_id, entitlement_id, used)
        _settle(deployment_id, entitlement_id)
    if report.current:
        recorded += _record(deployment_id, report.current, report.used)
    return recorded


def _record(deployment_id, entitlement_id: str, used: int) -> int:
    """Claim the delta with a conditional update on reported_used, so two checkers never record it twice;
    a runner never reports more than the document allowed (a forged count would be refused by its meter,
    but the portal does not believe it either)."""
    row = (Entitlement.objects.filter(pk=_uuid(entitlement_id), grant__deployment_id=deployment_id)
           .select_related("grant__agreement", "grant__revision", "grant__user").first())
    if row is None:
        return 0
    used = used if row.predictions is None else min(used, row.predictions)
    delta = used - row.reported_used
    if delta <= 0:
        return 0
    with transaction.atomic():
        claimed = Entitlement.objects.filter(pk=row.pk, reported_used=row.reported_used).update(reported_used=used)
        if not claimed:
            return 0
        services.record_usage(row.grant.agreement, row.grant.revision, Action.PREDICT,
                              who=policy.Who.of(row.grant.user), quantity=delta, kind="predictions",
                              deployment_id=deployment_id, source=UsageSource.RUNNER)
    return delta


def _settle(deployment_id, entitlement_id: str) -> None:
    """A replaced document's final count is in: what it reserved and did not use goes back to the rule.
    Only a document this portal replaced, of this deployment: a runner's word alone settles nothing."""
    row = (Entitlement.objects.filter(pk=_uuid(entitlement_id), settled=False, superseded_at__isnull=False,
                                      grant__deployment_id=deployment_id).select_related("grant").first())
    if row is None or row.predictions is None:
        return
    with transaction.atomic():
        if not Entitlement.objects.filter(pk=row.pk, settled=False).update(settled=True):
            return
        unused = row.predictions - row.reported_used
        if unused > 0:
            decision_rule = Rule.objects.filter(agreement_id=row.grant.agreement_id, action=Action.PREDICT)
            decision_rule.filter(count_used__gte=unused).update(count_used=F("count_used") - unused)


def abandon(entitlement: Entitlement) -> None:
    """A document that never reached its runner (the PUT failed): what it reserved goes back to the
    agreement at once, since no runner will ever report it."""
    with transaction.atomic():
        if not Entitlement.objects.filter(pk=entitlement.pk, settled=False).update(
                settled=True, superseded_at=timezone.now()):
            return
        if entitlement.predictions:
            (Rule.objects.filter(agreement_id=entitlement.grant.agreement_id, action=Action.PREDICT,
                                 count_used__gte=entitlement.predictions)
             .update(count_used=F("count_used") - entitlement.predictions))


def _uuid(value: str):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def due_for_renewal(deployment_id, replica: int, used: int) -> bool:
    """Most of the reservation used, or most of the document's life gone."""
    row = (Entitlement.objects.filter(grant__deployment_id=deployment_id, replica=replica, superseded_at__isnull=True)
           .order_by("-issued").first())
    if row is None:
        return metered(deployment_id) is not None
    if row.predictions is not None and used >= RENEW_USED * row.predictions:
        return True
    life = (row.not_after - row.issued).total_seconds()
    return (timezone.now() - row.issued).total_seconds() >= RENEW_AGE * life
