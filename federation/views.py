"""The admins' federation pages under /site/federation/: this instance's identity and its peers (the
overview), one peer (edit, ping, status, grants, subscribe), one subscription (settings, runs, what
still fails) and one run (its results, followed while it runs). To anyone else they do not exist
(404); anonymous visitors are asked to sign in first, as on every admin page. Views read and check;
federation.services does the work and says what it refuses."""

from __future__ import annotations

import uuid
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from acumos_portal.api.refusals import Refused
from acumos_portal.choices import UNFINISHED
from acumos_portal.htmx import add_toast, is_htmx, messages_as_toasts
from federation import identity, selectors, services
from federation.certificates import CertificateProblem
from federation.choices import PeerStatus
from federation.client import PeerAnswer, PeerClient, PeerUnavailable
from federation.forms import GrantForm, PeerForm, SubscribeForm, SubscriptionSettingsForm, refusal_on
from federation.models import Peer, SyncRun
from marketplace.choices import CatalogAccess
from marketplace.models import Catalog

# How each peer status is drawn (includes/badge.html's classes).
PEER_BADGES = {PeerStatus.ACTIVE: "active", PeerStatus.REQUESTED: "pending", PeerStatus.INACTIVE: "skipped",
               PeerStatus.DECLINED: "failed"}
# What each status button says once pressed.
STATUS_SAID = {
    PeerStatus.ACTIVE: "{name} is active: it may read the catalogs it is allowed, and this site may import from it.",
    PeerStatus.INACTIVE: "{name} is inactive: it cannot call this site until it is activated again.",
    PeerStatus.DECLINED: "{name} is declined: it cannot call this site.",
}
RUNS_SHOWN = 25


def admins_only(view):
    @login_required
    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not selectors.can_manage_federation(request.user):
            raise Http404("no such page")
        return view(request, *args, **kwargs)
    return guarded


def _said(refused: Refused) -> str:
    return refused.message[:1].upper() + refused.message[1:] + ("" if refused.message.endswith(".") else ".")


# ---------------------------------------------------------------- the overview

@require_GET
@admins_only
def overview(request):
    return _overview(request)


def _overview(request, register_form: PeerForm | None = None, *, status: int = 200):
    me, identity_problem = _identity()
    peers = list(selectors.peers_listed())
    for peer in peers:
        peer.badge = PEER_BADGES.get(peer.status, "pending")
    subscriptions = list(selectors.subscriptions_for(request.user))
    runs = selectors.last_runs(subscriptions)
    for subscription in subscriptions:
        subscription.last_run = runs.get(subscription.pk)
    return render(request, "federation/overview.html", {
        "me": me, "identity_problem": identity_problem,
        "valid_until": me.certificate.not_valid_after_utc if me else None,
        "public_pem": me.public_pem() if me else "", "federation_url": settings.ACUMOS_FEDERATION_URL,
        "registration_open": settings.ACUMOS_FEDERATION_REGISTRATION,
        "requested": [p for p in peers if p.status == PeerStatus.REQUESTED],
        "peers": [p for p in peers if p.status != PeerStatus.REQUESTED],
        "subscriptions": subscriptions, "register_form": register_form or PeerForm(),
    }, status=status)


def _identity() -> tuple[identity.Identity | None, str]:
    """This instance's identity, or None and why it cannot be shown (none made, or unreadable)."""
    if not identity.exists():
        return None, ""
    try:
        return identity.load(), ""
    except (identity.NoIdentity, CertificateProblem, OSError, ValueError) as exc:
        return None, f"The identity in {identity.directory()} cannot be read: {exc}"


