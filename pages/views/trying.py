"""Try it on the model page, for anyone signed in who may see the model: the request goes to a
running deployment of the model that its owner shared for this (deployment.selectors decides which
and who may), through the portal, so the caller never learns where it runs. The panel also says
whether this user may deploy the model, and if not, who may and what they can do instead.

The panel is fetched by htmx once the model page is drawn (the model page stays one cached
drawing for everyone; this part is the viewer's own), and is a page of its own without JavaScript."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from acumos_portal.htmx import is_htmx
from deployment import services as deployment_services
from deployment.forms import TryForm
from deployment.selectors import (
    can_deploy,
    can_manage,
    samples_of,
    served_methods,
    shared_deployment_for,
)
from marketplace.selectors import can_change_solution, latest_visible_revision, signed_in, visible_solutions


def try_context(user, solution) -> dict:
    """What the panel shows this user: the shared deployment they may call (with its methods and
    their samples), and whether they may deploy the model themselves."""
    revision = latest_visible_revision(user, solution)
    shared = shared_deployment_for(solution, user) if signed_in(user) else None
    samples = samples_of(shared.revision) if shared else {}
    return {
        "solution": solution,
        "shared": shared,
        "samples": samples,
        "samples_json": json.dumps(samples),  # an attribute: htmx drops <script> elements it swaps in
        "try_form": _first_method_form(shared) if shared else None,
        "can_deploy": bool(revision and revision.is_ready and can_deploy(user, revision, seen=True)),
        "deploy_revision": revision,
        "manages": signed_in(user) and can_change_solution(user, solution),
        "manages_shared": bool(shared and can_manage(user, shared)),
    }


def _first_method_form(shared) -> TryForm:
    """The form as the panel opens: the first method, with its sample when the model ships one."""
    methods = served_methods(shared.revision)
    first = methods[0] if methods else ""
    sample = samples_of(shared.revision).get(first)
    body = json.dumps(sample, indent=2) if sample is not None else "{}"
    return TryForm(initial={"method": first, "body": body}, methods=methods)


@require_GET
def try_panel(request, pk):
    solution = get_object_or_404(visible_solutions(request.user), pk=pk)
    context = try_context(request.user, solution)
    template = "marketplace/_model_try.html" if is_htmx(request) else "marketplace/try.html"
    return render(request, template, context)


@require_POST
@login_required
def try_send(request, pk):
    solution = get_object_or_404(visible_solutions(request.user), pk=pk)
    context = try_context(request.user, solution)
    shared = context["shared"]
    if shared is None:
        context["try_error"] = ("No running deployment of this model is shared for trying any more: "
                                "its owner stopped sharing it or stopped it.")
    else:
        form = TryForm(request.POST, methods=served_methods(shared.revision))
        context["try_form"] = form
        if form.is_valid():
            try:
                context["try_answer"] = deployment_services.try_shared(
                    request.user, shared, form.cleaned_data["method"], form.cleaned_data["body"])
            except deployment_services.TryRefused as exc:
                context["try_error"] = str(exc)
    template = "marketplace/_model_try_result.html" if is_htmx(request) else "marketplace/try.html"
    return render(request, template, context)


urlpatterns = [
    path("models/<uuid:pk>/try/", try_panel, name="model-try"),
    path("models/<uuid:pk>/try/send/", try_send, name="model-try-send"),
]
