"""The monitoring part of a deployment's page: the panel (charts of its figures, its alerts), and below it its
alert rules and its retraining hook (templates/monitoring/_settings.html).

Whoever may see the deployment sees both (deployment.selectors.visible_deployments: 404 for anyone else). Who
may change a rule is deployment.selectors.can_manage; a hook, monitoring.hooks.can_change_hook and
can_deliver_now (the button): those functions decide, the templates only show what they allowed. A hook's URL
and deliveries are shown only to whoever may change it: the URL is where its owner's retraining runs, often an
unlisted address, and a delivery's answer may say more.

The rules and the hook are a section of their own, loaded once by htmx (the panel above refreshes itself every
minute: it would throw away a form half filled in, and a secret shown once). Each form is sent by htmx and
answered with its section again (with the field errors beside the fields); without JavaScript, a plain form
that goes back to the monitoring page, or shows it with the errors (400). A hook's new secret is shown in the
answer to the request that made it and never again (it is not kept anywhere to be shown after a redirect).

The rollout section (templates/monitoring/_rollout.html) is loaded with them: how new versions of the followed
model arrive, the running rollout's live model and candidate side by side, the last ended ones; Promote now,
Abort and the settings form for whoever may manage the deployment (can_manage), calling deployment.services."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from acumos_portal.choices import UNFINISHED, JobStatus
from acumos_portal.htmx import add_trigger, is_htmx
from deployment import services as deployments
from deployment.choices import RolloutState
from deployment.selectors import can_manage, rollouts_of, visible_deployments
from monitoring import alerts, hooks, selectors
from monitoring.choices import RuleKind
from monitoring.forms import HookForm, RolloutForm, RuleForm, describe, describe_gates, describe_rollout
from monitoring.models import HookDelivery

RECENT_DELIVERIES = 5
# The deliveries' list asks for itself again while one is being sent or is due this soon: a person who pressed
# the button sees the answer come in; a retry minutes away is not waited for with a request every few seconds.
WATCH_DUE_WITHIN = timedelta(seconds=60)
CHANGED = "monitoring-changed"  # the event a change fires on the page: the charts redraw the rules' bounds


def _visible(request, pk):
    return get_object_or_404(visible_deployments(request.user), pk=pk)


@require_GET
@login_required
def panel(request, pk):
    """The panel alone for htmx (the deployment page loads it, then it refreshes itself every minute); a
    page of its own otherwise (a browser without JavaScript follows the page's link here), with the rules
    and the hook."""
    deployment = _visible(request, pk)
    if is_htmx(request):
        return render(request, "monitoring/_panel.html", selectors.panel(deployment))
    return _page(request, deployment)


@require_GET
@login_required
def settings_section(request, pk):
    """The rules and the hook, for htmx (the deployment page loads them once); the monitoring page otherwise."""
    deployment = _visible(request, pk)
    if not is_htmx(request):
        return redirect(_page_url(deployment, "monitoring-rules"))
    return render(request, "monitoring/_settings.html", {**_rules(request, deployment), **_hook(request, deployment),
                                                         **_rollout(request, deployment)})


@require_GET
@login_required
def deliveries(request, pk):
    """The hook's recent deliveries alone (htmx asks for them while one is under way)."""
    deployment = _visible(request, pk)
    if not hooks.can_change_hook(request.user, deployment):
        raise Http404("no such page")
    return render(request, "monitoring/_deliveries.html", _deliveries(deployment))


def _page(request, deployment, *, status: int = 200, **sections):
    context = {**selectors.panel(deployment), **_rules(request, deployment, **sections.get("rules", {})),
               **_hook(request, deployment, **sections.get("hook", {})),
               **_rollout(request, deployment, **sections.get("rollout", {}))}
    return render(request, "monitoring/page.html", context, status=status)


def _page_url(deployment, anchor: str) -> str:
    return f"{reverse('monitoring:panel', args=[deployment.pk])}#{anchor}"


# ---------------------------------------------------------------- alert rules

def _rules(request, deployment, *, bound: RuleForm | None = None, saved: str = "") -> dict:
    manages = can_manage(request.user, deployment)
    items = []
    for rule in alerts.effective_rules(deployment):
        form = None
        if manages:
            form = bound if bound is not None and bound.kind == rule.kind else RuleForm(rule.kind, rule=rule)
        items.append({"rule": rule, "said": describe(rule), "default": alerts.is_default(rule), "form": form,
                      "open": form is not None and form.is_bound and bool(form.errors),
                      "saved": saved if bound is not None and bound.kind == rule.kind else ""})
    return {"deployment": deployment, "rules": items, "can_manage_rules": manages}


@require_POST
@login_required
def rule(request, pk, kind):
    """Save one rule (or, with action=reset, put it back to the default)."""
    deployment = _visible(request, pk)
    if kind not in RuleKind.values:
        raise Http404("no such rule")
    if not can_manage(request.user, deployment):
        return HttpResponseForbidden("only whoever created this deployment, an operator or an admin changes its rules")
    form = RuleForm(kind, request.POST)
    if request.POST.get("action") == "reset":
        alerts.reset_rule(deployment, kind, user=request.user)
        saved = f"{RuleKind(kind).label}: back to the default."
        form = RuleForm(kind, rule=_rule_of(deployment, kind))
    elif form.is_valid():
        saved = _set_rule(request, deployment, form)
    else:
        saved = ""
    return _rules_answer(request, deployment, form, saved)


def _set_rule(request, deployment, form: RuleForm) -> str:
    """Saved: a word (the rule's sentence above it says what it is now); refused: "" with set_rule's message
    beside its field."""
    values = form.cleaned_data
    try:
        saved = alerts.set_rule(deployment, form.kind, threshold=values["threshold"], windows=values["windows"],
                                enabled=values["enabled"], user=request.user)
    except alerts.RuleRefused as refused:
        form.add_error(refused.field if refused.field in form.fields else None, refused.message)
        return ""
    return "Saved." if saved.enabled else "Saved: it is off now."


def _rule_of(deployment, kind: str):
    return next(rule for rule in alerts.effective_rules(deployment) if rule.kind == kind)


def _rules_answer(request, deployment, form: RuleForm, saved: str):
    if is_htmx(request):
        context = _rules(request, deployment, bound=form, saved=saved)
        response = render(request, "monitoring/_rules.html", context)
        return add_trigger(response, CHANGED) if saved else response
    if saved:
        messages.success(request, saved)
        return redirect(_page_url(deployment, f"rule-{form.kind}"))
    return _page(request, deployment, status=400, rules={"bound": form})


# ---------------------------------------------------------------- the retraining hook

def _hook(request, deployment, *, form: HookForm | None = None, secret: str = "", said: str = "",
          problem: str = "") -> dict:
    """What the hook section shows the user: its URL, form and deliveries only if they may change it."""
    effective = hooks.effective_hook(deployment)
    own = effective if effective is not None and effective.deployment_id == deployment.pk else None
    manages = hooks.can_change_hook(request.user, deployment)
    context = {"deployment": deployment, "hook": effective, "own_hook": own,
               "model_hook": effective if effective is not None and own is None else None,
               "hook_kinds": [RuleKind(kind).label for kind in effective.on_alert] if effective is not None else [],
               "can_change_hook": manages, "can_call_hook": hooks.can_deliver_now(request.user, deployment),
               "secret": secret, "hook_said": said, "hook_problem": problem}
    if manages:
        context["hook_form"] = form or HookForm(hook=own)
        context.update(_deliveries(deployment))
    return context


def _deliveries(deployment) -> dict:
    recent = list(HookDelivery.objects.filter(deployment=deployment).order_by("-created")[:RECENT_DELIVERIES])
    for delivery in recent:
        delivery.kind_label = RuleKind(delivery.kind).label if delivery.kind in RuleKind.values else "Button"
    soon = timezone.now() + WATCH_DUE_WITHIN
    watch = any(d.status == JobStatus.RUNNING or (d.status in UNFINISHED and (d.next_attempt_at or soon) <= soon)
                for d in recent)
    return {"deployment": deployment, "deliveries": recent, "watch_deliveries": watch}


@require_POST
@login_required
def hook(request, pk):
    """This deployment's own hook: save (make or change), rotate its secret, or remove it (`action`)."""
    deployment = _visible(request, pk)
    if not hooks.can_change_hook(request.user, deployment):
        return HttpResponseForbidden("only whoever created this deployment, an operator or an admin changes its hook")
    action = request.POST.get("action", "save")
    form, secret, said = None, "", ""
    try:
        if action == "remove":
            hooks.remove_hook(deployment, user=request.user)
            said = "This deployment's hook is removed; events not sent yet will not be."
        elif action == "rotate":
            _, secret = hooks.rotate_secret(deployment, user=request.user)
            said = "A new secret: events are signed with it from now on, and the old one stops working."
        else:
            form, secret, said = _save_hook(request, deployment)
    except hooks.HookRefused as refused:
        return _hook_answer(request, deployment, problem=refused.message, status=400)
    return _hook_answer(request, deployment, form=form, secret=secret, said=said,
                        status=400 if form is not None and form.errors else 200)


def _save_hook(request, deployment) -> tuple[HookForm, str, str]:
    form = HookForm(request.POST)
    if not form.is_valid():
        return form, "", ""
    values = form.cleaned_data
    try:
        _, secret = hooks.set_hook(deployment, url=values["url"], enabled=values["enabled"],
                                   on_alert=values["on_alert"], user=request.user)
    except hooks.HookRefused as refused:
        form.add_error(refused.field if refused.field in form.fields else None, refused.message)
        return form, "", ""
    said = "The hook is set." if secret else "The hook is changed; its secret stays the same."
    return None, secret, said


@require_POST
@login_required
def call_hook(request, pk):
    """The button: a "manual" event to the deployment's hook, now (monitoring.hooks.deliver_now)."""
    deployment = _visible(request, pk)
    if not hooks.can_deliver_now(request.user, deployment):
        return HttpResponseForbidden("only whoever created this deployment, an operator or an admin calls its hook")
    try:
        delivery = hooks.deliver_now(deployment, request.user)
    except hooks.HookRefused as refused:
        return _hook_answer(request, deployment, problem=refused.message, status=400)
    return _hook_answer(request, deployment, said=f"Called: event {delivery.pk} is on its way; its delivery is listed "
                                                  "below with the receiver's answer.")


def _hook_answer(request, deployment, *, status: int = 200, **shown):
    """htmx: the section again (200 whatever happened: htmx swaps only a 2xx answer in). Otherwise: the page
    with the section, when there is something to show only now (a secret, errors); else back to the page."""
    if is_htmx(request):
        return render(request, "monitoring/_hook.html", _hook(request, deployment, **shown))
    if status != 200 or shown.get("secret"):
        return _page(request, deployment, status=status, hook=shown)
    messages.success(request, shown.get("said") or "Saved.")
    return redirect(_page_url(deployment, "monitoring-hook"))


# ---------------------------------------------------------------- guarded rollouts

RECENT_ROLLOUTS = 5
# A rollout's state as a badge (includes/badge.html has no colour of its own for these words).
ROLLOUT_BADGES = {RolloutState.RUNNING: "running", RolloutState.PROMOTED: "succeeded",
                  RolloutState.ROLLED_BACK: "failed", RolloutState.ABORTED: "skipped", RolloutState.FAILED: "failed"}


def _rollout(request, deployment, *, form: RolloutForm | None = None, said: str = "", problem: str = "") -> dict:
    """The rollout section: how new revisions arrive, the running rollout's variants side by side, the last
    ended ones; the form and the buttons only for whoever may manage the deployment."""
    manages = can_manage(request.user, deployment)
    recent = list(rollouts_of(deployment)[:RECENT_ROLLOUTS + 1])  # one runs at a time: the rest ended
    running = next((r for r in recent if r.state == RolloutState.RUNNING), None)
    ended = [r for r in recent if r.state != RolloutState.RUNNING][:RECENT_ROLLOUTS]
    for item in ended:
        item.badge = ROLLOUT_BADGES.get(item.state, "pending")
    context = {"deployment": deployment, "rollout_said": describe_rollout(deployment),
               # A running rollout keeps the gates it began with: those are the ones judging it.
               "rollout_gates": (describe_gates(running.gates, running.mode) if running
                                 else describe_gates(deployment.gates, deployment.rollout_mode)),
               "running_rollout": running, "variants": _variants(deployment, running) if running else [],
               "ended_rollouts": ended, "can_manage_rollouts": manages,
               "rollout_saved": said, "rollout_problem": problem}
    if manages:
        context["rollout_form"] = form or RolloutForm(deployment=deployment)
    return context


def _variants(deployment, rollout) -> list[dict]:
    """The live model and the candidate since the running step began: requests and errors summed, the
    candidate's p99 and agreement as its gates judge them (monitoring.selectors.rollout_figures), and each one's
    latest p50/p99 (quantiles do not add up: a sample holds the runner's own since the candidate was set)."""
    if rollout.step_started_at is None:
        return []
    figures = selectors.rollout_figures(rollout)
    live_revision = rollout.previous_revision or deployment.revision
    return [
        {"role": "Live", "revision": live_revision, "requests": figures.live_requests,
         "error_rate": _pct(figures.live_error_rate) if figures.live_requests else "",
         "p50_ms": figures.live_p50_ms, "p99_ms": figures.live_p99_ms, "agreement": "",
         "accuracy": _accuracy(figures.live_quality)},
        {"role": "Candidate", "revision": rollout.revision, "requests": figures.requests,
         "error_rate": _pct(figures.error_rate) if figures.requests else "",
         "p50_ms": figures.p50_ms, "p99_ms": figures.p99_ms,
         "agreement": _pct(figures.agreement) if figures.agreement is not None else "",
         "accuracy": _accuracy(figures.quality)},
    ]


def _accuracy(found: tuple[str, float, int] | None) -> str:
    """The worst accuracy from feedback, with how many answers it is over ("" when there is none)."""
    if found is None:
        return ""
    return f"{_pct(found[1])} ({found[2]} answer{'s' if found[2] != 1 else ''})"


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f} %"


