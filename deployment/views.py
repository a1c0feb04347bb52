"""Deployment pages: deploy from a revision, the list, a deployment's page (status, try it, swap,
roll back, stop, start, destroy, history), the deployment bundle, and targets for admins. Views
parse and check; deployment.services does the work and deployment.selectors decides who may."""

from __future__ import annotations

import json
import shlex

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from acumos_portal.htmx import is_htmx, messages_as_toasts
from deployment import bundle, runner_client, selectors, services
from deployment.forms import DeployForm, RenameForm, RollbackForm, ShareForm, SwapForm, TargetForm, TryForm
from deployment.models import Target
from licensing.policy import LicenceDenied
from licensing.views import denied_page as licence_denied
from marketplace import services as marketplace_services
from marketplace.selectors import visible_revisions

# ---------------------------------------------------------------- deploying


@require_POST
@login_required
def deploy(request, pk):
    revision = get_object_or_404(visible_revisions(request.user), pk=pk)
    if not selectors.can_deploy(request.user, revision, seen=True):
        return _not_deployable(request, revision)
    # A target the user may not use is not among the choices: refused as an unknown one.
    form = DeployForm(request.POST, targets=selectors.targets_for(request.user))
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("marketplace:revision", revision.pk)
    given = dict(form.cleaned_data)
    key = given.pop("request_key") or None
    try:
        deployment, made = services.deploy_once(revision=revision, user=request.user, idempotency_key=key, **given)
    except services.QuotaReached:  # the deploy form says it, with how to free one
        return redirect(reverse("marketplace:revision", args=[revision.pk]) + "#deploy")
    except services.IdempotencyKeyReused as exc:  # Back, changed the form, sent it again
        messages.info(request, f"This form was sent before and made {exc.deployment.display_name}, shown here; your "
                               f"changes were not sent. To deploy with other settings, reload the revision page and "
                               f"use its fresh form.")
        return redirect("deployment:detail", exc.deployment.pk)
    except (services.DeploymentRefused, LicenceDenied) as exc:  # a licence's denial says what to do next
        messages.error(request, exc.message)
        return redirect("marketplace:revision", revision.pk)
    if made:
        messages.success(request, f"Deploying {deployment.display_name} to {deployment.target.name}.")
    else:
        messages.info(request, "This form was already sent: here is the deployment it made (one, not two).")
    return redirect("deployment:detail", deployment.pk)


def _not_deployable(request, revision):
    """The licence's sentence on the revision's page when an agreement is what the user lacks (the page
    offers to request one); else a plain refusal: only others deploy this model."""
    refused = selectors.deploy_refusal(request.user, revision)
    if refused is None:
        return HttpResponseForbidden("only operators, admins, the model's owners and its licensees deploy it")
    messages.error(request, refused.message)
    return redirect("marketplace:revision", revision.pk)


def _form_errors(form) -> str:
    return "; ".join(f"{form.fields[name].label or name if name in form.fields else 'form'}: {' '.join(errors)}"
                     for name, errors in form.errors.items())


@require_GET
@login_required
def deployment_bundle(request, pk):
    revision = get_object_or_404(visible_revisions(request.user), pk=pk)
    try:
        with transaction.atomic():  # no image, no bundle: nothing was downloaded, nothing is counted
            marketplace_services.begin_download(request.user, revision, kind="deployment_bundle")
            content = bundle.deployment_bundle(revision)
    except LicenceDenied as denied:
        return licence_denied(request, denied, revision)
    except bundle.NoImage:  # not an error of the user's: the bundle pins an image, and there is none yet
        messages.info(request, "The deployment bundle appears once an image of this version is built "
                               "(see Runner image below).")
        return redirect(reverse("marketplace:revision", args=[revision.pk]) + "#image")
    response = HttpResponse(content, content_type="application/zip")
    name = f"{slugify(revision.solution.name) or 'model'}-{revision.version}-deployment.zip"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# ---------------------------------------------------------------- reading


@require_GET
@login_required
def deployment_list(request):
    deployments = selectors.visible_deployments(request.user)
    return render(request, "deployment/list.html", {"deployments": deployments})


