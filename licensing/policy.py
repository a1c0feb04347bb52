"""The one policy function. Every download, deploy, swap, follow-latest, export and runner entitlement
asks `decide` (or `authorize`, which raises the denial), so the rule of who may use a model lives here
and nowhere else. It answers allowed, or denied with LUM's reason code and a sentence saying what to do.

Order (the first that applies answers):
1. no profile, or a licence without `rtuRequired`: allowed (open);
2. an owner or co-owner of a solution made here: allowed (owner). Admins are not exempt: they manage
   agreements, they do not hold them; an imported model's local owner is not its licensor either;
3. a prohibition of the action in any unrevoked agreement that applies: denied (prohibited);
4. a usable permit (active, inside its dates, a count and a live slot left): allowed (entitled); the one
   ending soonest is used first, so a licensee does not lose a short grant by spending a long one;
5. otherwise the most specific reason among the permits that apply (revoked, dates, exhausted, live
   limit), else no agreement, with the next step (request, accept, pay, wait)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from acumos_portal.api.refusals import Refused
from licensing import facts, services
from licensing.choices import Action, AgreementStatus, Denial, OfferMode, RequestStatus, RuleKind
from licensing.models import AccessRequest, DeploymentGrant, Offer, Rule
from marketplace import selectors as market
from marketplace.models import Revision

ALLOWED_OPEN, ALLOWED_OWNER, ALLOWED_ENTITLED = "open", "owner", "entitled"
_VERBS = {Action.DOWNLOAD: "download", Action.DEPLOY: "deploy", Action.PREDICT: "run predictions with",
          Action.EXPORT: "receive"}
_NOUNS = {Action.DOWNLOAD: "downloads", Action.DEPLOY: "deploys", Action.PREDICT: "predictions",
          Action.EXPORT: "exports"}


@dataclass(frozen=True)
class Who:
    """Who asks: a user of this site (possibly anonymous) or a peer marketplace (its certificate subject)."""

    user: object = None
    peer: str = ""

    @classmethod
    def of(cls, user) -> Who:
        return cls(user=user if market.signed_in(user) else None)

    @classmethod
    def for_peer(cls, subject: str) -> Who:
        return cls(peer=subject)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    code: str
    message: str
    status: int = 200
    agreement_id: uuid.UUID | None = None
    rule_id: int | None = None
    remaining: int | None = None  # of the action's count, after this use; None: no limit
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"allowed": self.allowed, "code": self.code, "message": self.message, "status": self.status,
                "agreement": str(self.agreement_id) if self.agreement_id else None, "remaining": self.remaining,
                "details": self.details}


class LicenceDenied(Refused):
    """A denial, raised: the API answers its status (403, or 402 when payment is what is missing) and code."""

    def __init__(self, decision: Decision):
        super().__init__(decision.message, details={**decision.details, "reason": decision.code})
        self.decision = decision
        self.status = decision.status
        self.code = decision.code


def authorize(who: Who, revision: Revision, action: str, **options) -> Decision:
    decision = decide(who, revision, action, **options)
    if not decision.allowed:
        raise LicenceDenied(decision)
    return decision


def decide(who: Who, revision: Revision, action: str, *, consume: int = 0, kind: str = "",
           deployment_id: uuid.UUID | None = None, swap_in: bool = False) -> Decision:
    """`consume` units of the action are taken (0: a dry run, nothing written). A deploy with a
    `deployment_id` also takes a live slot for it. `swap_in` asks whether a running deployment may take
    this revision: dates, revocation and prohibitions count, the count and the live slot do not."""
    found = facts.read(who.user, who.peer, revision, action)
    settled = _settled_before_agreements(who, revision, found, deployment_id, swap_in)
    if settled is not None:
        return settled
    rules = found.rules
    prohibited = [r for r in rules if r.kind == RuleKind.PROHIBIT and r.agreement.status == AgreementStatus.ACTIVE]
    if prohibited:
        return _prohibited(action, prohibited[0])
    permits = [r for r in rules if r.kind == RuleKind.PERMIT]
    # A deploy that consumes is a new deployment (counted once, when made): it has no slot row to read.
    slot_row = _slot_row(deployment_id) if _needs_live_slot(action, deployment_id, swap_in) and not consume else None
    held = slot_row.rule_id if slot_row is not None and slot_row.active else None
    usable = sorted((r for r in permits if _usable(r, action, consume, deployment_id, swap_in, held=held)),
                    key=_ending_first)
    for rule in usable:
        decision = _use(rule, who, revision, action, consume=consume, kind=kind, deployment_id=deployment_id,
                        swap_in=swap_in, held=held, slot_row=slot_row)
        if decision is not None:
            return decision
    if permits:
        return _most_specific_denial(action, permits, deployment_id, swap_in)
    return _no_agreement(who, revision, action)


def _settled_before_agreements(who: Who, revision: Revision, found: facts.Facts | None, deployment_id,
                               swap_in: bool) -> Decision | None:
    """What is decided without reading agreements: a swap outside the deployment's own agreement, an open
    licence, the owners, a swap of a model that needs an agreement into a deployment with no meter."""
    grant = _grant_of(deployment_id) if swap_in else None
    if grant is not None and not _covers(grant.agreement, revision):
        return _outside_grant(grant, revision)
    if found is None or not found.rtu_required:
        return Decision(True, ALLOWED_OPEN, "The licence needs no agreement.")
    if found.owned and not found.imported_from:
        return Decision(True, ALLOWED_OWNER, "You own this model.")
    if swap_in and deployment_id is not None and grant is None:
        return _unmetered_swap(revision)
    return None


def _grant_of(deployment_id) -> DeploymentGrant | None:
    if deployment_id is None:
        return None
    return DeploymentGrant.objects.filter(deployment_id=deployment_id, active=True).select_related(
        "agreement__solution").first()


def _covers(agreement, revision: Revision) -> bool:
    return agreement.solution_id == revision.solution_id and agreement.revision_id in (None, revision.pk)


def _outside_grant(grant: DeploymentGrant, revision: Revision) -> Decision:
    """A deployment made under an agreement takes only what that agreement covers: anything else would
    run past its meter (another model is not in its entitlement, and code of one's own swapped in could
    tamper with the runner's state)."""
    name = grant.agreement.solution.name
    return Decision(False, Denial.USAGE_PROHIBITED,
                    f"This deployment runs {name} under an agreement and can take only the versions it covers; "
                    f"deploy {revision.solution.name} {revision.version} as a deployment of its own.", 403,
                    agreement_id=grant.agreement_id, details={"agreement": str(grant.agreement_id)})


def _unmetered_swap(revision: Revision) -> Decision:
    """A deployment made without an agreement (of an open model, or by its owners) has no meter: a model
    that needs one is deployed anew under the agreement instead, so that its use is counted."""
    return Decision(False, Denial.AGREEMENT_NOT_FOUND,
                    f"{revision.solution.name} needs an agreement, and this deployment was not made under one, so "
                    f"its runner does not meter it: deploy {revision.solution.name} as a new deployment under "
                    f"your agreement.", 403, details=_next_step_urls(revision.solution_id))


def applicable_rules(who: Who, revision: Revision, action: str) -> list[Rule]:
    """The rules for `action` of every agreement whose target covers `revision` and whose assignee is
    `who` (licensing.facts reads them with the licence, in the one statement every check starts with)."""
    found = facts.read(who.user, who.peer, revision, action)
    return found.rules if found is not None else []


def _in_dates(agreement, now) -> bool:
    return (agreement.starts is None or agreement.starts <= now) and (agreement.ends is None or now < agreement.ends)


def _needs_live_slot(action: str, deployment_id, swap_in: bool) -> bool:
    return action == Action.DEPLOY and deployment_id is not None and not swap_in


def _units_needed(consume: int, deployment_id, swap_in: bool) -> int:
    """What the count must still hold: what is consumed; for a dry run, one more use. A swap into a
    running deployment, or a deployment started again (it was counted when made), needs none."""
    if consume:
        return consume
    return 0 if swap_in or deployment_id is not None else 1


def _slot_row(deployment_id) -> DeploymentGrant | None:
    """The deployment's live-slot row, active or not: the rule whose slot it holds already (a start after
    a stop is not a second one), or the row a restart takes again."""
    return DeploymentGrant.objects.filter(deployment_id=deployment_id).only("id", "rule_id", "active").first()


def _usable(rule: Rule, action: str, consume: int, deployment_id, swap_in: bool, *, held: int | None) -> bool:
    if rule.agreement.status != AgreementStatus.ACTIVE or not _in_dates(rule.agreement, timezone.now()):
        return False
    needed = _units_needed(consume, deployment_id, swap_in)
    if rule.count_limit is not None and rule.count_used + needed > rule.count_limit:
        return False
    if _needs_live_slot(action, deployment_id, swap_in) and rule.live_limit is not None and held != rule.pk:
        return rule.live_used < rule.live_limit
    return True


def _ending_first(rule: Rule):
    ends = rule.agreement.ends
    return (ends is None, ends or timezone.now(), rule.count_limit is None)


def _use(rule: Rule, who: Who, revision: Revision, action: str, *, consume: int, kind: str, deployment_id,  # noqa: PLR0913
         swap_in: bool, held: int | None, slot_row: DeploymentGrant | None = None) -> Decision | None:
    """Take what the use needs from `rule`, all or nothing; None when another caller took the last of it
    first (the next permit is tried)."""
    remaining = rule.remaining
    if consume and action == Action.EXPORT:
        return _export(rule, who, revision, kind)
    slot = _needs_live_slot(action, deployment_id, swap_in)
    if consume or slot:
        # The live slot first, then the count: a count refused after the slot was taken (another caller
        # took the last one in between) gives the slot back, so no savepoint is needed. An error rolls
        # back the caller's transaction, which holds the download or the deployment too.
        if slot and not services.take_live_slot(rule, deployment_id, who.user, revision, held=held, row=slot_row,
                                                row_known=True):
            return None
        if consume and not services.consume_count(rule, consume):
            if slot and held is None:
                services.release_deployment(deployment_id)
            return None
        if consume:
            services.record_usage(rule.agreement, revision, action, who=who, quantity=consume, kind=kind,
                                  deployment_id=deployment_id)
        remaining = None if rule.count_limit is None else rule.count_limit - rule.count_used - consume
    return Decision(True, ALLOWED_ENTITLED, f"Allowed by your agreement {_left(remaining, action)}.".replace(" .", "."),
                    agreement_id=rule.agreement_id, rule_id=rule.pk, remaining=remaining,
                    details=_agreement_details(rule, remaining))


def _export(rule: Rule, who: Who, revision: Revision, kind: str) -> Decision | None:
    """An export counts once per revision, however often the peer fetches it (retries, Range requests):
    the usage record is written first, and its unique constraint makes concurrent first fetches wait for
    each other, so only the one that wrote it takes a count."""
    with transaction.atomic():
        record, created = services.record_export(rule.agreement, revision, who=who, kind=kind)
        if created and not services.consume_count(rule, 1):
            transaction.set_rollback(True)
            return None
    remaining = None if rule.count_limit is None else rule.count_limit - rule.count_used - int(created)
    return Decision(True, ALLOWED_ENTITLED, "Allowed by the export agreement.", agreement_id=rule.agreement_id,
                    rule_id=rule.pk, remaining=remaining, details=_agreement_details(rule, remaining))


def _left(remaining: int | None, action: str) -> str:
    return "" if remaining is None else f"({remaining} {_NOUNS[action]} left)"


def _agreement_details(rule: Rule, remaining: int | None) -> dict:
    agreement = rule.agreement
    return {"agreement": str(agreement.pk), "limit": rule.count_limit, "remaining": remaining,
            "ends": agreement.ends.isoformat() if agreement.ends else None}


def _prohibited(action: str, rule: Rule) -> Decision:
    return Decision(False, Denial.USAGE_PROHIBITED,
                    f"Your agreement prohibits this: you may not {_VERBS[action]} this model. Ask the licensor "
                    f"if you need it.", 403, agreement_id=rule.agreement_id,
                    details={"agreement": str(rule.agreement_id)})


def _most_specific_denial(action: str, permits: list[Rule], deployment_id, swap_in: bool) -> Decision:
    now = timezone.now()
    active = [r for r in permits if r.agreement.status == AgreementStatus.ACTIVE]
    if not active:
        agreement = permits[0].agreement
        why = f": {_quoted(agreement.revoke_reason)}" if agreement.revoke_reason else ""
        when = f" on {_day(agreement.revoked_at)}" if agreement.revoked_at else ""
        return Decision(False, Denial.RIGHT_TO_USE_REVOKED,
                        f"The licensor revoked your agreement{when}{why}. Request access again to use this model.",
                        403, agreement_id=agreement.pk, details=_next_step_urls(agreement.solution_id))
    dated = [r for r in active if _in_dates(r.agreement, now)]
    if not dated:
        agreement = active[0].agreement
        if agreement.starts and now < agreement.starts:
            message = f"Your agreement starts on {_moment(agreement.starts)}; try again then."
        else:
            message = (f"Your agreement ended on {_moment(agreement.ends)}. Ask the licensor to "
                       f"extend it, or request access again.")
        return Decision(False, Denial.TIMING_CONSTRAINT, message, 403, agreement_id=agreement.pk,
                        details={"starts": _iso(agreement.starts), "ends": _iso(agreement.ends),
                                 **_next_step_urls(agreement.solution_id)})
    counted = [r for r in dated if r.count_limit is None or r.count_used < r.count_limit]
    if not counted:
        rule = dated[0]
        offer = Offer.objects.filter(solution_id=rule.agreement.solution_id).first()
        paying = offer is not None and offer.payment_required and offer.payment_url
        message = (f"You have used all {rule.count_limit} {_NOUNS[action]} your agreement allows. "
                   + ("Buy more from the licensor." if paying else "Ask the licensor for more."))
        return Decision(False, Denial.USAGE_EXHAUSTED, message, 402 if paying else 403, agreement_id=rule.agreement_id,
                        details={"limit": rule.count_limit, "used": rule.count_used,
                                 **({"payment_url": offer.payment_url} if paying else {})})
    rule = counted[0]
    return Decision(False, Denial.LIVE_LIMIT_REACHED,
                    f"Your agreement allows {rule.live_limit} live deployment(s) of this model and all are running. "
                    f"Stop or destroy one of them, then deploy again.", 403, agreement_id=rule.agreement_id,
                    details={"live_limit": rule.live_limit, "live": rule.live_used})


def _quoted(reason: str) -> str:
    """A person's reason inside our sentence: its own closing full stop would make two."""
    return reason.strip().rstrip(".")


def _day(moment) -> str:
    return f"{moment.day} {moment:%B %Y}"


def _moment(moment) -> str:
    return f"{_day(moment)} {moment:%H:%M} UTC"


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def _next_step_urls(solution_id) -> dict:
    return {"request_url": f"/licensing/solutions/{solution_id}/",
            "api_request_url": "/api/v1/licensing/access-requests/"}


def _no_agreement(who: Who, revision: Revision, action: str) -> Decision:
    """No agreement applies: say what would get one."""
    solution = revision.solution
    verb = _VERBS[action]
    return _nobody_here_grants(who, solution, verb) or _next_step(who, solution, verb)


def _nobody_here_grants(who: Who, solution, verb: str) -> Decision | None:
    """A peer, an anonymous visitor, or a model whose licensor is another site: no request here helps."""
    if who.peer:
        return Decision(False, Denial.AGREEMENT_NOT_FOUND,
                        f"{solution.name} needs an agreement for your site; ask its licensor for one.", 403)
    if who.user is None:
        return Decision(False, Denial.AGREEMENT_NOT_FOUND,
                        f"{solution.name} needs an agreement to {verb} it. Sign in and request access.", 403,
                        details=_next_step_urls(solution.pk))
    if market.is_imported(solution):  # its licensor is the origin: nobody here can grant it
        return Decision(False, Denial.AGREEMENT_NOT_FOUND,
                        f"{solution.name} was imported from {solution.imported_from}, whose agreement with this "
                        f"site does not let you {verb} it; ask the origin's licensor.", 403)
    return None


def _next_step(who: Who, solution, verb: str) -> Decision:
    """What the licensor's offer lets this user do: buy, accept, ask the licensor, or request."""
    urls = _next_step_urls(solution.pk)
    offer = Offer.objects.filter(solution_id=solution.pk).first()
    if offer is not None and offer.payment_required and offer.payment_url:
        return Decision(False, Denial.PAYMENT_REQUIRED,
                        f"{solution.name} is sold by its licensor: buy access at {offer.payment_url}, then the "
                        f"licensor grants you an agreement.", 402, details={**urls, "payment_url": offer.payment_url})
    mode = offer.mode if offer is not None else OfferMode.REQUEST
    if mode == OfferMode.CLICK_THROUGH:
        return Decision(False, Denial.AGREEMENT_NOT_FOUND,
                        f"To {verb} {solution.name}, accept its licence first (one click on the model page).", 403,
                        details={**urls, "accept_url": f"/api/v1/licensing/solutions/{solution.pk}/accept"})
    if mode == OfferMode.GRANT_ONLY:
        return Decision(False, Denial.AGREEMENT_NOT_FOUND,
                        f"To {verb} {solution.name} you need an agreement, which its licensor grants directly; "
                        f"contact them.", 403, details={"licensor": solution.owner.username})
    return _request_state(who, solution, verb, urls)


def _request_state(who: Who, solution, verb: str, urls: dict) -> Decision:
    latest = (AccessRequest.objects.filter(requester=who.user, solution=solution)
              .only("status", "created", "decision_reason").first())
    if latest is not None and latest.status == RequestStatus.PENDING:
        message = (f"Your request of {_day(latest.created)} to use {solution.name} waits for the licensor; "
                   f"you will be told when they answer.")
        return Decision(False, Denial.AGREEMENT_NOT_FOUND, message, 403,
                        details={**urls, "request": str(latest.pk), "request_status": latest.status})
    if latest is not None and latest.status == RequestStatus.DECLINED:
        reason = f": {_quoted(latest.decision_reason)}" if latest.decision_reason else ""
        message = f"The licensor declined your request{reason}. You may request again."
        return Decision(False, Denial.AGREEMENT_NOT_FOUND, message, 403,
                        details={**urls, "request": str(latest.pk), "request_status": latest.status})
    return Decision(False, Denial.AGREEMENT_NOT_FOUND,
                    f"To {verb} {solution.name} you need an agreement with its licensor. Request access on the "
                    f"model page.", 403, details=urls)


# ---------------------------------------------------------------- marketplace's download gate

def download_gate(user, revision: Revision, artifact, kind: str) -> None:
    """Registered with marketplace.gates: every download (artifact, bundle, image, deployment bundle)
    passes here inside begin_download's transaction, taking one download from the agreement."""
    authorize(Who.of(user), revision, Action.DOWNLOAD, consume=1, kind=kind)
