"""What licensing reads for pages and the API: profiles, agreements on both sides, requests, usage.
Who may see what is decided here (licensors see theirs, licensees theirs, licence admins all)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.db.models import Count, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from acumos_portal.accounts.choices import Role
from acumos_portal.accounts.models import Membership
from licensing.choices import AssigneeKind, RequestStatus
from licensing.models import AccessRequest, Agreement, LicenceProfile, Rule, UsageRecord
from marketplace import selectors as market
from marketplace.models import Revision, Solution, SolutionShare


def profile_of(revision: Revision) -> LicenceProfile | None:
    return LicenceProfile.objects.filter(revision=revision).first()


def is_licence_admin(user) -> bool:
    """Licence admins (and site admins) see and revoke every agreement and all usage; they are not
    exempt from the policy."""
    return market.signed_in(user) and (user.has_role(Role.LICENCE_ADMIN) or user.is_portal_admin)


def licensed_solutions(user) -> QuerySet[Solution]:
    """The solutions `user` is a licensor of: owned or co-owned, made here (not imported); all of them
    for a licence admin."""
    solutions = Solution.objects.filter(deleted_at__isnull=True, imported_from="")
    if is_licence_admin(user):
        return solutions
    if not market.signed_in(user):
        return solutions.none()
    return solutions.filter(Q(owner=user) | Q(pk__in=SolutionShare.objects.filter(user=user).values("solution")))


def _with_rules(agreements: QuerySet[Agreement]) -> QuerySet[Agreement]:
    return agreements.select_related("solution", "revision", "licensor", "assignee_user", "assignee_group",
                                     "assignee_organisation").prefetch_related(
        Prefetch("rules", queryset=Rule.objects.order_by("action")))


def agreements_granted_by(user, *, solution: Solution | None = None) -> QuerySet[Agreement]:
    """The licensor's side: agreements on the solutions `user` licenses."""
    agreements = Agreement.objects.filter(solution__in=licensed_solutions(user))
    if solution is not None:
        agreements = agreements.filter(solution=solution)
    return _with_rules(agreements)


def assignee_filter(user) -> Q:
    """The agreements that name `user`: directly, through a group or an organisation, or the site."""
    return (Q(assignee_kind=AssigneeKind.USER, assignee_user=user)
            | Q(assignee_kind=AssigneeKind.GROUP, assignee_group__in=Group.objects.filter(user=user))
            | Q(assignee_kind=AssigneeKind.ORGANISATION,
                assignee_organisation__in=Membership.objects.filter(user=user).values("organisation_id"))
            | Q(assignee_kind=AssigneeKind.SITE))


def agreements_held_by(user) -> QuerySet[Agreement]:
    """The licensee's side: what `user` may use, on the solutions they can still see."""
    if not market.signed_in(user):
        return Agreement.objects.none()
    visible = market.visible_solutions(user).values("pk")
    return _with_rules(Agreement.objects.filter(assignee_filter(user), solution__in=visible))


def visible_agreements(user) -> QuerySet[Agreement]:
    """Every agreement `user` may read: granted (licensor, licence admin) or held."""
    if not market.signed_in(user):
        return Agreement.objects.none()
    granted = Q(solution__in=licensed_solutions(user))
    held = assignee_filter(user) & Q(solution__in=market.visible_solutions(user).values("pk"))
    return _with_rules(Agreement.objects.filter(granted | held))


def requests_to_decide(user, *, status: str | None = None) -> QuerySet[AccessRequest]:
    """Requests for the solutions `user` licenses, pending first."""
    requests = AccessRequest.objects.filter(solution__in=licensed_solutions(user)).select_related(
        "solution", "revision", "requester", "decided_by", "agreement")
    if status:
        requests = requests.filter(status=status)
    return requests.order_by(_pending_first(), "-created")


def requests_made_by(user, *, status: str | None = None) -> QuerySet[AccessRequest]:
    if not market.signed_in(user):
        return AccessRequest.objects.none()
    requests = AccessRequest.objects.filter(requester=user).select_related("solution", "revision", "agreement")
    if status:
        requests = requests.filter(status=status)
    return requests.order_by("-created")


def _pending_first():
    from django.db.models import Case, IntegerField, Value, When

    return Case(When(status=RequestStatus.PENDING, then=Value(0)), default=Value(1), output_field=IntegerField())


def visible_requests(user) -> QuerySet[AccessRequest]:
    if not market.signed_in(user):
        return AccessRequest.objects.none()
    return AccessRequest.objects.filter(Q(requester=user) | Q(solution__in=licensed_solutions(user))).select_related(
        "solution", "revision", "requester", "decided_by", "agreement")


def earlier_requests(request: AccessRequest) -> QuerySet[AccessRequest]:
    """What the same person asked before for the same model: the licensor sees the history."""
    return AccessRequest.objects.filter(solution=request.solution_id, requester=request.requester_id).exclude(
        pk=request.pk).order_by("-created")


def latest_request(user, solution: Solution) -> AccessRequest | None:
    if not market.signed_in(user):
        return None
    return AccessRequest.objects.filter(requester=user, solution=solution).order_by("-created").first()


# ---------------------------------------------------------------- usage

@dataclass(frozen=True)
class UsageQuery:
    solution: str = ""
    assignee: str = ""  # a username, a group or organisation name, or a peer subject
    action: str = ""
    start: dt.date | None = None
    end: dt.date | None = None  # inclusive


def usage_visible_to(user) -> QuerySet[UsageRecord]:
    """Licensors see the usage of what they license; licence admins see all."""
    return UsageRecord.objects.filter(solution__in=licensed_solutions(user))


def usage_matching(user, query: UsageQuery) -> QuerySet[UsageRecord]:
    records = usage_visible_to(user)
    if query.solution:
        records = records.filter(solution_id=query.solution)
    if query.action:
        records = records.filter(action=query.action)
    if query.assignee:
        records = records.filter(Q(user__username=query.assignee) | Q(peer=query.assignee)
                                 | Q(agreement__assignee_group__name=query.assignee)
                                 | Q(agreement__assignee_organisation__name=query.assignee))
    if query.start:
        records = records.filter(at__date__gte=query.start)
    if query.end:
        records = records.filter(at__date__lte=query.end)
    return records


USAGE_COLUMNS = ("day", "solution_id", "solution__name", "action", "agreement_id", "user__username", "peer")


def usage_per_day(user, query: UsageQuery) -> QuerySet:
    """Usage grouped per day, model, action, agreement and user or peer: quantity and entries."""
    return (usage_matching(user, query).annotate(day=TruncDate("at")).values(*USAGE_COLUMNS)
            .annotate(quantity=Sum("quantity"), entries=Count("id")).order_by("-day", "solution__name", "action"))


def usage_totals(user, query: UsageQuery) -> QuerySet:
    """Per model, assignee and action, over the range: what the usage page's table shows."""
    return (usage_matching(user, query)
            .values("solution_id", "solution__name", "agreement_id", "user__username", "peer", "action")
            .annotate(quantity=Sum("quantity"), entries=Count("id")).order_by("solution__name", "action"))


def usage_of(agreement: Agreement, user) -> QuerySet[UsageRecord]:
    """An agreement's usage: all of it for its licensors (and licence admins); a licensee holding it
    through a group, an organisation or the site sees their own use only, not the other members'."""
    records = agreement.usage.select_related("revision", "user").order_by("-at")
    if licensed_solutions(user).filter(pk=agreement.solution_id).exists():
        return records
    return records.filter(user=user)
