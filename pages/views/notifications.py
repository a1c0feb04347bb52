"""Notifications: the page (all or unread, newest first), opening one (which marks it read), marking
them read, the bell's unread count, and the settings (which kinds of events notify the user). A user
only ever reads or marks their own: another user's ids are simply not found (selectors.notifications_of,
services.mark_read)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from acumos_portal.htmx import add_toast, is_htmx
from marketplace import selectors, services
from pages.forms import NotificationSettingsForm, add_refusal

PAGE_SIZE = 25
SHOWS = {"all": "All", "unread": "Unread"}
SETTINGS_PAGE = "marketplace/notification_settings.html"
SETTINGS_FORM = "marketplace/_notification_settings_form.html"  # what htmx swaps in


@require_GET
@login_required
def notifications(request):
    return _page(request, request.GET)


def _page(request, params):
    show = params.get("show") if params.get("show") in SHOWS else "all"
    found = selectors.notifications_of(request.user)
    if show == "unread":
        found = found.filter(read_at__isnull=True)
    page = Paginator(found, PAGE_SIZE).get_page(params.get("page"))
    return render(request, "marketplace/notifications.html", {
        "page": page, "show": show, "shows": SHOWS, "unread": selectors.unread_count(request.user)})


# GET too, so that a plain link (the bell's list) can open one: it only marks it read.
@require_http_methods(["GET", "POST"])
@login_required
def open_notification(request, pk: int):
    notification = get_object_or_404(selectors.notifications_of(request.user), pk=pk)
    services.mark_read(request.user, [notification.pk])
    return redirect(_safe(request, notification.url) or reverse("marketplace:notifications"))


@require_POST
@login_required
def mark_read(request):
    """Every unread one, or only the `ids` posted; ids that are not the user's change nothing."""
    changed = services.mark_read(request.user, _ids(request.POST.getlist("ids")))
    if is_htmx(request):
        # The page again (the list it showed: `show` and `page` are posted), for htmx to swap in.
        response = _page(request, request.POST)
        response["HX-Trigger"] = "notifications-read"  # a bell on the page may refresh its count
        return response
    messages.success(request, f"Marked {changed} notification{pluralize(changed)} as read.")
    return redirect(_safe(request, request.POST.get("next", "")) or reverse("marketplace:notifications"))


# ---------------------------------------------------------------- which kinds a user is told of

@require_http_methods(["GET", "POST"])
@login_required
def notification_settings(request):
    """The kinds of events, grouped, each with a checkbox. With htmx a change is saved at once and the
    form comes back saying so; without, Save posts it and the page comes back with a confirmation."""
    form = NotificationSettingsForm(selectors.notification_choices(request.user), request.POST or None)
    if request.method == "GET":
        return _settings(request, form)
    if form.is_valid():
        try:
            services.set_notification_preferences(request.user, form.chosen())
        except services.Refused as refused:
            add_refusal(form, refused)
        else:
            return _saved(request, before=form.choices)
    return _settings(request, form, status=400)


def _settings(request, form, *, status: int = 200, saved: str = ""):
    template = SETTINGS_FORM if is_htmx(request) else SETTINGS_PAGE
    return render(request, template, {"form": form, "saved": saved}, status=status)


def _saved(request, *, before: list):
    choices = selectors.notification_choices(request.user)
    on = sum(choice.enabled for choice in choices)
    saved = f"Saved: {_changes(before, choices)}; you are told of {on} of the {len(choices)} kinds of events."
    if is_htmx(request):
        return add_toast(_settings(request, NotificationSettingsForm(choices), saved=saved), saved)
    messages.success(request, saved)
    return redirect("marketplace:notification-settings")


def _changes(before: list, after: list) -> str:
    """What the save changed, as "New comment off, New review on", or "nothing changed"."""
    was = {choice.kind: choice.enabled for choice in before}
    changed = [f"{choice.label} {'on' if choice.enabled else 'off'}" for choice in after
               if was.get(choice.kind) != choice.enabled]
    return ", ".join(changed) or "nothing changed"


@require_GET
def bell(request):
    """The top bar's bell, fetched on its own so pages stay cacheable; nothing for anonymous visitors."""
    if not selectors.signed_in(request.user):
        return HttpResponse(status=204)
    return render(request, "includes/bell.html", {"UNREAD_COUNT": selectors.unread_count(request.user)})


def _ids(values: list[str]) -> list[int] | None:
    """None (all) when no ids were posted; otherwise the ones that are numbers."""
    if not values:
        return None
    return [int(value) for value in values if value.strip().isdigit()]


def _safe(request, url: str) -> str:
    """Only a path on this site: a notification or a form never sends anyone elsewhere."""
    allowed = url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()},
                                              require_https=request.is_secure())
    return url if url and allowed else ""


urlpatterns = [
    path("notifications/", notifications, name="notifications"),
    path("notifications/read/", mark_read, name="notifications-read"),
    path("notifications/<int:pk>/open/", open_notification, name="notification-open"),
    path("notifications/bell/", bell, name="notifications-bell"),
    path("notifications/settings/", notification_settings, name="notification-settings"),
]
