"""Browse and search the marketplace (placeholder until browse lands)."""

from __future__ import annotations

from django.shortcuts import redirect
from django.urls import path


def browse(request):
    return redirect("marketplace:my-models")


urlpatterns = [path("", browse, name="browse")]
