"""The monitoring panel of a deployment's page: charts of its figures, its alerts. Whoever may see the
deployment sees its panel (deployment.selectors.visible_deployments: 404 for anyone else)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from acumos_portal.htmx import is_htmx
from deployment.selectors import visible_deployments
from monitoring import selectors


@require_GET
@login_required
def panel(request, pk):
    """The panel alone for htmx (the deployment page loads it, then it refreshes itself every minute); a
    page of its own otherwise (a browser without JavaScript follows the page's link here)."""
    deployment = get_object_or_404(visible_deployments(request.user), pk=pk)
    context = selectors.panel(deployment)
    template = "monitoring/_panel.html" if is_htmx(request) else "monitoring/page.html"
    return render(request, template, context)
