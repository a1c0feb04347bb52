"""My models: what the signed-in user owns or co-owns, in four tabs (unpublished with the uploads
still onboarding, published, deleted, publish requests), each with its count. Every tab costs the
same few queries however many models there are."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import (
    Case,
    Count,
    Exists,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Value,
    When,
    prefetch_related_objects,
)
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_GET

from acumos_portal.choices import UNFINISHED
from marketplace import markdown, selectors
from marketplace.choices import RequestStatus
from marketplace.models import Publication, Revision
from onboarding.choices import JobStatus
from onboarding.models import OnboardingJob
from onboarding.selectors import jobs_with_progress

TABS = {"unpublished": "Unpublished", "published": "Published", "deleted": "Deleted", "requests": "Publish requests"}
PAGE_SIZE = 20
RECENT_FAILURES = timedelta(days=7)
FAILED_SHOWN = 5
POLL_SECONDS = 2
EXCERPT_CHARS = 120


@require_GET
@login_required
def my_models(request):
    user = request.user
    prefetch_related_objects([user], "groups")  # every selector asks the user's roles: once, not per call
    tab = request.GET.get("tab") if request.GET.get("tab") in TABS else "unpublished"
    jobs = jobs_with_progress(user)
    running = list(jobs.filter(status__in=UNFINISHED))
    failed = list(jobs.filter(status=JobStatus.FAILED, finished__gte=timezone.now() - RECENT_FAILURES)
                  [:FAILED_SHOWN]) if tab == "unpublished" else []
    counts = _counts(user, running)
    page = Paginator(_tab_items(user, tab), PAGE_SIZE).get_page(request.GET.get("page"))
    if tab != "requests":
        for solution in page.object_list:  # the description's words, without its Markdown (as search cards)
            solution.excerpt = markdown.excerpt(solution.description, EXCERPT_CHARS)
    return render(request, "marketplace/my_models.html", {
        "tab": tab, "tabs": [(name, label, counts[name]) for name, label in TABS.items()], "page": page,
        "running": running, "failed": failed, "poll_seconds": POLL_SECONDS,
        "newcomer": not any(counts.values()) and not failed,
    })


# ---------------------------------------------------------------- what each tab lists

def _live(user) -> QuerySet:
    published = Publication.objects.filter(solution=OuterRef("pk"))
    return selectors.owned_solutions(user).annotate(is_published=Exists(published))


def _tab_items(user, tab: str) -> QuerySet:
    return {"unpublished": _unpublished, "published": _published, "deleted": _deleted,
            "requests": _requests}[tab](user)


def _unpublished(user) -> QuerySet:
    revisions = Revision.objects.annotate(artifact_count=Count("artifacts")).order_by("-created")
    return _live(user).filter(is_published=False).prefetch_related(Prefetch("revisions", queryset=revisions))


def _published(user) -> QuerySet:
    publications = Publication.objects.select_related("catalog", "revision").order_by("catalog__name",
                                                                                      "-revision__created")
    return _live(user).filter(is_published=True).prefetch_related(Prefetch("publications", queryset=publications))


def _deleted(user) -> QuerySet:
    return selectors.owned_solutions(user, deleted=True).annotate(
        revision_count=Count("revisions")).order_by("-deleted_at")


def _requests(user) -> QuerySet:
    pending_first = Case(When(status=RequestStatus.PENDING, then=Value(0)), default=Value(1))
    return (selectors.requests_of(user).filter(solution__in=selectors.owned_solutions(user))
            .select_related("requested_by").order_by(pending_first, "-created"))


# ---------------------------------------------------------------- counts and jobs

def _counts(user, running: list[OnboardingJob]) -> dict[str, int]:
    """What each tab holds; Unpublished counts the uploads still onboarding too."""
    live = _live(user).aggregate(published=Count("pk", filter=Q(is_published=True)),
                                 unpublished=Count("pk", filter=Q(is_published=False)))
    return {"unpublished": live["unpublished"] + len(running), "published": live["published"],
            "deleted": selectors.owned_solutions(user, deleted=True).count(),
            "requests": _requests(user).count()}


urlpatterns = [path("my-models/", my_models, name="my-models")]