@require_GET
@login_required
def detail(request, pk):
    deployment = _visible(request, pk)
    return render(request, "deployment/detail.html", _detail_context(request, deployment))


@require_GET
@login_required
def panel(request, pk):
    """The page's live part alone (deployment/_live.html), for htmx: it polls itself while an operation runs;
    the breadcrumb follows the name (a swap changes it) out of band."""
    deployment = _visible(request, pk)
    return render(request, "deployment/_live.html", {**_detail_context(request, deployment), "oob_crumb": True})


def _visible(request, pk):
    return get_object_or_404(selectors.visible_deployments(request.user), pk=pk)


def _detail_context(request, deployment) -> dict:
    samples = selectors.samples_of(deployment.revision)
    method, sample = next(iter(samples.items()), ("", {}))
    return {
        "deployment": deployment, "operations": list(selectors.history(deployment)[:50]),
        "call_example": _call_example(deployment, method, sample),
        "destroy_waits": selectors.destroy_waits(request.user, deployment),
        "ends_grace_early": selectors.in_grace_period(deployment) and selectors.can_end_grace_early(
            request.user, deployment),
        "owners_may_end_grace_early": selectors.in_grace_period(deployment) and selectors.owners_may_end_grace_early(),
        "busy": services.busy(deployment), "can_manage": selectors.can_manage(request.user, deployment),
        "rollback_points": selectors.rollback_points(deployment),
        "swap_form": SwapForm(request.user, initial={"revision": deployment.revision_id}),
        "try_form": TryForm(initial={"method": method, "body": _pretty(sample) if sample else "{}"}),
        # In an attribute, not a json_script: htmx drops <script> elements from what it swaps in.
        "samples": samples, "samples_json": json.dumps(samples), **_settings_context(deployment),
    }


def _settings_context(deployment) -> dict:
    return {"rename_form": RenameForm(initial={"name": deployment.name}), "share_form": ShareForm()}


def _call_example(deployment, method: str, sample: dict) -> str:
    """A call a person can paste: the served model's first method with its own sample (quoted for the
    shell: the sample is the model author's text). None for a deployment that is not live: nothing
    answers there."""
    if not (deployment.is_live and deployment.endpoint_url):
        return ""
    body = shlex.quote(json.dumps(sample)) if method else "'{...}'"
    return (f"curl -X POST {deployment.endpoint_url}/model/methods/{method or '<method>'} "
            f"-H 'Content-Type: application/json' -d {body}")


def _pretty(value) -> str:
    return json.dumps(value, indent=2)


# ---------------------------------------------------------------- changing


def _operate(request, pk, action, success: str):
    deployment = _visible(request, pk)
    if not selectors.can_manage(request.user, deployment):
        return HttpResponseForbidden("only operators, admins and whoever created this deployment change it")
    try:
        said = action(deployment)
    except services.GracePeriodNotOver as exc:  # an explanation with the date, not an error
        messages.info(request, str(exc))
    except (services.DeploymentRefused, LicenceDenied) as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, said if isinstance(said, str) else success)
    if is_htmx(request):  # the page's live part, as it is now, and what happened as a toast: no reload
        deployment = _visible(request, pk)
        live = render(request, "deployment/_live.html", {**_detail_context(request, deployment), "oob_crumb": True})
        return messages_as_toasts(request, live)
    return redirect("deployment:detail", deployment.pk)


@require_POST
@login_required
def swap(request, pk):
    def ask(deployment):
        form = SwapForm(request.user, request.POST)
        if not form.is_valid():
            raise services.DeploymentRefused(_form_errors(form))
        revision = form.cleaned_data["revision"]
        services.swap(deployment, revision, request.user)
        return (f"Swapping in {revision.solution.name} {revision.version}: the runner checks it with its sample "
                f"before it serves.")

    return _operate(request, pk, ask, "")


@require_POST
@login_required
def rollback(request, pk):
    form = RollbackForm(request.POST)
    generation = form.cleaned_data["generation"] if form.is_valid() else None
    return _operate(request, pk, lambda d: services.rollback(d, request.user, generation), "Rolling back.")


@require_POST
@login_required
def stop(request, pk):
    return _operate(request, pk, lambda d: services.stop(d, request.user),
                    "Stopping: it is kept and can be started again during the grace period.")


