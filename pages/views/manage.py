"""Publisher and admin pages under /manage/: the publish request queue (publishers and admins),
catalogs, users and roles, and the site settings (admins). To anyone else they do not exist (404);
anonymous visitors are asked to sign in first, as everywhere."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q, prefetch_related_objects
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from acumos_portal.accounts.models import SiteSettings, User
from marketplace import selectors, services
from marketplace.choices import RequestStatus
from marketplace.models import Catalog
from pages.manage_forms import (
    APPROVE,
    CatalogForm,
    ReviewForm,
    SiteSettingsForm,
    UserAccessForm,
)

PAGE_SIZE = 25
# The queue's filter, by a word in the URL; "pending" first and by default.
REQUEST_FILTERS = {"pending": RequestStatus.PENDING, "approved": RequestStatus.APPROVED,
                   "declined": RequestStatus.DECLINED, "withdrawn": RequestStatus.WITHDRAWN, "all": None}


def _only(allowed):
    def decorator(view):
        @login_required
        @wraps(view)
        def guarded(request, *args, **kwargs):
            prefetch_related_objects([request.user], "groups")  # the role checks below read them once
            if not allowed(request.user):
                raise Http404("no such page")
            return view(request, *args, **kwargs)
        return guarded
    return decorator


publishers_only = _only(selectors.is_publisher)
admins_only = _only(selectors.is_admin)


def _posted(request):
    """The posted data for a POST (a bound form, even when every box is unticked), else None."""
    return request.POST if request.method == "POST" else None


# ---------------------------------------------------------------- the landing page

@require_GET
@publishers_only
def home(request):
    admin = selectors.is_admin(request.user)
    return render(request, "manage/home.html", {
        "admin": admin,
        "pending": selectors.reviewable_requests(request.user).filter(status=RequestStatus.PENDING).count(),
        "catalogs": Catalog.objects.count() if admin else 0,
        "users": User.objects.count() if admin else 0,
        "site": SiteSettings.current() if admin else None,
    })


# ---------------------------------------------------------------- publish requests

@require_GET
@publishers_only
def requests(request):
    shown = request.GET.get("status") if request.GET.get("status") in REQUEST_FILTERS else "pending"
    found = selectors.reviewable_requests(request.user)
    if REQUEST_FILTERS[shown]:
        found = found.filter(status=REQUEST_FILTERS[shown])
    page = Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
    counts = dict(selectors.reviewable_requests(request.user).order_by().values_list("status")
                  .annotate(n=Count("pk")))
    return render(request, "manage/requests.html", {
        "page": page, "shown": shown, "filters": [(word, (counts.get(code, 0) if code else sum(counts.values())))
                                                  for word, code in REQUEST_FILTERS.items()],
    })


@require_POST
@publishers_only
def review(request, pk: int):
    """Approve or decline; a request on the reviewer's own model is not in their queue: 404."""
    publish_request = get_object_or_404(selectors.reviewable_requests(request.user), pk=pk)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
    else:
        _decide(request, publish_request, form.cleaned_data["decision"], form.cleaned_data["comment"])
    return redirect(_back_to_queue(request))


def _decide(request, publish_request, decision: str, comment: str) -> None:
    name = f"{publish_request.solution.name} {publish_request.revision.version}"
    try:
        if decision == APPROVE:
            services.approve(request.user, publish_request, comment)
            messages.success(request, f"Approved: {name} is published in {publish_request.catalog.name}.")
        else:
            services.decline(request.user, publish_request, comment)
            messages.success(request, f"Declined: {name} was not published; the owner is told why.")
    except services.Refused as refused:
        messages.error(request, f"{name}: {refused.message[:1].upper()}{refused.message[1:]}.")


def _back_to_queue(request) -> str:
    shown = request.POST.get("status")
    url = reverse("marketplace:manage-requests")
    return f"{url}?status={shown}" if shown in REQUEST_FILTERS else url


# ---------------------------------------------------------------- catalogs

@require_GET
@admins_only
def catalogs(request):
    found = Catalog.objects.annotate(
        models=Count("publications__solution", distinct=True),
        pending=Count("publish_requests", filter=Q(publish_requests__status=RequestStatus.PENDING), distinct=True))
    return render(request, "manage/catalogs.html", {"catalogs": found})


@require_http_methods(["GET", "POST"])
@admins_only
def catalog_edit(request, pk=None):
    catalog = get_object_or_404(Catalog, pk=pk) if pk else None
    form = CatalogForm(_posted(request), instance=catalog)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Catalog {saved.name} {'saved' if catalog else 'created'}.")
        return redirect("marketplace:manage-catalogs")
    return render(request, "manage/catalog_form.html", {"form": form, "catalog": catalog},
                  status=400 if form.errors else 200)


@require_POST
@admins_only
def catalog_delete(request, pk):
    catalog = get_object_or_404(Catalog, pk=pk)
    try:
        services.delete_catalog(catalog)
    except services.Refused as refused:
        messages.error(request, f"Not deleted: {refused.message}.")
        return redirect("marketplace:manage-catalog-edit", pk=catalog.pk)
    messages.success(request, f"Catalog {catalog.name} deleted.")
    return redirect("marketplace:manage-catalogs")


# ---------------------------------------------------------------- users and roles

@require_GET
@admins_only
def users(request):
    query = request.GET.get("q", "").strip()
    found = User.objects.prefetch_related("groups").order_by("username")
    if query:
        found = found.filter(Q(username__icontains=query) | Q(first_name__icontains=query)
                             | Q(last_name__icontains=query) | Q(email__icontains=query))
    page = Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "manage/users.html", {"page": page, "query": query})


@require_http_methods(["GET", "POST"])
@admins_only
def user_edit(request, pk: int):
    person = get_object_or_404(User.objects.prefetch_related("groups"), pk=pk)
    form = UserAccessForm(_posted(request), user=person, acting=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"{person.username}: roles and access saved.")
        return redirect("marketplace:manage-users")
    return render(request, "manage/user_form.html", {"form": form, "person": person},
                  status=400 if form.errors else 200)


# ---------------------------------------------------------------- site settings

@require_http_methods(["GET", "POST"])
@admins_only
def site(request):
    form = SiteSettingsForm(_posted(request), request.FILES if request.method == "POST" else None,
                            instance=SiteSettings.current())
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Site settings saved.")
        return redirect("marketplace:manage-site")
    return render(request, "manage/site.html", {"form": form}, status=400 if form.errors else 200)


urlpatterns = [
    path("manage/", home, name="manage"),
    path("manage/publish-requests/", requests, name="manage-requests"),
    path("manage/publish-requests/<int:pk>/review/", review, name="manage-request-review"),
    path("manage/catalogs/", catalogs, name="manage-catalogs"),
    path("manage/catalogs/new/", catalog_edit, name="manage-catalog-new"),
    path("manage/catalogs/<uuid:pk>/", catalog_edit, name="manage-catalog-edit"),
    path("manage/catalogs/<uuid:pk>/delete/", catalog_delete, name="manage-catalog-delete"),
    path("manage/users/", users, name="manage-users"),
    path("manage/users/<int:pk>/", user_edit, name="manage-user-edit"),
    path("manage/site/", site, name="manage-site"),
]
