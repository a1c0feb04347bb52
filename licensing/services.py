"""Every write of licensing: profiles noted when a revision is ready, agreements granted and revoked,
requests made and decided, licences accepted, offers set, counts and live slots consumed race-free,
usage recorded. The decision of who may do what is licensing.policy's alone."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from acumos_portal.api.refusals import Refused
from licensing import profiles, signals
from licensing.choices import (
    Action,
    AgreementSource,
    AgreementStatus,
    AssigneeKind,
    OfferMode,
    ProfileSource,
    RequestStatus,
    RuleKind,
    UsageSource,
)
from licensing.models import (
    Acceptance,
    AccessRequest,
    Agreement,
    DeploymentGrant,
    LicenceProfile,
    Offer,
    Rule,
    UsageRecord,
)
from marketplace import selectors as market
from marketplace import services as market_services
from marketplace import storage
from marketplace.choices import ArtifactKind, NotificationKind
from marketplace.models import Revision, Solution

log = logging.getLogger(__name__)

MAX_TERMS_DAYS = 3650
MAX_LIMIT = 2**31 - 1  # the columns' range (PostgreSQL integer)
MAX_ANSWER_CHARS = 2000
# A count at this share used tells the licensee once that it is running out.
NEARLY_USED = 0.8


class Conflict(Refused):
    status = 409
    code = "conflict"


class NotAllowed(Refused):
    status = 403
    code = "permission_denied"


# ---------------------------------------------------------------- licence profiles

def note_profile(revision: Revision) -> LicenceProfile | None:
    """A revision became ready: its license.json, checked, is recorded (the policy reads it), and the
    solution's licence summary follows it (search shows and filters by it)."""
    profile = _read_licence_file(revision)
    if profile is None:
        return None
    try:
        summary = profiles.check(profile)
    except Refused as refused:  # a file accepted before SPDX was checked: noted as open, keyword only
        log.warning("revision %s: licence not checked (%s)", revision.pk, refused.message)
        summary = profiles.check({k: v for k, v in profile.items() if k not in ("spdx", "licenseText")})
    source = _profile_source(revision)
    noted, _ = LicenceProfile.objects.update_or_create(revision=revision, defaults={
        "keyword": summary.keyword[:100], "licence_name": summary.licence_name[:200], "spdx": summary.spdx[:500],
        "spdx_ids": _spaced(summary.spdx_ids), "rtu_required": summary.rtu_required,
        "text_sha256": summary.text_sha256, "profile": summary.profile, "source": source})
    market_services.set_licence_summary(revision.solution_id, label=summary.spdx or summary.keyword,
                                        ids=noted.spdx_ids, rtu_required=summary.rtu_required)
    return noted


@dataclass(frozen=True)
class Noted:
    noted: int
    without_licence: int
    needing_agreement: int


def note_missing_profiles() -> Noted:
    """Every ready revision with no profile noted yet (made before licensing): noted now."""
    from marketplace.choices import RevisionStatus

    noted = without = rtu = 0
    missing = (Revision.objects.filter(status=RevisionStatus.READY, licence_profile__isnull=True)
               .select_related("solution").order_by("created"))
    for revision in missing.iterator(chunk_size=500):
        profile = note_profile(revision)
        if profile is None:
            without += 1
            continue
        noted += 1
        rtu += profile.rtu_required
    return Noted(noted, without, rtu)


def _profile_source(revision: Revision) -> str:
    if market.is_imported(revision.solution):
        return ProfileSource.PEER
    edited = revision.metadata.get("licence_source") == ProfileSource.EDITOR  # set by relicense
    return ProfileSource.EDITOR if edited else ProfileSource.UPLOADED


def _spaced(ids) -> str:
    return f" {' '.join(ids)} " if ids else ""


def _read_licence_file(revision: Revision) -> dict | None:
    import json

    artifact = revision.artifacts.filter(kind=ArtifactKind.LICENCE).select_related("blob").first()
    if artifact is None or artifact.blob is None:
        return None
    try:
        with storage.open_blob(artifact.blob) as handle:
            profile = json.load(handle)
    except (OSError, ValueError):
        return None
    return profile if isinstance(profile, dict) else None


# ---------------------------------------------------------------- terms

@dataclass(frozen=True)
class RuleTerms:
    action: str
    kind: str = RuleKind.PERMIT
    count_limit: int | None = None
    live_limit: int | None = None