@require_POST
@login_required
def start(request, pk):
    return _operate(request, pk, lambda d: services.start(d, request.user), "Starting again.")


@require_POST
@login_required
def destroy(request, pk):
    force = request.POST.get("force") == "1"  # "Destroy now": services.destroy asks who may
    return _operate(request, pk, lambda d: services.destroy(d, request.user, force=force), "Destroying.")


@require_POST
@login_required
def rename(request, pk):
    """The user's own name for it. htmx: the settings card answers (and the title, out of band)."""
    deployment = _visible(request, pk)
    if not selectors.can_manage(request.user, deployment):
        return HttpResponseForbidden("only operators, admins and whoever created this deployment change it")
    form = RenameForm(request.POST)
    if form.is_valid():
        services.rename(deployment, form.cleaned_data["name"])
    return _settings_answer(request, deployment, rename_form=form, saved="name" if form.is_valid() else "")


@require_POST
@login_required
def share(request, pk):
    """Shared for Try it, on or off (a toggle button). htmx: the settings card answers."""
    deployment = _visible(request, pk)
    if not selectors.can_share(request.user, deployment):
        return HttpResponseForbidden("only operators, admins and whoever created this deployment share it")
    form = ShareForm(request.POST)
    if form.is_valid():
        services.set_shared(deployment, form.cleaned_data["shared"])
    return _settings_answer(request, deployment, share_form=form, saved="shared" if form.is_valid() else "")


def _settings_answer(request, deployment, *, saved: str, **forms):
    """The settings card again for htmx (what was saved, or the form with its errors); a normal form
    goes back to the page with a message."""
    said = _saved_sentence(deployment, saved)
    if is_htmx(request):
        context = {"deployment": deployment, "can_manage": True, **_settings_context(deployment), **forms}
        return render(request, "deployment/_settings.html", {**context, "saved": said, "oob_title": True})
    form = next(iter(forms.values()))
    if form.errors:
        messages.error(request, _form_errors(form))
    else:
        messages.success(request, said)
    return redirect("deployment:detail", deployment.pk)


def _saved_sentence(deployment, saved: str) -> str:
    if saved == "name":
        return f"Saved: it is now “{deployment.display_name}”."
    if saved == "shared":
        return ("Shared for Try it: signed-in users who can see the version it serves can try it on the model page."
                if deployment.shared else "Not shared any more: the model page's Try it does not call it.")
    return ""


@require_POST
@login_required
def check(request, pk):
    return _operate(request, pk, services.check_deployment, "Checked.")


@require_POST
@login_required
def try_it(request, pk):
    """Send a request to the deployed model, from the page: the portal calls the endpoint as any
    client would and shows the answer (or the runner's error)."""
    deployment = _visible(request, pk)
    form = TryForm(request.POST, methods=selectors.served_methods(deployment.revision))
    context = {"try_form": form}
    if not deployment.endpoint_url:
        context["try_error"] = "the deployment has no endpoint; it is not running"
    elif form.is_valid():
        try:
            context["try_answer"] = _pretty(runner_client.call_method(
                deployment.endpoint_url, form.cleaned_data["method"], form.cleaned_data["body"]))
        except runner_client.RunnerError as exc:
            context["try_error"] = str(exc)
    if is_htmx(request):  # htmx replaces the answer box only
        return render(request, "deployment/_try.html", context)
    return render(request, "deployment/detail.html", {**_detail_context(request, deployment), **context})


# ---------------------------------------------------------------- targets (admins)


def _admin_only(request):
    if not selectors.can_configure_targets(request.user):
        raise Http404("no such page")


@require_GET
@login_required
def target_list(request):
    _admin_only(request)
    return render(request, "deployment/targets.html", {"targets": Target.objects.all()})


@require_http_methods(["GET", "POST"])
@login_required
def target_edit(request, pk=None):
    _admin_only(request)
    target = get_object_or_404(Target, pk=pk) if pk else None
    form = TargetForm(request.POST or None, instance=target)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Target {saved.name} saved.")
        return redirect("deployment:targets")
    return render(request, "deployment/target_form.html", {"form": form, "target": target})
