"""Licences that travel: which revisions a peer may receive, the agreement that goes with one as a
document (federation signs it), and that document made into an agreement on the importing site.

Licensing knows a peer only by its certificate subject (it sits below federation). A revision whose
licence needs an agreement travels only under an export permit this site's licensor granted to that
subject; an imported one has no licensor here, so it never travels on (no onward export)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from licensing.choices import Action, AgreementSource, AgreementStatus, AssigneeKind, RuleKind
from licensing.models import Agreement, LicenceProfile, Rule, UsageRecord
from marketplace.models import Revision, Solution

DOCUMENT_SCHEMA = "acumos-licensing-agreement/1"


# ---------------------------------------------------------------- what a peer may receive

def exportable_to(subject: str, ref: str = "pk") -> Q:
    """A filter on a query whose `ref` is a revision id (Revision's pk, ChangeEvent's revision_id):
    the revision's licence needs no agreement, or `subject` holds a usable export permit for it
    (active, in its dates, a count left or this revision exported under it already, granted here by a
    local licensor for a model made here) and no export prohibition. One query, with the caller's."""
    revision = OuterRef(ref)
    needs_agreement = LicenceProfile.objects.filter(revision_id=revision, rtu_required=True)
    permitted = Exists(_usable_permits(subject, revision)) & ~Exists(_export_rules(subject, revision,
                                                                                   RuleKind.PROHIBIT))
    return ~Exists(needs_agreement) | permitted


def received_by(subject: str, ref: str = "pk") -> Q:
    """A filter on revisions whose bytes `subject` may fetch: open ones, and those whose export to it was
    counted (the revision's detail, which carries the agreement, was served to it first). Without this a
    peer could list a model's revisions and fetch every file without ever taking an export."""
    revision = OuterRef(ref)
    needs_agreement = LicenceProfile.objects.filter(revision_id=revision, rtu_required=True)
    received = UsageRecord.objects.filter(revision_id=revision, action=Action.EXPORT, peer=subject)
    return ~Exists(needs_agreement) | Exists(received)


def _export_rules(subject: str, revision: OuterRef, kind: str):
    """The export rules of `kind` of the active agreements with `subject` whose target covers `revision`."""
    return (Rule.objects.filter(action=Action.EXPORT, kind=kind, agreement__status=AgreementStatus.ACTIVE,
                                agreement__assignee_kind=AssigneeKind.PEER, agreement__assignee_peer=subject,
                                agreement__solution__revisions__pk=revision)
            .filter(Q(agreement__revision__isnull=True) | Q(agreement__revision_id=revision)))


def _usable_permits(subject: str, revision: OuterRef):
    now = timezone.now()
    exported_already = UsageRecord.objects.filter(agreement_id=OuterRef("agreement_id"), revision_id=OuterRef(revision),
                                                  action=Action.EXPORT)
    count_left = Q(count_limit__isnull=True) | Q(count_used__lt=F("count_limit")) | Exists(exported_already)
    in_dates = ((Q(agreement__starts__isnull=True) | Q(agreement__starts__lte=now))
                & (Q(agreement__ends__isnull=True) | Q(agreement__ends__gt=now)))
    # A local licensor and a model made here: an imported model's agreement is the site's, not the
    # licensor's to pass on, whatever a row says.
    local = Q(agreement__licensor__isnull=False, agreement__solution__imported_from="")
    return _export_rules(subject, revision, RuleKind.PERMIT).filter(in_dates & local & count_left)


def already_exported(subject: str, revision: Revision) -> bool:
    """The peer received this revision before under one of its agreements (its export is counted once:
    asking again takes nothing)."""
    return UsageRecord.objects.filter(revision=revision, action=Action.EXPORT, peer=subject,
                                      agreement__assignee_kind=AssigneeKind.PEER,
                                      agreement__assignee_peer=subject).exists()


def needs_agreement(revision: Revision) -> bool:
    return LicenceProfile.objects.filter(revision_id=revision.pk, rtu_required=True).exists()


def covered_revisions(agreement: Agreement):
    """The ready revisions an agreement covers whose licence needs one (those a grant makes exportable)."""
    revisions = Revision.objects.filter(solution_id=agreement.solution_id, licence_profile__rtu_required=True)
    return revisions.filter(pk=agreement.revision_id) if agreement.revision_id else revisions