@dataclass(frozen=True)
class Terms:
    rules: tuple[RuleTerms, ...]
    days: int | None = None

    def as_dict(self) -> dict:
        return {"rules": [vars(r) for r in self.rules], "days": self.days}


DEFAULT_TERMS = {"rules": [{"action": Action.DOWNLOAD}, {"action": Action.DEPLOY}, {"action": Action.PREDICT}],
                 "days": 365}


def parse_terms(raw, field: str = "terms") -> Terms:
    """Terms as an offer, a grant or an approval gives them, checked: each rule's action and kind known,
    limits whole numbers, no limits on a prohibition, one rule per action, days from 1 to 3650."""
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list) or not raw["rules"]:
        raise Refused('give {"rules": [{"action": "download"}, ...], "days": 365}: at least one rule', field)
    rules, seen = [], set()
    for index, item in enumerate(raw["rules"]):
        rule = _parse_rule(item, f"{field}.rules[{index}]")
        if rule.action in seen:
            raise Refused(f"two rules for {rule.action}: give one per action", f"{field}.rules[{index}]")
        seen.add(rule.action)
        rules.append(rule)
    days = raw.get("days")
    if days is not None and (not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_TERMS_DAYS):
        raise Refused(f"days must be a whole number from 1 to {MAX_TERMS_DAYS}, or null for no end", f"{field}.days")
    return Terms(tuple(rules), days)


def _parse_rule(item, field: str) -> RuleTerms:
    if not isinstance(item, dict) or item.get("action") not in Action.values:
        raise Refused(f"each rule needs an action, one of {', '.join(Action.values)}", field)
    kind = item.get("kind", RuleKind.PERMIT)
    if kind not in RuleKind.values:
        raise Refused(f"kind is {', '.join(RuleKind.values)}", f"{field}.kind")
    limits = {name: item.get(name) for name in ("count_limit", "live_limit")}
    for name, value in limits.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_LIMIT):
            raise Refused(f"{name} must be a whole number from 1 to {MAX_LIMIT}, or null for no limit",
                          f"{field}.{name}")
    if kind == RuleKind.PROHIBIT and any(v is not None for v in limits.values()):
        raise Refused("a prohibition has no limits", field)
    if limits["live_limit"] is not None and item["action"] != Action.DEPLOY:
        raise Refused("live_limit is for the deploy action only", f"{field}.live_limit")
    return RuleTerms(item["action"], kind, limits["count_limit"], limits["live_limit"])


# ---------------------------------------------------------------- agreements

@dataclass(frozen=True)
class Assignee:
    kind: str
    user: object = None
    group: object = None
    organisation: object = None
    peer: str = ""

    def fields(self) -> dict:
        return {"assignee_kind": self.kind, "assignee_user": self.user, "assignee_group": self.group,
                "assignee_organisation": self.organisation, "assignee_peer": self.peer}


def assignee_named(kind: str, name: str) -> Assignee:
    """The assignee a form or the API names: a username, a group's name, an organisation's slug or
    name, or a peer's certificate subject."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from acumos_portal.accounts.models import Organisation

    name = name.strip()
    if kind == AssigneeKind.USER:
        user = get_user_model().objects.filter(username=name, is_active=True).first()
        if user is None:
            raise Refused(f"no active user is called {name!r}", "assignee.name")
        return Assignee(kind, user=user)
    if kind == AssigneeKind.GROUP:
        group = Group.objects.filter(name=name).first()
        if group is None:
            raise Refused(f"no group is called {name!r}", "assignee.name")
        return Assignee(kind, group=group)
    if kind == AssigneeKind.ORGANISATION:
        organisation = Organisation.objects.filter(Q(slug=name) | Q(name=name)).first()
        if organisation is None:
            raise Refused(f"no organisation is called {name!r} (admins add them in Manage)", "assignee.name")
        return Assignee(kind, organisation=organisation)
    if kind == AssigneeKind.PEER and name:
        return Assignee(kind, peer=name[:200])
    raise Refused(f"the assignee is a {', '.join(k for k in AssigneeKind.values if k != 'site')}", "assignee.kind")


def may_license(user, solution: Solution) -> bool:
    """The licensor's side (grant, revoke, decide requests, set the offer, see usage): the solution's
    owners, for a model made here. An imported model's licensor is its origin, not anyone here."""
    return market.owns(user, solution) and not market.is_imported(solution)


