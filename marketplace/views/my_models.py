"""My Models: what the signed-in user owns or co-owns."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Prefetch, Q
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET

from marketplace.models import Revision
from marketplace.selectors import managed_solutions
from onboarding.choices import StepStatus
from onboarding.models import OnboardingJob

RECENT_JOBS = 10
_UNFINISHED_STEPS = [StepStatus.PENDING, StepStatus.RUNNING]


@require_GET
@login_required
def my_models(request):
    revisions = Revision.objects.annotate(artifact_count=Count("artifacts")).order_by("-created")
    solutions = managed_solutions(request.user).filter(owner=request.user).prefetch_related(
        Prefetch("revisions", queryset=revisions))
    jobs = (OnboardingJob.objects.filter(owner=request.user)
            .annotate(steps_total=Count("steps"),
                      steps_done=Count("steps", filter=~Q(steps__status__in=_UNFINISHED_STEPS)))
            .order_by("-created")[:RECENT_JOBS])
    return render(request, "marketplace/my_models.html", {"solutions": solutions, "jobs": jobs})


urlpatterns = [path("my-models/", my_models, name="my-models")]
