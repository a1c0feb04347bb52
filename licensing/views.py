"""Licensing's own screens. The model page, which shows a viewer's licence state, stays in pages."""

from __future__ import annotations

from django.shortcuts import render

from licensing.policy import LicenceDenied


def denied_page(request, denied: LicenceDenied, revision):
    """A denied download or deploy on a page: the reason and the next step, with the denial's status
    (403, or 402 when buying access is what is missing)."""
    return render(request, "licensing/denied.html", {
        "revision": revision, "solution": revision.solution, "decision": denied.decision,
    }, status=denied.decision.status)