def _require_licensor(user, solution: Solution) -> None:
    if not may_license(user, solution):
        raise NotAllowed(f"only the owners of {solution.name} may manage who may use it")


@transaction.atomic
def grant(by, solution: Solution, assignee: Assignee, terms: Terms, *, revision: Revision | None = None,
          starts: dt.datetime | None = None, ends: dt.datetime | None = None,
          source: str = AgreementSource.GRANTED) -> Agreement:
    """An agreement from the licensor to `assignee`, with a rule per action of `terms`."""
    _require_licensor(by, solution)
    if revision is not None and revision.solution_id != solution.pk:
        raise Refused("that revision is not a version of this model", "revision")
    if ends is None and terms.days:
        ends = (starts or timezone.now()) + dt.timedelta(days=terms.days)
    if starts and ends and ends <= starts:
        raise Refused("the agreement must end after it starts", "ends")
    if assignee.kind == AssigneeKind.USER and assignee.user is not None and market.owns(assignee.user, solution):
        raise Refused(f"{assignee.user.username} owns this model and needs no agreement", "assignee")
    agreement = Agreement.objects.create(solution=solution, revision=revision, licensor=by, starts=starts, ends=ends,
                                         source=source, **assignee.fields())
    Rule.objects.bulk_create(Rule(agreement=agreement, action=r.action, kind=r.kind, count_limit=r.count_limit,
                                  live_limit=r.live_limit) for r in terms.rules)
    transaction.on_commit(lambda: signals.agreement_granted.send(sender=Agreement, agreement=agreement))
    if assignee.user is not None and source == AgreementSource.GRANTED:
        market_services.notify(assignee.user, NotificationKind.LICENSING,
                               f"You may now use {solution.name}", url="/licensing/mine/")
    return agreement


@transaction.atomic
def revoke(by, agreement: Agreement, reason: str = "") -> Agreement:
    """Revoked at once: the policy refuses every further use, and live deployments' runners are told
    (licensing.signals.agreement_revoked, heard by deployment)."""
    if not (may_license(by, agreement.solution) or _is_licence_admin(by)):
        raise NotAllowed("only the licensor or a licence admin may revoke this agreement")
    updated = Agreement.objects.filter(pk=agreement.pk, status=AgreementStatus.ACTIVE).update(
        status=AgreementStatus.REVOKED, revoked_at=timezone.now(), revoked_by=by, revoke_reason=reason[:2000])
    if not updated:
        raise Conflict("this agreement is already revoked")
    agreement.refresh_from_db()
    transaction.on_commit(lambda: signals.agreement_revoked.send(sender=Agreement, agreement=agreement))
    if agreement.assignee_user_id:
        market_services.notify(agreement.assignee_user, NotificationKind.LICENSING,
                               f"Your agreement for {agreement.solution.name} was revoked",
                               url="/licensing/mine/", message=reason)
    return agreement


def _is_licence_admin(user) -> bool:
    from acumos_portal.accounts.choices import Role

    return market.signed_in(user) and (user.has_role(Role.LICENCE_ADMIN) or user.is_portal_admin)


# ---------------------------------------------------------------- the offer

@transaction.atomic
def set_offer(by, solution: Solution, *, mode: str, terms: dict | None = None, payment_required: bool = False,
              payment_url: str = "", request_prompt: str = "", request_fields: list | None = None) -> Offer:
    _require_licensor(by, solution)
    if mode not in OfferMode.values:
        raise Refused(f"mode is one of {', '.join(OfferMode.values)}", "mode")
    checked = parse_terms(terms if terms is not None else DEFAULT_TERMS)
    if payment_required and not payment_url.startswith("https://"):
        raise Refused("a payment needs the https:// address where access is bought", "payment_url")
    offer, _ = Offer.objects.update_or_create(solution=solution, defaults={
        "mode": mode, "terms": checked.as_dict(), "payment_required": payment_required, "payment_url": payment_url,
        "request_prompt": request_prompt[:4000], "request_fields": _checked_fields(request_fields or [])})
    return offer


_FIELD_TYPES = ("text", "checkbox", "select")


