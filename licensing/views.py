"""Licensing's own screens: a model's licence and what the viewer may do about it (request, accept,
buy), the licensor's requests, agreements, usage (and its CSV) and offer, and the licensee's own
agreements and requests. The model page, which shows a viewer's licence state in one line, stays in
pages and asks `viewer_state` here.

Views read through licensing.selectors and write through licensing.services: a refusal comes back
next to the field it names, or as a message. Licensor pages answer 403 to whoever licenses nothing
(and to a licensee trying a licensor's action); what the user may not see at all is a 404."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from acumos_portal.api.refusals import Refused
from licensing import policy, selectors, services, usage_csv
from licensing.choices import Action, AgreementStatus, Denial, OfferMode, RequestStatus, RuleKind
from licensing.forms import (
    ACTIONS,
    AcceptForm,
    ApproveForm,
    DeclineForm,
    GrantForm,
    OfferForm,
    RequestForm,
    RevokeForm,
    UsageForm,
    default_usage_range,
    refusal_on,
)
from licensing.models import AccessRequest, LicenceProfile
from licensing.policy import LicenceDenied, Who
from marketplace import selectors as market
from marketplace.choices import RevisionStatus

DECIDED_SHOWN = 50  # decided requests under the pending ones
EARLIER_SHOWN = 5  # a requester's earlier requests shown beside a pending one
USAGE_ROWS = 500
REQUEST_BADGES = {RequestStatus.PENDING: "pending", RequestStatus.APPROVED: "active",
                  RequestStatus.DECLINED: "failed", RequestStatus.WITHDRAWN: "skipped"}
_DOUBLED_STOP = re.compile(r"(?<!\.)\.\.(?!\.)")
_VERBS = {Action.DOWNLOAD: "download", Action.DEPLOY: "deploy", Action.PREDICT: "run predictions with",
          Action.EXPORT: "receive"}


# ---------------------------------------------------------------- what a denied page download shows

def denied_page(request, denied: LicenceDenied, revision):
    """A denied download or deploy on a page: the reason and the next step, with the denial's status
    (403, or 402 when buying access is what is missing)."""
    return render(request, "licensing/denied.html", {
        "revision": revision, "solution": revision.solution, "decision": denied.decision,
    }, status=denied.decision.status)


# ---------------------------------------------------------------- the viewer's state, in one line

@dataclass(frozen=True)
class ViewerState:
    """What the viewer may do with a revision under its licence, in one sentence, and the next step
    (a link) when there is one. `step` names the state for templates and tests."""

    decision: policy.Decision
    step: str  # open, owner, entitled, request, pending, declined, accept, buy, sign_in, contact, denied
    line: str
    next_label: str = ""
    next_url: str = ""

    @property
    def allowed(self) -> bool:
        return self.decision.allowed


def viewer_state(user, revision, action: str = Action.DOWNLOAD) -> ViewerState:
    """The policy's dry run (nothing consumed) for `user`, said as the model and licence pages say it."""
    decision = policy.decide(Who.of(user), revision, action)
    licence_url = reverse("licensing:solution", args=[revision.solution_id])
    if decision.allowed:
        return _allowed_state(decision, revision, action)
    details, step = decision.details, _denied_step(decision, signed_in=market.signed_in(user))
    labels = {"request": "Request access", "declined": "Request again", "pending": "See your request",
              "accept": "Accept the licence", "buy": "Buy access", "sign_in": "Sign in to request access"}
    url = licence_url
    if step == "buy":
        url = details.get("payment_url", licence_url)
    elif step == "sign_in":
        url = f"{reverse('accounts:login')}?next={licence_url}"
    elif step == "denied" and details.get("request_url"):
        labels["denied"] = "See your options"
    line = _denied_line(decision, step, revision, action)
    return ViewerState(decision, step, line, labels.get(step, ""), url if labels.get(step) else "")


def _denied_line(decision: policy.Decision, step: str, revision, action: str) -> str:
    """The policy's sentence, except where the page itself offers the next step: it says only what is
    missing (the button beside it says what to do), and a decline quotes the licensor's reason."""
    if step == "request":
        return f"To {_VERBS.get(action, action)} {revision.solution.name} you need an agreement with its licensor."
    if step == "declined":
        found = AccessRequest.objects.filter(pk=decision.details.get("request")).only("decision_reason").first()
        reason = (found.decision_reason if found else "").strip().rstrip(".")
        return f"Declined: {reason}. You may request again." if reason else "Declined. You may request again."
    return _DOUBLED_STOP.sub(".", decision.message)  # a reason quoted with its own full stop