@require_POST
@login_required
def rollout_settings(request, pk):
    """How new revisions of the followed model reach the deployment: mode, a canary's steps, the gates."""
    deployment = _visible(request, pk)
    if not can_manage(request.user, deployment):
        return HttpResponseForbidden("only whoever created this deployment, an operator or an admin changes this")
    form = RolloutForm(request.POST)
    said = ""
    if form.is_valid():
        values = form.cleaned_data
        try:
            deployments.set_rollout_settings(deployment, mode=values["mode"], steps=values["steps"],
                                             gates=form.gates())
            said = "Saved: the next new version rolls out this way (a running rollout keeps what it began with)."
        except deployments.DeploymentRefused as refused:
            name = (refused.field or "").removeprefix("gates.")
            form.add_error(name if name in form.fields else None, refused.message)
    if said:
        return _rollout_answer(request, deployment, said=said)
    return _rollout_answer(request, deployment, status=400, form=form)


@require_POST
@login_required
def rollout_decide(request, pk, rollout_id, action):
    """Promote now or abort the running rollout, by hand (deployment.services: an operation on its runners)."""
    deployment = _visible(request, pk)
    rollout = get_object_or_404(rollouts_of(deployment), pk=rollout_id)
    if not can_manage(request.user, deployment):
        return HttpResponseForbidden("only whoever created this deployment, an operator or an admin decides this")
    try:
        if action == "promote":
            deployments.promote_rollout(rollout, request.user)
            said = "Promoting: the candidate becomes the live model on every replica (see the history)."
        else:
            deployments.abort_rollout(rollout, request.user)
            said = "Aborted: the candidate is being dropped; the live model never stopped answering."
    except deployments.DeploymentRefused as refused:
        return _rollout_answer(request, deployment, status=409, problem=refused.message)
    return _rollout_answer(request, deployment, said=said)


def _rollout_answer(request, deployment, *, status: int = 200, **shown):
    """htmx: the section again (200: htmx swaps only a 2xx answer in). Otherwise: back to the page, or the page
    with the section when there is something to show (errors, a refusal)."""
    if is_htmx(request):
        return render(request, "monitoring/_rollout.html", _rollout(request, deployment, **shown))
    if status != 200:
        return _page(request, deployment, status=status, rollout=shown)
    messages.success(request, shown.get("said") or "Saved.")
    return redirect(_page_url(deployment, "monitoring-rollout"))