def _checked_fields(fields: list) -> list:
    if not isinstance(fields, list) or len(fields) > 10:
        raise Refused("request_fields is a list of at most 10 fields", "request_fields")
    for index, item in enumerate(fields):
        if not isinstance(item, dict) or not str(item.get("name", "")).isidentifier():
            raise Refused("each field needs a name made of letters, digits and _", f"request_fields[{index}]")
        if item.get("type", "text") not in _FIELD_TYPES:
            raise Refused(f"a field's type is one of {', '.join(_FIELD_TYPES)}", f"request_fields[{index}].type")
    return fields


def offer_of(solution: Solution) -> Offer:
    """The solution's offer, or the default one (request and approve, the default terms) unsaved."""
    return Offer.objects.filter(solution=solution).first() or Offer(solution=solution, terms=DEFAULT_TERMS)


# ---------------------------------------------------------------- requests

def request_access(user, solution: Solution, *, revision: Revision | None = None, message: str = "",
                   answers: dict | None = None) -> AccessRequest:
    """Ask the licensor for an agreement. One pending request per user and model; a declined one may be
    followed by another (the licensor sees the earlier ones)."""
    if not market.signed_in(user):
        raise NotAllowed("sign in to request access")
    if market.owns(user, solution) and not market.is_imported(solution):
        raise Refused("you own this model and need no agreement", "solution")
    if market.is_imported(solution):
        raise Refused(f"{solution.name} was imported from {solution.imported_from}: its licence is managed there",
                      "solution")
    offer = offer_of(solution)
    if offer.mode != OfferMode.REQUEST:
        raise Refused("this model's licensor does not take requests"
                      + ("; accept the licence instead" if offer.mode == OfferMode.CLICK_THROUGH else
                         "; contact them directly"), "solution")
    kept = _check_answers(offer, answers or {})
    if "\x00" in message:
        raise Refused("the message may not contain NUL characters", "message")
    try:
        with transaction.atomic():
            request = AccessRequest.objects.create(solution=solution, revision=revision, requester=user,
                                                   message=message[:4000], answers=kept)
    except IntegrityError:
        pending = AccessRequest.objects.get(solution=solution, requester=user, status=RequestStatus.PENDING)
        raise Conflict("you have a pending request for this model; wait for the answer or withdraw it",
                       details={"request": str(pending.pk)}) from None
    _tell_licensors(solution, f"{user.username} asks to use {solution.name}", message)
    return request


def _check_answers(offer: Offer, answers: dict) -> dict:
    """The answers to the offer's questions, and only those: each a short text, a yes/no or one of the
    choices (no NUL: PostgreSQL cannot store it). Anything else sent is dropped, not stored."""
    if not isinstance(answers, dict):
        raise Refused("answers is an object of the request form's fields", "answers")
    kept = {}
    for item in offer.request_fields:
        value = answers.get(item["name"])
        if value is None:
            continue
        if not isinstance(value, str | bool | int) or isinstance(value, str) and (
                len(value) > MAX_ANSWER_CHARS or "\x00" in value):
            raise Refused(f"an answer is text of at most {MAX_ANSWER_CHARS} characters, or yes/no",
                          f"answers.{item['name']}")
        kept[item["name"]] = value
    for item in offer.request_fields:
        value = answers.get(item["name"])
        if item.get("required") and value in (None, "", False):
            raise Refused(f"{item.get('label') or item['name']} is required", f"answers.{item['name']}")
        if item.get("type") == "select" and value not in (None, "") and value not in item.get("options", []):
            raise Refused(f"choose one of {', '.join(map(str, item.get('options', [])))}", f"answers.{item['name']}")
    return kept


def _tell_licensors(solution: Solution, title: str, message: str = "") -> None:
    for licensor in market.owners_of(solution):
        market_services.notify(licensor, NotificationKind.LICENSING, title, url="/licensing/requests/",
                               message=message)


def _decidable(by, request: AccessRequest) -> None:
    _require_licensor(by, request.solution)
    if request.status != RequestStatus.PENDING:
        raise Conflict(f"this request is already {request.status}")


@transaction.atomic
def approve(by, request: AccessRequest, *, terms: dict | None = None, reason: str = "") -> Agreement:
    """The request becomes an agreement with the offer's terms, or the ones the licensor edited."""
    _decidable(by, request)
    checked = parse_terms(terms if terms is not None else offer_of(request.solution).terms)
    agreement = grant(by, request.solution, Assignee(AssigneeKind.USER, user=request.requester), checked,
                      revision=request.revision, source=AgreementSource.REQUEST)
    _decide(request, by, RequestStatus.APPROVED, reason, agreement=agreement)
    market_services.notify(request.requester, NotificationKind.LICENSING,
                           f"Your request to use {request.solution.name} was approved", url="/licensing/mine/",
                           message=reason)
    return agreement