def _denied_step(decision: policy.Decision, *, signed_in: bool) -> str:
    """The next step a denial points to: the first of these that its code and details say."""
    details = decision.details
    if decision.code == Denial.PAYMENT_REQUIRED:
        return "buy"
    if decision.code != Denial.AGREEMENT_NOT_FOUND:
        return "denied"  # revoked, dates, used up, prohibited, live limit: the message says what to do
    status = details.get("request_status")
    steps = [(not signed_in, "sign_in"), (status == RequestStatus.PENDING, "pending"),
             (status == RequestStatus.DECLINED, "declined"), (bool(details.get("accept_url")), "accept"),
             (bool(details.get("licensor")), "contact"), (bool(details.get("request_url")), "request")]
    return next((step for applies, step in steps if applies), "contact")


def _allowed_state(decision: policy.Decision, revision, action: str) -> ViewerState:
    if decision.code == policy.ALLOWED_OPEN:
        return ViewerState(decision, "open", "The licence needs no agreement.")
    if decision.code == policy.ALLOWED_OWNER:
        return ViewerState(decision, "owner", "You own this model: you decide who may use it.", "Its agreements",
                           f"{reverse('licensing:agreements')}?solution={revision.solution_id}")
    return ViewerState(decision, "entitled", entitled_line(decision, action), "Your agreements",
                       reverse("licensing:mine"))


def entitled_line(decision: policy.Decision, action: str) -> str:
    """"37 of 100 downloads left, until 1 March 2027"."""
    details = decision.details
    limit, left = details.get("limit"), decision.remaining
    count = f"Unlimited {action}s" if limit is None else f"{left} of {limit} {action}s left"
    ends = dt.datetime.fromisoformat(details["ends"]) if details.get("ends") else None
    until = f", until {date_format(ends, 'j F Y')}" if ends else ", no end date"
    return f"{count}{until} (your agreement)."


# ---------------------------------------------------------------- guards and helpers

def licensors_only(view):
    """The licensor's pages: whoever licenses no model (owns none made here; not a licence admin) is
    answered 403, saying why."""
    @login_required
    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not selectors.licensed_solutions(request.user).exists():
            return forbidden(request, "Only the owners of a model made on this site manage who may use it, and "
                                      "you own none. Your own agreements and requests are under My licences.")
        return view(request, *args, **kwargs)
    return guarded


def forbidden(request, message: str):
    return render(request, "licensing/forbidden.html", {**_nav(request), "message": message}, status=403)


def _said(refused: Refused) -> str:
    text = refused.message[:1].upper() + refused.message[1:]
    return text if text.endswith(".") else text + "."


def _nav(request, here: str = "") -> dict:
    """The licensing tabs: the licensor's ones only for a licensor (with the pending requests counted)."""
    user = request.user
    licensor = market.signed_in(user) and selectors.licensed_solutions(user).exists()
    pending = selectors.requests_to_decide(user, status=RequestStatus.PENDING).count() if licensor else 0
    return {"here": here, "is_licensor": licensor, "pending_count": pending}


def _back(request, default: str):
    """Where a form asked to go back to (`next`, on this site only), else `default`."""
    wanted = request.POST.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return redirect(wanted)
    return redirect(default)


def describe_agreement(agreement, now=None) -> None:
    """Sets `state` and `badge` (active, revoked, ended, not started, used up) on an agreement and
    `left` on each of its rules ("7 of 10 left"): computed, as the models keep it (never stored)."""
    now = now or timezone.now()
    rules = sorted(agreement.rules.all(), key=lambda rule: ACTIONS.index(rule.action))
    for rule in rules:
        rule.left = _left(rule)
    permits = [r for r in rules if r.kind == RuleKind.PERMIT]
    if agreement.status == AgreementStatus.REVOKED:
        agreement.state, agreement.badge = "revoked", "revoked"
    elif agreement.ends and agreement.ends <= now:
        agreement.state, agreement.badge = "ended", "skipped"
    elif agreement.starts and now < agreement.starts:
        agreement.state, agreement.badge = "not started", "pending"
    elif permits and all(r.count_limit is not None and r.count_used >= r.count_limit for r in permits):
        agreement.state, agreement.badge = "used up", "skipped"
    else:
        agreement.state, agreement.badge = "active", "active"
    agreement.rule_list = rules