# ---------------------------------------------------------------- the agreement as a document

def agreement_document(agreement: Agreement) -> dict:
    """The agreement as a plain dict, for its licensor's site to sign: who may do what with which model,
    between which dates. Everything in it is JSON (ids as strings, dates as ISO 8601)."""
    return {
        "schema": DOCUMENT_SCHEMA,
        "agreement": str(agreement.pk),
        "assignee": {"kind": agreement.assignee_kind, "subject": agreement.assignee_peer},
        "target": {"solution": str(agreement.solution_id),
                   "revision": str(agreement.revision_id) if agreement.revision_id else None},
        "starts": _iso(agreement.starts),
        "ends": _iso(agreement.ends),
        "rules": [{"action": r.action, "kind": r.kind, "count_limit": r.count_limit, "live_limit": r.live_limit}
                  for r in agreement.rules.order_by("action")],
    }


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


# ---------------------------------------------------------------- the importing site's side

class BadDocument(ValueError):
    """An agreement document not in the shape agreement_document makes."""


def check_document(document: dict) -> None:
    """BadDocument unless this site can make an agreement of `document` (its rules and dates read),
    and that agreement has not ended already: checked before an import fetches anything."""
    if not isinstance(document, dict) or document.get("schema") != DOCUMENT_SCHEMA:
        raise BadDocument(f"it is not a {DOCUMENT_SCHEMA} document")
    _rules_of(document)
    starts, ends = _moment(document.get("starts")), _moment(document.get("ends"))
    if ends is not None and ends <= timezone.now():
        raise BadDocument(f"it ended on {ends:%d %B %Y %H:%M} UTC")
    if starts is not None and ends is not None and ends <= starts:
        raise BadDocument("it ends before it starts")


@transaction.atomic
def import_agreement(solution: Solution, revision: Revision, document: dict, signature: dict, origin: str, *,
                     origin_instance: str = "") -> Agreement:
    """The agreement an origin signed for this site, as a local one: every signed-in user here is its
    assignee (they share its counts and dates), its licensor is the origin (no one here may pass it on),
    its rules as signed, the document and signature kept as evidence. The same document imported again
    (another revision it covers) is the agreement made before."""
    check_document(document)
    existing = Agreement.objects.filter(solution=solution, source=AgreementSource.PEER, licensor_name=origin[:200],
                                        document__agreement=document.get("agreement")).first()
    if existing is not None:
        return existing
    rules = _rules_of(document)
    target = (document.get("target") or {}).get("revision")
    agreement = Agreement.objects.create(
        solution=solution, revision=revision if target else None, licensor=None, licensor_name=origin[:200],
        assignee_kind=AssigneeKind.SITE, starts=_moment(document.get("starts")), ends=_moment(document.get("ends")),
        source=AgreementSource.PEER, origin_instance=origin_instance[:200], document=document, signature=signature)
    Rule.objects.bulk_create(Rule(agreement=agreement, **rule) for rule in rules)
    return agreement


def _rules_of(document: dict) -> list[dict]:
    rules = document.get("rules")
    if not isinstance(rules, list) or not rules:
        raise BadDocument("the agreement has no rules")
    made, seen = [], set()
    for rule in rules:
        if not isinstance(rule, dict) or rule.get("action") not in Action.values or \
                rule.get("kind") not in RuleKind.values or rule["action"] in seen:
            raise BadDocument(f"the agreement has a rule this site cannot read: {str(rule)[:200]}")
        seen.add(rule["action"])
        limits = {name: _limit(rule.get(name)) for name in ("count_limit", "live_limit")}
        if rule["kind"] == RuleKind.PROHIBIT:
            limits = {"count_limit": None, "live_limit": None}
        made.append({"action": rule["action"], "kind": rule["kind"], **limits})
    return made


def _limit(value) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 2**31 - 1:
        raise BadDocument(f"a limit of {value!r} is not a whole number from 1 to {2**31 - 1}")
    return value


def _moment(value) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise BadDocument(f"{value!r} is not a date and time") from exc
    if timezone.is_naive(moment):
        raise BadDocument(f"{value!r} has no time zone")
    return moment