@transaction.atomic
def decline(by, request: AccessRequest, reason: str) -> AccessRequest:
    _decidable(by, request)
    if not reason.strip():
        raise Refused("say why, so that the requester knows what to change", "reason")
    _decide(request, by, RequestStatus.DECLINED, reason)
    market_services.notify(request.requester, NotificationKind.LICENSING,
                           f"Your request to use {request.solution.name} was declined", url="/licensing/mine/",
                           message=reason)
    return request


@transaction.atomic
def withdraw(by, request: AccessRequest) -> AccessRequest:
    if request.requester_id != getattr(by, "pk", None):
        raise NotAllowed("only who asked may withdraw a request")
    if request.status != RequestStatus.PENDING:
        raise Conflict(f"this request is already {request.status}")
    _decide(request, by, RequestStatus.WITHDRAWN, "")
    return request


def _decide(request: AccessRequest, by, status: str, reason: str, agreement: Agreement | None = None) -> None:
    updated = AccessRequest.objects.filter(pk=request.pk, status=RequestStatus.PENDING).update(
        status=status, decided_by=by, decided_at=timezone.now(), decision_reason=reason[:4000], agreement=agreement)
    if not updated:  # decided by someone else between the read and now
        raise Conflict("this request was decided meanwhile")
    request.refresh_from_db()


# ---------------------------------------------------------------- click-through

@transaction.atomic
def accept(user, revision: Revision, text_sha256: str) -> Agreement:
    """The licence accepted by a click: allowed when the offer says so, and only for the text the
    caller showed (its hash), so that what was accepted is provably the text recorded."""
    if not market.signed_in(user):
        raise NotAllowed("sign in to accept a licence")
    solution = revision.solution
    offer = offer_of(solution)
    if offer.mode != OfferMode.CLICK_THROUGH:
        raise Refused("this model's licensor does not offer click-through acceptance; request access", "solution")
    profile = LicenceProfile.objects.filter(revision=revision).first()
    if profile is None:
        raise Refused("this revision has no licence to accept", "revision")
    if text_sha256 != profile.text_sha256:
        raise Conflict("the licence text changed since it was shown: read it again and accept that one",
                       details={"text_sha256": profile.text_sha256})
    agreement = _click_through_agreement(user, solution, offer)
    Acceptance.objects.update_or_create(user=user, revision=revision, text_sha256=text_sha256,
                                        defaults={"spdx": profile.spdx, "agreement": agreement})
    return agreement


def _click_through_agreement(user, solution: Solution, offer: Offer) -> Agreement:
    """One click-through agreement per user and model: accepting again (another version, the same text)
    records the acceptance under it and restores no count. A revoked one is not undone by a click; one
    that ended may be renewed by accepting again (the offer's days say how long an acceptance lasts)."""
    latest = (Agreement.objects.select_for_update().filter(solution=solution, source=AgreementSource.CLICK_THROUGH,
                                                           assignee_user=user).order_by("-created").first())
    if latest is not None and latest.status == AgreementStatus.REVOKED:
        raise NotAllowed(f"the licensor revoked your acceptance of {solution.name}'s licence"
                         + (f": {latest.revoke_reason}" if latest.revoke_reason else "")
                         + "; accepting again does not undo that: contact them")
    if latest is not None and (latest.ends is None or latest.ends > timezone.now()):
        return latest
    return _grant_on_acceptance(user, solution, offer)


def _grant_on_acceptance(user, solution: Solution, offer: Offer) -> Agreement:
    terms = parse_terms(offer.terms)
    ends = timezone.now() + dt.timedelta(days=terms.days) if terms.days else None
    agreement = Agreement.objects.create(solution=solution, licensor=solution.owner, ends=ends,
                                         source=AgreementSource.CLICK_THROUGH,
                                         **Assignee(AssigneeKind.USER, user=user).fields())
    Rule.objects.bulk_create(Rule(agreement=agreement, action=r.action, kind=r.kind, count_limit=r.count_limit,
                                  live_limit=r.live_limit) for r in terms.rules)
    return agreement


# ---------------------------------------------------------------- counts, live slots, usage (race-free)