def _left(rule) -> str:
    if rule.kind == RuleKind.PROHIBIT:
        return "prohibited"
    count = "unlimited" if rule.count_limit is None else f"{rule.remaining} of {rule.count_limit} left"
    if rule.action == Action.DEPLOY and rule.live_limit is not None:
        count += f", {rule.live_used} of {rule.live_limit} live"
    return count


# ---------------------------------------------------------------- a model's licence (public)

@require_GET
def home(request):
    """/licensing/: the licensor's requests, or the licensee's own page."""
    if not market.signed_in(request.user):
        return redirect(f"{reverse('accounts:login')}?next={request.path}")
    licensor = selectors.licensed_solutions(request.user).exists()
    return redirect("licensing:requests" if licensor else "licensing:mine")


@require_GET
def solution(request, pk):
    found = get_object_or_404(market.visible_solutions(request.user), pk=pk)
    return _solution_page(request, found, version=request.GET.get("version"))


def _shown_revision(user, found, version: str | None):
    """`?version=<revision id>` among the versions the user sees, else the latest ready one."""
    revisions = market.visible_revisions(user).filter(solution=found, status=RevisionStatus.READY)
    if version:
        try:
            return get_object_or_404(revisions, pk=uuid.UUID(version))
        except ValueError:
            raise Http404("no such version") from None
    return revisions.order_by("-created").first()


def _solution_page(request, found, *, version=None, status: int = 200, request_form=None, accept_problem=""):
    user = request.user
    revision = _shown_revision(user, found, version)
    profile = LicenceProfile.objects.filter(revision=revision).first() if revision else None
    state = viewer_state(user, revision) if revision else None
    offer = services.offer_of(found)
    latest = selectors.latest_request(user, found)
    context = {
        **_nav(request), "solution": found, "revision": revision, "profile": profile, "state": state,
        "offer": offer, "latest": latest, "latest_badge": REQUEST_BADGES.get(latest.status) if latest else "",
        "may_license": services.may_license(user, found),
        "accept_problem": accept_problem,
    }
    if state is not None and _may_ask(state) and offer.mode == OfferMode.REQUEST:
        context["request_form"] = request_form or RequestForm(questions=offer.request_fields)
    if state is not None and state.step == "accept" and profile is not None:
        context["accept_form"] = AcceptForm(initial={"revision": revision.pk, "text_sha256": profile.text_sha256})
    return render(request, "licensing/solution.html", context, status=status)


def _may_ask(state: ViewerState) -> bool:
    """Asking is the next step: nothing asked yet, a decline, or an agreement revoked or ended."""
    again = state.step == "denied" and state.decision.code in (Denial.RIGHT_TO_USE_REVOKED, Denial.TIMING_CONSTRAINT)
    return state.step in ("request", "declined") or again


@require_POST
@login_required
def request_access(request, pk):
    found = get_object_or_404(market.visible_solutions(request.user), pk=pk)
    form = RequestForm(request.POST, questions=services.offer_of(found).request_fields)
    if not form.is_valid():
        return _solution_page(request, found, status=400, request_form=form)
    try:
        services.request_access(request.user, found, message=form.cleaned_data["message"], answers=form.answers())
    except services.Conflict as conflict:
        messages.info(request, _said(conflict))
    except Refused as refused:
        field = refused.field.removeprefix("answers.") if refused.field else None
        refused.field = f"answer_{field}" if field and f"answer_{field}" in form.fields else refused.field
        refusal_on(form, refused)
        return _solution_page(request, found, status=400, request_form=form)
    else:
        messages.success(request, f"Your request is sent: the licensor of {found.name} is told, and you are told "
                                  f"when they answer.")
    return redirect("licensing:solution", pk=found.pk)


@require_POST
@login_required
def accept(request, pk):
    found = get_object_or_404(market.visible_solutions(request.user), pk=pk)
    form = AcceptForm(request.POST)
    if not form.is_valid():
        raise Http404("no such version")
    revision = get_object_or_404(market.visible_revisions(request.user).filter(solution=found),
                                 pk=form.cleaned_data["revision"])
    try:
        services.accept(request.user, revision, form.cleaned_data["text_sha256"])
    except services.Conflict:
        return _solution_page(request, found, version=str(revision.pk), status=409, accept_problem=(
            "The licence text changed since this page showed it. Read it again below, then accept this one."))
    except Refused as refused:
        messages.error(request, _said(refused))
    else:
        messages.success(request, f"You accepted the licence of {found.name}: you may use it under its terms.")
    return redirect(f"{reverse('licensing:solution', args=[found.pk])}?version={revision.pk}")


