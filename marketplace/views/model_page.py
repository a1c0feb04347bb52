"""The model page (placeholder until the model page lands)."""

from __future__ import annotations

from django.db.models import Count
from django.shortcuts import get_object_or_404, render
from django.urls import path
from django.views.decorators.http import require_GET

from marketplace.selectors import visible_revisions, visible_solutions


@require_GET
def model(request, pk):
    found = get_object_or_404(visible_solutions(request.user), pk=pk)
    revisions = (visible_revisions(request.user).filter(solution=found)
                 .annotate(artifact_count=Count("artifacts")).order_by("-created"))
    return render(request, "marketplace/solution.html", {"solution": found, "revisions": revisions})


urlpatterns = [path("models/<uuid:pk>/", model, name="model")]