def consume_count(rule: Rule, n: int) -> bool:
    """Take `n` from a rule's count in one conditional UPDATE: under READ COMMITTED a second writer waits
    for the first and re-checks the condition on the new row, so the last unit goes once. Unlimited
    rules are not written (no row lock on the hot path)."""
    if rule.count_limit is None:  # nothing to count: the caller read the agreement active a moment ago
        return True
    # Only the row's own columns in the condition: a filter through the agreement would make Django write
    # `WHERE id IN (SELECT ... JOIN ...)`, whose subquery PostgreSQL does not re-check after waiting for the
    # row lock, so two callers could both take the last unit (the check constraint caught it in the race test).
    took = Rule.objects.filter(pk=rule.pk, count_used__lte=F("count_limit") - n).update(count_used=F("count_used") + n)
    if took and rule.count_used + n >= NEARLY_USED * rule.count_limit > rule.count_used:
        transaction.on_commit(lambda: _nearly_used(rule.pk))
    return bool(took)


def _nearly_used(rule_id: int) -> None:
    rule = Rule.objects.select_related("agreement__solution", "agreement__assignee_user").get(pk=rule_id)
    if rule.agreement.assignee_user is not None:
        market_services.notify(rule.agreement.assignee_user, NotificationKind.LICENSING,
                               f"{rule.agreement.solution.name}: {rule.count_used} of {rule.count_limit} "
                               f"{rule.action}s used", url="/licensing/mine/")


def take_live_slot(rule: Rule, deployment_id, user, revision: Revision, *, held: int | None = None,  # noqa: PLR0913
                   row: DeploymentGrant | None = None, row_known: bool = False) -> bool:
    """A live slot for one deployment, once: the same deployment asking again keeps its slot. A caller
    that read the deployment's row already passes it (`row`, `row_known`; `held`: the rule of its active
    slot), saving the look-ups."""
    if not row_known:
        row = DeploymentGrant.objects.filter(deployment_id=deployment_id).only("id", "rule_id", "active").first()
        held = row.rule_id if row is not None and row.active else None
    if held is not None:
        return True
    # Live deployments are counted only against a limit (with none, the slot rows say how many are live).
    if rule.live_limit is not None and not Rule.objects.filter(
            pk=rule.pk, live_used__lt=F("live_limit")).update(live_used=F("live_used") + 1):
        return False
    slot = {"agreement_id": rule.agreement_id, "rule": rule, "user": user, "revision": revision, "active": True,
            "ended": None}
    if row is not None:  # a restart: its old row
        DeploymentGrant.objects.filter(pk=row.pk).update(**slot)
    else:
        DeploymentGrant.objects.create(deployment_id=deployment_id, **slot)
    return True


def release_deployment(deployment_id) -> bool:
    """The deployment stopped, was destroyed or failed: its live slot is freed, once however often
    this is called."""
    with transaction.atomic():
        grant = DeploymentGrant.objects.filter(deployment_id=deployment_id, active=True).first()
        if grant is None:
            return False
        released = DeploymentGrant.objects.filter(pk=grant.pk, active=True).update(active=False, ended=timezone.now())
        if released:
            Rule.objects.filter(pk=grant.rule_id, live_limit__isnull=False, live_used__gt=0).update(
                live_used=F("live_used") - 1)
        return bool(released)


def record_usage(agreement: Agreement, revision: Revision, action: str, *, who, quantity: int = 1, kind: str = "",
                 deployment_id=None, source: str = UsageSource.PORTAL) -> UsageRecord | None:
    """One entitled use (exports: record_export)."""
    return UsageRecord.objects.create(agreement=agreement, solution_id=revision.solution_id, revision=revision,
                                      action=action, kind=kind[:30], user=who.user, peer=who.peer,
                                      deployment_id=deployment_id, quantity=quantity, source=source)


def record_export(agreement: Agreement, revision: Revision, *, who, kind: str = "") -> tuple[UsageRecord, bool]:
    """An export is recorded once per (agreement, revision); (record, whether this call made it)."""
    return UsageRecord.objects.get_or_create(agreement=agreement, revision=revision, action=Action.EXPORT, defaults={
        "solution_id": revision.solution_id, "kind": kind[:30], "peer": who.peer, "user": who.user})


def active_agreements(solution: Solution):
    return Agreement.objects.filter(solution=solution, status=AgreementStatus.ACTIVE).filter(
        Q(ends__isnull=True) | Q(ends__gt=timezone.now()))