@require_POST
@login_required
def withdraw(request, pk):
    found = get_object_or_404(selectors.requests_made_by(request.user), pk=pk)
    try:
        services.withdraw(request.user, found)
    except Refused as refused:
        messages.error(request, _said(refused))
    else:
        messages.success(request, f"Your request for {found.solution.name} is withdrawn.")
    return _back(request, reverse("licensing:mine"))


# ---------------------------------------------------------------- the licensor: requests

@require_GET
@licensors_only
def requests(request):
    user = request.user
    found = list(selectors.requests_to_decide(user)[:DECIDED_SHOWN + 200])
    pending = [r for r in found if r.status == RequestStatus.PENDING]
    decided = [r for r in found if r.status != RequestStatus.PENDING][:DECIDED_SHOWN]
    offers = {}
    for item in pending:
        if item.solution_id not in offers:
            offers[item.solution_id] = services.offer_of(item.solution)
        short = item.pk.hex[:8]
        item.approve_form = ApproveForm(terms=offers[item.solution_id].terms, auto_id=f"approve-{short}-%s")
        item.decline_form = DeclineForm(auto_id=f"decline-{short}-%s")
        item.earlier = list(selectors.earlier_requests(item)[:EARLIER_SHOWN])
        for earlier in item.earlier:
            earlier.badge = REQUEST_BADGES.get(earlier.status)
    for item in decided:
        item.badge = REQUEST_BADGES.get(item.status)
    return render(request, "licensing/requests.html", {**_nav(request, "requests"), "pending": pending,
                                                       "decided": decided})


def _request_to_decide(request, pk) -> AccessRequest:
    return get_object_or_404(selectors.visible_requests(request.user), pk=pk)


@require_POST
@licensors_only
def approve(request, pk):
    found = _request_to_decide(request, pk)
    form = ApproveForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("licensing:requests")
    try:
        services.approve(request.user, found, terms=form.terms(), reason=form.cleaned_data["reason"])
    except services.NotAllowed as refused:
        return forbidden(request, _said(refused))
    except Refused as refused:
        messages.error(request, f"{found.requester.username}, {found.solution.name}: {_said(refused)}")
    else:
        messages.success(request, f"Approved: {found.requester.username} may use {found.solution.name} and is told.")
    return redirect("licensing:requests")


@require_POST
@licensors_only
def decline(request, pk):
    found = _request_to_decide(request, pk)
    form = DeclineForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("licensing:requests")
    try:
        services.decline(request.user, found, form.cleaned_data["reason"])
    except services.NotAllowed as refused:
        return forbidden(request, _said(refused))
    except Refused as refused:
        messages.error(request, f"{found.requester.username}, {found.solution.name}: {_said(refused)}")
    else:
        messages.success(request, f"Declined: {found.requester.username} is told why and may ask again.")
    return redirect("licensing:requests")


def _form_errors(form) -> str:
    said = [str(error) for errors in form.errors.values() for error in errors]
    return " ".join(text[:1].upper() + text[1:] for text in said)


# ---------------------------------------------------------------- the licensor: agreements

@require_GET
@licensors_only
def agreements(request):
    return _agreements_page(request)


def _agreements_page(request, grant_form=None, *, status: int = 200):
    user = request.user
    solutions = selectors.licensed_solutions(user).order_by("name")
    chosen = _chosen_solution(solutions, request.GET.get("solution"))
    found = list(selectors.agreements_granted_by(user, solution=chosen).order_by("solution__name", "-created"))
    now = timezone.now()
    groups: dict = {}
    for agreement in found:
        describe_agreement(agreement, now)
        agreement.revoke_form = RevokeForm(auto_id=f"revoke-{agreement.pk.hex[:8]}-%s")
        groups.setdefault(agreement.solution_id, (agreement.solution, []))[1].append(agreement)
    form = grant_form or GrantForm(solutions=solutions, terms=services.DEFAULT_TERMS, auto_id="grant-%s",
                                   initial={"solution": chosen.pk if chosen else None})
    return render(request, "licensing/agreements.html", {
        **_nav(request, "agreements"), "groups": list(groups.values()), "chosen": chosen, "grant_form": form,
    }, status=status)


def _chosen_solution(solutions, wanted: str | None):
    if not wanted:
        return None
    try:
        return solutions.filter(pk=uuid.UUID(wanted)).first()
    except ValueError:
        return None