@require_GET
@admins_only
def certificate(request):
    """The certificates peers register this instance with, as a file (never the key)."""
    me, _ = _identity()
    if me is None:
        raise Http404("no federation identity yet")
    response = HttpResponse(me.public_pem(), content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{slugify(me.name) or "acumos"}-federation.pem"'
    return response


@require_POST
@admins_only
def register(request):
    form = PeerForm(request.POST)
    if form.is_valid():
        try:
            peer = services.register_peer(request.user, **form.cleaned_data)
        except Refused as refused:
            refusal_on(form, refused)
        else:
            messages.success(request, f"{peer.name} is registered and active. Give its admins this site's "
                                      f"certificate (on the Federation page) and address so they register it too.")
            return redirect("federation:peer", peer.pk)
    return _overview(request, form, status=400)


# ---------------------------------------------------------------- a peer

def _peer(pk) -> Peer:
    return get_object_or_404(Peer, pk=pk)


@require_GET
@admins_only
def peer(request, pk):
    return _peer_page(request, _peer(pk))


def _peer_page(request, found: Peer, *, status: int = 200, **forms):
    found.badge = PEER_BADGES.get(found.status, "pending")
    subscriptions = list(selectors.subscriptions_for(request.user).filter(peer=found))
    runs = selectors.last_runs(subscriptions)
    for subscription in subscriptions:
        subscription.last_run = runs.get(subscription.pk)
    context = {
        "peer": found, "subscriptions": subscriptions, "grants": list(selectors.grants_of(found)),
        "public_catalogs": list(Catalog.objects.filter(access=CatalogAccess.PUBLIC).order_by("name")),
        "edit_form": _edit_form(found), "grant_form": GrantForm(catalogs=selectors.grantable_catalogs(found)),
        "status_actions": _status_actions(found),
        **forms,
    }
    return render(request, "federation/peer.html", context, status=status)


def _edit_form(found: Peer, data=None) -> PeerForm:
    form = PeerForm(data, initial={name: getattr(found, name) for name in PeerForm.base_fields})
    form.fields["subject"].required = True  # a registered peer has one: it names the peer's certificate
    return form


def _status_actions(found: Peer) -> list[tuple[str, str, str]]:
    """(status, button, question) for the status changes that make sense from where the peer is."""
    name = found.name
    activate = (PeerStatus.ACTIVE, "Approve" if found.status == PeerStatus.REQUESTED else "Activate",
                f"Let {name} call this site's peer API?")
    deactivate = (PeerStatus.INACTIVE, "Deactivate", f"Deactivate {name}? It cannot call this site until activated "
                                                     f"again, and its subscriptions do not run.")
    decline = (PeerStatus.DECLINED, "Decline", f"Decline {name}? It cannot call this site.")
    return {
        PeerStatus.REQUESTED: [activate, decline],
        PeerStatus.ACTIVE: [deactivate, decline],
        PeerStatus.INACTIVE: [activate, decline],
        PeerStatus.DECLINED: [activate],
    }.get(found.status, [])


@require_POST
@admins_only
def peer_edit(request, pk):
    found = _peer(pk)
    form = _edit_form(found, request.POST)
    if form.is_valid():
        try:
            services.update_peer(request.user, found, **form.cleaned_data)
        except Refused as refused:
            refusal_on(form, refused)
            found.refresh_from_db()
        else:
            messages.success(request, f"{found.name} is saved.")
            return redirect("federation:peer", found.pk)
    return _peer_page(request, found, status=400, edit_form=form, editing=True)


@require_POST
@admins_only
def peer_ping(request, pk):
    """Ask the peer who it is. htmx: the ping card with its answer, and a toast; else the page."""
    found = _peer(pk)
    result = services.ping(request.user, found)
    found.refresh_from_db()
    sentence = f"{found.name} answered." if result["ok"] else f"{found.name} did not answer: {result['message']}"
    if is_htmx(request):
        response = render(request, "federation/_ping.html", {"peer": found, "ping": result})
        return add_toast(response, sentence, "success" if result["ok"] else "error")
    (messages.success if result["ok"] else messages.error)(request, sentence)
    return redirect("federation:peer", found.pk)


@require_POST
@admins_only
def peer_status(request, pk):
    found = _peer(pk)
    wanted = request.POST.get("status")
    if wanted not in STATUS_SAID:
        messages.error(request, "Choose Activate, Deactivate or Decline.")
        return redirect("federation:peer", found.pk)
    try:
        services.set_status(request.user, found, wanted)
    except Refused as refused:
        messages.error(request, _said(refused))
    else:
        messages.success(request, STATUS_SAID[wanted].format(name=found.name))
    return redirect("federation:peer", found.pk)


@require_POST
@admins_only
def peer_delete(request, pk):
    found = _peer(pk)
    name = found.name
    services.delete_peer(request.user, found)
    messages.success(request, f"{name} is deleted, with this site's subscriptions to it. What they imported stays.")
    return redirect("federation:overview")


# ---------------------------------------------------------------- grants

@require_POST
@admins_only
def grant(request, pk):
    found = _peer(pk)
    form = GrantForm(request.POST, catalogs=selectors.grantable_catalogs(found))
    if not form.is_valid():
        return _peer_page(request, found, status=400, grant_form=form)
    catalog = form.cleaned_data["catalog"]
    services.grant(request.user, found, catalog)
    messages.success(request, f"{found.name} may now read {catalog.name}.")
    return redirect(reverse("federation:peer", args=[found.pk]) + "#grants")


@require_POST
@admins_only
def revoke(request, pk, catalog_id):
    found = _peer(pk)
    catalog = get_object_or_404(Catalog, pk=catalog_id)
    services.revoke(request.user, found, catalog)
    messages.success(request, f"{found.name} may no longer read {catalog.name}.")
    return redirect(reverse("federation:peer", args=[found.pk]) + "#grants")


# ---------------------------------------------------------------- subscribing

def peer_catalogs(found: Peer, *, taken=()) -> tuple[list[dict], str]:
    """The peer's catalogs as it lists them (catalogId, name, accessTypeCode), leaving out those this
    site subscribes to already; or none and the sentence that says why."""
    try:
        with PeerClient(found) as client:
            listed = client.catalogs()
    except (PeerUnavailable, PeerAnswer, identity.NoIdentity) as exc:
        return [], f"{found.name}'s catalogs could not be read: {exc}"
    except OSError as exc:  # this instance's key or certificate file could not be read
        return [], f"{found.name}'s catalogs could not be read: this site's identity cannot be used ({exc})"
    if not isinstance(listed, list):
        return [], f"{found.name} answered its catalogs in a shape this site does not know."
    taken = {str(catalog_id) for catalog_id in taken}
    return [c for c in listed if isinstance(c, dict) and _valid_id(c.get("catalogId"))
            and str(c["catalogId"]) not in taken], ""


def _valid_id(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _catalog_label(catalog: dict) -> str:
    access = {CatalogAccess.PUBLIC: "public", CatalogAccess.RESTRICTED: "restricted"}.get(catalog.get("accessTypeCode"))
    return f"{catalog.get('name') or catalog.get('catalogId')}" + (f" ({access})" if access else "")


def _subscribe_form(request, found: Peer, data=None) -> tuple[SubscribeForm | None, str]:
    listed, problem = peer_catalogs(found, taken=found.subscriptions.values_list("catalog_id", flat=True))
    if problem:
        return None, problem
    if not listed:
        return None, f"{found.name} lists no catalog for this site that it does not subscribe to already."
    choices = [(str(c["catalogId"]), _catalog_label(c)) for c in listed]
    names = {str(c["catalogId"]): str(c.get("name") or "") for c in listed}
    return SubscribeForm(data, catalogs=choices, names=names, initial={"owner": request.user.get_username()}), ""


@require_http_methods(["GET", "POST"])
@admins_only
def subscribe(request, pk):
    """GET: the subscribe form, its catalogs asked of the peer now (htmx: the form alone, for the peer
    page's card; else a page of its own). POST: the subscription, then its page."""
    found = _peer(pk)
    form, problem = _subscribe_form(request, found, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form is not None and form.is_valid():
        given = form.cleaned_data
        try:
            subscription = services.subscribe(
                request.user, found, catalog_id=uuid.UUID(given["catalog"]), owner=given["owner"],
                interval_seconds=given["interval_seconds"], on_withdrawal=given["on_withdrawal"],
                catalog_name=given["catalog_name"])
        except Refused as refused:
            refusal_on(form, refused)
        else:
            messages.success(request, f"Subscribed to {subscription}. Press Run now to import it at once.")
            return redirect("federation:subscription", subscription.pk)
    context = {"peer": found, "subscribe_form": form, "subscribe_problem": problem}
    status = 400 if request.method == "POST" else 200
    if is_htmx(request):
        return render(request, "federation/_subscribe.html", context, status=200 if status == 400 else status)
    return render(request, "federation/subscribe.html", context, status=status)


# ---------------------------------------------------------------- a subscription

def _subscription(request, pk):
    return get_object_or_404(selectors.subscriptions_for(request.user), pk=pk)


@require_GET
@admins_only
def subscription(request, pk):
    return _subscription_page(request, _subscription(request, pk))


def _subscription_page(request, found, *, status: int = 200, settings_form=None):
    runs = list(found.runs.select_related("requested_by")[:RUNS_SHOWN])
    return render(request, "federation/subscription.html", {
        "subscription": found, "runs": runs, "running": any(not run.done for run in runs),
        "failing": list(selectors.failing_items(found)),
        "settings_form": settings_form or SubscriptionSettingsForm(instance=found),
    }, status=status)


@require_POST
@admins_only
def subscription_edit(request, pk):
    found = _subscription(request, pk)
    form = SubscriptionSettingsForm(request.POST, instance=found)
    if not form.is_valid():
        found.refresh_from_db()
        return _subscription_page(request, found, status=400, settings_form=form)
    services.update_subscription(request.user, found, **form.cleaned_data)
    messages.success(request, f"The settings of {found} are saved.")
    return redirect("federation:subscription", found.pk)


@require_POST
@admins_only
def run_now(request, pk):
    """Run now, or a dry run (`dry_run=1`: says what it would do, changes nothing); the run's page follows it."""
    found = _subscription(request, pk)
    dry_run = request.POST.get("dry_run") == "1"
    going = found.runs.filter(status__in=UNFINISHED, dry_run=dry_run).values_list("pk", flat=True).first()
    try:
        run = services.start_run(request.user, found, dry_run=dry_run)
    except Refused as refused:
        messages.error(request, _said(refused))
        return redirect("federation:subscription", found.pk)
    if run.pk == going:  # start_run answers the run in flight rather than start a second
        messages.info(request, "A run of this subscription is already going: here it is.")
    else:
        messages.success(request, "Dry run started: it says what it would import, and changes nothing." if dry_run
                         else "Run started.")
    return redirect("federation:run", run.pk)


@require_POST
@admins_only
def unsubscribe(request, pk):
    found = _subscription(request, pk)
    peer_pk, said = found.peer_id, str(found)
    services.unsubscribe(request.user, found)
    messages.success(request, f"Unsubscribed from {said}. The models it imported stay.")
    return redirect("federation:peer", peer_pk)


# ---------------------------------------------------------------- a run

def _run(request, pk) -> SyncRun:
    return get_object_or_404(selectors.runs_for(request.user).select_related("requested_by"), pk=pk)


def _run_context(run: SyncRun) -> dict:
    return {"run": run, "subscription": run.subscription, "results": list(run.results.all()),
            "summary": services.summary_in_words(run.summary)}


@require_GET
@admins_only
def run(request, pk):
    return render(request, "federation/run.html", _run_context(_run(request, pk)))


@require_GET
@admins_only
def run_live(request, pk):
    """The run page's live part alone, for htmx: it asks for itself again while the run is not done."""
    return messages_as_toasts(request, render(request, "federation/_run_live.html", _run_context(_run(request, pk))))