@require_POST
@licensors_only
def grant(request):
    user = request.user
    form = GrantForm(request.POST, solutions=selectors.licensed_solutions(user), auto_id="grant-%s")
    if not form.is_valid():
        return _agreements_page(request, form, status=400)
    data = form.cleaned_data
    try:
        made = services.grant(user, data["solution"], data["who"], services.parse_terms(form.terms()),
                              revision=data["revision"], ends=form.ends_at())
    except Refused as refused:
        refusal_on(form, refused)
        return _agreements_page(request, form, status=400)
    messages.success(request, f"{made.assignee_label} may now use {made.solution.name}.")
    return redirect(f"{reverse('licensing:agreements')}?solution={made.solution_id}")


@require_POST
@licensors_only
def revoke(request, pk):
    found = get_object_or_404(selectors.visible_agreements(request.user).select_related("solution"), pk=pk)
    form = RevokeForm(request.POST)
    back = f"{reverse('licensing:agreements')}?solution={found.solution_id}"
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect(back)
    try:
        services.revoke(request.user, found, form.cleaned_data["reason"])
    except services.NotAllowed as refused:
        return forbidden(request, _said(refused))
    except Refused as refused:
        messages.error(request, _said(refused))
    else:
        messages.success(request, f"Revoked: {found.assignee_label} may no longer use {found.solution.name}.")
    return redirect(back)


# ---------------------------------------------------------------- the licensor: usage and its CSV

@require_GET
@licensors_only
def usage(request):
    user = request.user
    solutions = selectors.licensed_solutions(user).order_by("name")
    start, end = default_usage_range()
    form = UsageForm(request.GET or None, solutions=solutions, initial={"start": start, "end": end})
    query = selectors.UsageQuery(start=start, end=end)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        query = selectors.UsageQuery(solution=str(data["solution"].pk) if data["solution"] else "",
                                     assignee=data["assignee"].strip(), action=data["action"],
                                     start=data["start"], end=data["end"])
    if request.GET.get("format") == "csv" and not form.errors:
        return _usage_csv(user, query)
    totals = list(selectors.usage_totals(user, query)[:USAGE_ROWS])
    csv_query = {"format": "csv", "solution": query.solution, "assignee": query.assignee, "action": query.action,
                 "start": query.start or "", "end": query.end or ""}  # what the page shows, defaults included
    return render(request, "licensing/usage.html", {
        **_nav(request, "usage"), "form": form, "totals": totals, "query": query, "limit": USAGE_ROWS,
        "csv_url": f"{reverse('licensing:usage')}?{urlencode(csv_query)}",
    }, status=400 if form.errors else 200)


def _usage_csv(user, query: selectors.UsageQuery) -> StreamingHttpResponse:
    span = "-".join(day.isoformat() for day in (query.start, query.end) if day) or "all"
    return usage_csv.response(selectors.usage_per_day(user, query), f"licensing-usage-{span}.csv")


# ---------------------------------------------------------------- the licensor: the offer

@require_http_methods(["GET", "POST"])
@licensors_only
def offer(request, pk):
    found = get_object_or_404(market.visible_solutions(request.user), pk=pk)
    if not services.may_license(request.user, found):
        return forbidden(request, f"Only the owners of {found.name} set how people get an agreement for it.")
    current = services.offer_of(found)
    form = OfferForm(request.POST or None, offer=current, auto_id="offer-%s")
    status = 200
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            services.set_offer(request.user, found, mode=data["mode"], terms=form.terms(),
                               payment_required=data["payment_required"], payment_url=data["payment_url"],
                               request_prompt=data["request_prompt"], request_fields=data["request_fields"])
        except Refused as refused:
            refusal_on(form, refused)
        else:
            messages.success(request, f"The offer for {found.name} is saved.")
            return redirect("licensing:offer", pk=found.pk)
    if form.is_bound:
        status = 400
    return render(request, "licensing/offer.html", {**_nav(request, "agreements"), "solution": found, "form": form,
                                                    "saved": current.modified},
                  status=status)


# ---------------------------------------------------------------- the licensee

@require_GET
@login_required
def mine(request):
    user = request.user
    held = list(selectors.agreements_held_by(user).order_by("status", "-created"))
    now = timezone.now()
    for agreement in held:
        describe_agreement(agreement, now)
    made = list(selectors.requests_made_by(user)[:100])
    seen = set()
    for item in made:  # newest first: the first of each model is the one that may be asked again
        item.badge = REQUEST_BADGES.get(item.status)
        item.is_latest = item.solution_id not in seen
        seen.add(item.solution_id)
    return render(request, "licensing/mine.html", {**_nav(request, "mine"), "held": held, "made": made})
