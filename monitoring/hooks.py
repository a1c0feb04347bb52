"""Retraining hooks: an owner's webhook, called with a signed event when a deployment's rule fires (or on the
button), carrying what drifted and a short-lived token that may only push a new revision of its model.

Where a hook is set: on a solution (it serves every deployment of the solution that the person who set it
may manage) or on one deployment (that deployment then uses its own, even when turned off: its manager said
so). Who may set, rotate or remove one: whoever may change the solution, or manage the deployment; who may
press the button: whoever may manage the deployment (`can_change_hook`, `can_deliver_now`: the one place).

The event (JSON, canonical bytes: acumos_portal.canonical) is POSTed with three headers:
- `X-Acumos-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the hook's secret>`. The
  timestamp is inside what is signed, so a receiver that refuses a `t` older than a few minutes cannot be
  replayed an old event by whoever recorded it (Stripe's scheme); `v1=` names the scheme, so another can be
  added beside it without breaking receivers. Each attempt is signed anew (its own `t`); the body and the
  event id stay the same, so a receiver drops a repeat by `id`.
- `X-Acumos-Event` (drift, quality, error_rate, p99 or manual) and `X-Acumos-Delivery` (the event's id).

Each event is a job row (HookDelivery; acumos_portal.jobs: claimed, heartbeated, reaped): an attempt that
is not answered 2xx is tried again after 30 s, 2 min, 8 min, ... (ACUMOS_HOOK_BACKOFF_SECONDS, times 4 each
time) up to ACUMOS_HOOK_MAX_ATTEMPTS attempts, each attempt's outcome recorded. The URL is checked when it
is saved and before every attempt (acumos_portal.outbound: public addresses only unless an admin allows
private ones; the connection goes to the address checked).

The onboarding token: an API token of the solution's owner (their push makes the revision theirs), scoped
to the solution (accounts: only the onboarding push and job endpoints take it, and only for that solution's
name), living ACUMOS_HOOK_TOKEN_HOURS, named "retraining hook: <model>" in the owner's token list. It is made
only while the person who set the hook may change the solution. A hook's next event revokes the previous
event's token; a delivery that gives up revokes its own. The token is kept encrypted on the delivery until
it ends (attempts resend it), never in the stored event.

Recent inputs: the runner keeps no inputs to export (drift statistics are histograms per window, readable
with the deployment's admin token, which the portal does not hand out; its answer log holds outputs), so
the event says `"recent_inputs": null` and why."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from acumos_portal import jobs, outbound
from acumos_portal.accounts import services as account_services
from acumos_portal.accounts.models import ApiToken, SiteSettings
from acumos_portal.api.refusals import Refused
from acumos_portal.canonical import canonical
from acumos_portal.choices import JobStatus
from deployment import secretbox
from deployment import selectors as deployment_selectors
from deployment.models import Deployment
from marketplace import selectors as marketplace_selectors
from marketplace import services as marketplace_services
from marketplace.choices import NotificationKind
from marketplace.models import Solution
from monitoring.choices import RuleKind
from monitoring.models import Alert, Hook, HookDelivery

log = logging.getLogger(__name__)

DELIVERY_TASK = "monitoring.deliver_hook"
MANUAL = "manual"
SECRET_PREFIX = "whsec_"
BACKOFF_FACTOR = 4  # 30 s, 2 min, 8 min, 32 min, ...
BODY_KEPT = 4000  # characters of an answer kept on the delivery
REDACTED = "(sent with the event; not kept)"
RECENT_INPUTS_REASON = (
    "the runner keeps no inputs to export: its drift statistics are per-field histograms per time window "
    "(read with the deployment's admin token, which the portal does not hand out) and its answer log holds "
    "outputs for feedback, not inputs; collect training data on your side (e.g. from your application's logs)")


class HookRefused(Refused):
    """A hook setting or a button press that cannot be: the message says why (and `field` where)."""


class HookNotAllowed(HookRefused):
    status = 403
    code = "permission_denied"


class NoHook(HookRefused):
    status = 404
    code = "not_found"


# ---------------------------------------------------------------- who may

def can_change_hook(user, subject: Solution | Deployment) -> bool:
    """Set, rotate, remove and read a hook (its URL and deliveries say where its owner's retraining runs):
    whoever may change the solution (owner, co-owner, admin), or manage the deployment (its creator,
    operators, admins)."""
    if isinstance(subject, Deployment):
        return deployment_selectors.can_manage(user, subject)
    return marketplace_selectors.can_change_solution(user, subject)


def can_deliver_now(user, deployment: Deployment) -> bool:
    """The button: whoever may manage the deployment (the event describes that deployment)."""
    return deployment_selectors.can_manage(user, deployment)


def _require(allowed: bool, subject) -> None:
    if not allowed:
        who = ("whoever created this deployment, an operator or an admin" if isinstance(subject, Deployment)
               else "this model's owners or an admin")
        raise HookNotAllowed(f"only {who} may change its retraining hook")


# ---------------------------------------------------------------- setting a hook

def hook_of(subject: Solution | Deployment) -> Hook | None:
    return Hook.objects.filter(**_about(subject)).select_related("created_by").first()


def _about(subject) -> dict:
    return {"deployment": subject} if isinstance(subject, Deployment) else {"solution": subject}


def private_allowed() -> bool:
    """The site's choice (Manage → Site settings); off until an admin turns it on."""
    return bool(SiteSettings.objects.filter(pk=1).values_list("hooks_may_reach_private", flat=True).first())


@transaction.atomic
def set_hook(subject: Solution | Deployment, *, url, user, enabled=True, on_alert=None) -> tuple[Hook, str]:
    """Make or change the subject's hook; answers it and its secret when it is new ("" when only changed:
    the secret stays until rotate_secret). Whoever sets it is its `created_by`: the onboarding token is made
    while they may change the solution."""
    _require(can_change_hook(user, subject), subject)
    if isinstance(subject, Solution) and marketplace_selectors.is_imported(subject):
        raise HookRefused(f"{subject.name} was imported from {subject.imported_from}: its revisions come from "
                          "there, so a retraining hook has nothing to push here")
    values = {"url": _clean_url(url), "enabled": _clean_enabled(enabled), "on_alert": _clean_kinds(on_alert),
              "created_by": user}
    hook = Hook.objects.select_for_update().filter(**_about(subject)).first()
    if hook is not None:
        for name, value in values.items():
            setattr(hook, name, value)
        hook.save()
        return hook, ""
    secret = _new_secret()
    hook = Hook.objects.create(**_about(subject), secret_encrypted=secretbox.encrypt(secret), **values)
    return hook, secret


@transaction.atomic
def rotate_secret(subject: Solution | Deployment, *, user) -> tuple[Hook, str]:
    """A new secret, answered this once; events from now on are signed with it (the old one stops at once:
    update the receiver with the new one before the next event)."""
    _require(can_change_hook(user, subject), subject)
    hook = Hook.objects.select_for_update().filter(**_about(subject)).first()
    if hook is None:
        raise NoHook("there is no retraining hook here to rotate")
    secret = _new_secret()
    hook.secret_encrypted = secretbox.encrypt(secret)
    hook.save(update_fields=["secret_encrypted", "modified"])
    return hook, secret


@transaction.atomic
def remove_hook(subject: Solution | Deployment, *, user) -> None:
    """Deletes the hook with its deliveries (those not sent yet are not sent); their tokens are revoked."""
    _require(can_change_hook(user, subject), subject)
    hook = Hook.objects.select_for_update().filter(**_about(subject)).first()
    if hook is None:
        raise NoHook("there is no retraining hook here to remove")
    _revoke(ApiToken.objects.filter(pk__in=hook.deliveries.exclude(token=None).values("token")))
    hook.delete()


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _clean_url(url) -> str:
    max_length = Hook._meta.get_field("url").max_length
    if not isinstance(url, str) or len(url) > max_length:
        raise HookRefused(f"the URL must be text of at most {max_length} characters", "url")
    try:
        return outbound.check_url(url.strip(), allow_private=private_allowed())
    except outbound.UnsafeUrl as exc:
        raise HookRefused(str(exc), "url") from None


def _clean_enabled(value) -> bool:
    if not isinstance(value, bool):
        raise HookRefused("enabled must be true or false", "enabled")
    return value


def _clean_kinds(kinds) -> list[str]:
    if kinds is None:
        return [RuleKind.DRIFT.value, RuleKind.QUALITY.value]
    if not isinstance(kinds, list) or not all(isinstance(kind, str) for kind in kinds):
        raise HookRefused(f"on_alert must be a list of rule kinds ({', '.join(RuleKind.values)})", "on_alert")
    unknown = [kind for kind in kinds if kind not in RuleKind.values]
    if unknown:
        raise HookRefused(f"{', '.join(unknown)}: not a kind of alert rule; the kinds are "
                          f"{', '.join(RuleKind.values)}", "on_alert")
    return [kind for kind in RuleKind.values if kind in kinds]  # RuleKind's order, each once


# ---------------------------------------------------------------- which hook an event goes to

def effective_hook(deployment: Deployment) -> Hook | None:
    """The deployment's own hook, else its solution's if whoever set that may manage this deployment (the
    event describes the deployment's inputs: it goes only where its manager would see them)."""
    own = Hook.objects.filter(deployment=deployment).select_related("created_by").first()
    if own is not None:
        return own
    shared = (Hook.objects.filter(solution_id=deployment.revision.solution_id).select_related("created_by")
              .first())
    if shared is not None and shared.created_by is not None and deployment_selectors.can_manage(
            shared.created_by, deployment):
        return shared
    return None


def on_alert_fired(sender, alert: Alert, **kwargs) -> None:
    """monitoring.signals.alert_fired: a hook's trouble must never stop the collection round that fired it."""
    try:
        deliver_for_alert(alert)
    except Exception:
        log.exception("the retraining hook of deployment %s could not be started for alert %s",
                      alert.deployment_id, alert.pk)


def deliver_for_alert(alert: Alert) -> HookDelivery | None:
    """The deployment's hook gets the alert if it is on and listens to the rule's kind; None otherwise."""
    deployment = _deployment(alert.deployment_id)
    hook = effective_hook(deployment)
    kind = alert.rule.kind
    if hook is None or not hook.enabled or kind not in hook.on_alert:
        return None
    return _start(hook, deployment, kind=kind, alert=alert, user=None)


def deliver_now(deployment: Deployment, user) -> HookDelivery:
    """The button: a "manual" event for the deployment, now, to its hook."""
    if not can_deliver_now(user, deployment):
        raise HookNotAllowed("only whoever created this deployment, an operator or an admin may call its hook")
    hook = effective_hook(deployment)
    if hook is None:
        raise NoHook("this deployment has no retraining hook (set one on it, or on its model)")
    if not hook.enabled:
        raise HookRefused("its retraining hook is turned off; turn it on to call it", "enabled")
    return _start(hook, _deployment(deployment.pk), kind=MANUAL, alert=None, user=user)


def _deployment(pk) -> Deployment:
    return Deployment.objects.select_related("revision__solution__owner", "target").get(pk=pk)


@transaction.atomic
def _start(hook: Hook, deployment: Deployment, *, kind: str, alert: Alert | None, user) -> HookDelivery:
    """The event, its token, its row; the hook's earlier events are superseded (a newer one says more about
    the deployment) and their tokens revoked. The hook's row is locked: two events at once take turns."""
    hook = Hook.objects.select_for_update(of=("self",)).select_related("created_by").get(pk=hook.pk)
    now = timezone.now()
    delivery = HookDelivery(hook=hook, deployment=deployment, alert=alert, kind=kind, requested_by=user,
                            next_attempt_at=now)
    token, key, refusal = _onboarding_token(hook, deployment, now)
    delivery.event = _event(delivery, token, refusal, now)
    delivery.token, delivery.token_encrypted = token, secretbox.encrypt(key)
    _supersede(hook, by=delivery)
    delivery.save()
    jobs.enqueue(DELIVERY_TASK, str(delivery.pk))
    return delivery


def _supersede(hook: Hook, *, by: HookDelivery) -> None:
    earlier = HookDelivery.objects.filter(hook=hook)
    _revoke(ApiToken.objects.filter(pk__in=earlier.exclude(token=None).values("token")))
    jobs.finish(earlier.filter(status=JobStatus.PENDING), JobStatus.FAILED, token_encrypted="",
                error=f"superseded by the newer event {by.pk} before it was sent")


def _revoke(tokens) -> None:
    tokens.filter(revoked__isnull=True).update(revoked=timezone.now())


def _onboarding_token(hook: Hook, deployment: Deployment, now) -> tuple[ApiToken | None, str, str]:
    """The token, its key, and "" — or no token and why not."""
    solution = deployment.revision.solution
    setter = hook.created_by
    if marketplace_selectors.is_imported(solution):
        return None, "", f"{solution.name} was imported from {solution.imported_from}: its revisions come from there"
    if solution.is_deleted:
        return None, "", f"{solution.name} is deleted"
    if setter is None or not marketplace_selectors.can_change_solution(setter, solution):
        who = setter.username if setter is not None else "nobody"
        return None, "", (f"the hook was set by {who}, who may not change {solution.name}: ask its owner to set "
                          "the hook on the model for a token")
    token, key = account_services.token_create(
        user=solution.owner, name=f"retraining hook: {solution.name}"[:100], solution_id=solution.pk,
        expires=now + timedelta(hours=settings.ACUMOS_HOOK_TOKEN_HOURS))
    return token, key, ""


def _event(delivery: HookDelivery, token: ApiToken | None, refusal: str, now) -> dict:
    """What the receiver gets (the token's key is added when it is sent: see _body)."""
    deployment, alert = delivery.deployment, delivery.alert
    portal = settings.ACUMOS_HOOK_PORTAL_URL.rstrip("/")
    revision, solution = deployment.revision, deployment.revision.solution
    return {
        "id": str(delivery.id),
        "type": delivery.kind,
        "created": now.isoformat(),
        "portal": portal,
        "deployment": {"id": str(deployment.pk), "name": deployment.display_name, "endpoint": deployment.endpoint_url,
                       "page": f"{portal}/deployments/{deployment.pk}/"},
        "solution": {"id": str(solution.pk), "name": solution.name},
        "revision": {"id": str(revision.pk), "version": revision.version},
        "alert": None if alert is None else {
            "id": alert.pk, "kind": alert.rule.kind, "summary": alert.summary, "fired_at": alert.fired_at.isoformat(),
            "evidence": alert.evidence},
        "recent_inputs": None,
        "recent_inputs_reason": RECENT_INPUTS_REASON,
        "onboarding": _onboarding(token, solution, portal) if token else {"token": None, "reason": refusal},
    }


def _onboarding(token: ApiToken, solution: Solution, portal: str) -> dict:
    return {"token": REDACTED, "expires": token.expires.isoformat(), "solution_id": str(solution.pk),
            "name": solution.name,
            "push_url": f"{portal}/onboarding-app/v2/models",
            "jobs_url": f"{portal}/api/v1/onboarding/jobs/{{taskId}}",
            "how": f"POST the bundle as acumos-python-client does, with `Authorization: Bearer <token>`; its "
                   f"metadata's name must be {solution.name!r} (the token refuses any other model)"}


# ---------------------------------------------------------------- sending: the task body

def run_delivery(delivery_id: str) -> None:
    """Claim the delivery if it is due (a duplicate or early send does nothing), POST it, record the answer,
    and schedule the next attempt or end it (acumos_portal.jobs' shape)."""
    rows = HookDelivery.objects.filter(pk=delivery_id, next_attempt_at__lte=timezone.now())
    if not jobs.claim(rows):
        return
    delivery = HookDelivery.objects.select_related("hook__created_by", "deployment").get(pk=delivery_id)
    jobs.run_claimed(delivery, _attempt, fail=_failed, permanent=(outbound.UnsafeUrl, HookRefused),
                     what=f"hook delivery {delivery_id}", where=" while sending the event")


def _attempt(delivery: HookDelivery) -> None:
    if not delivery.hook.enabled:
        raise HookRefused("the hook was turned off before this event was sent")
    body = _body(delivery)
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", "User-Agent": "Acumos-Portal-Hooks/1",
               "X-Acumos-Event": delivery.kind, "X-Acumos-Delivery": str(delivery.pk),
               "X-Acumos-Signature": signature(secretbox.decrypt(delivery.hook.secret_encrypted), timestamp, body)}
    started = time.monotonic()
    try:
        answer = outbound.post(delivery.hook.url, body, headers, allow_private=private_allowed(),
                               timeout=settings.ACUMOS_HOOK_TIMEOUT)
    except outbound.NETWORK_ERRORS as exc:
        _record(delivery, {"error": _network_error(exc)}, started, answer=None)
        return
    outcome = {"status": answer.status}
    if 300 <= answer.status < 400:
        outcome["error"] = f"answered a redirect (to {answer.location or 'nowhere'}), which is not followed"
    elif not 200 <= answer.status < 300:
        outcome["error"] = f"answered HTTP {answer.status}"
    _record(delivery, outcome, started, answer=answer)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">` (see the module's docstring)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _body(delivery: HookDelivery) -> bytes:
    event = delivery.event
    key = secretbox.decrypt(delivery.token_encrypted)
    if key and isinstance(event.get("onboarding"), dict):
        event = {**event, "onboarding": {**event["onboarding"], "token": key}}
    return canonical(event)


def _network_error(exc: Exception) -> str:
    text = str(exc)
    return f"could not be reached: {type(exc).__name__}: {text[:300]}"


def _answer_text(answer) -> str:
    """The answer as text, capped; an answer that is not text is described, not kept."""
    if answer is None:
        return ""
    if b"\x00" in answer.body:
        return f"(a binary answer of {len(answer.body)} bytes; not kept)"
    text = answer.body.decode("utf-8", errors="replace")
    cut = answer.truncated or len(text) > BODY_KEPT
    return text[:BODY_KEPT] + (" …(cut)" if cut else "")


def _record(delivery: HookDelivery, outcome: dict, started: float, *, answer) -> None:
    """One attempt's outcome: the delivery succeeds, waits for its next attempt, or gives up."""
    now = timezone.now()
    result = {"attempt": delivery.attempts, "at": now.isoformat(), "ms": round((time.monotonic() - started) * 1000),
              **outcome}
    fields = {"results": [*delivery.results, result], "log": delivery.log + _line(result),
              "response_status": answer.status if answer is not None else None,
              "response_body": _answer_text(answer)}
    if "error" not in outcome:
        _end(delivery, JobStatus.SUCCEEDED, error="", **fields)  # an earlier attempt's error is in `results`
    else:
        _try_again_or_give_up(delivery, outcome["error"], **fields)


def _line(result: dict) -> str:
    said = result.get("error") or f"answered HTTP {result['status']}"
    return f"attempt {result['attempt']} at {result['at']}: {said} ({result['ms']} ms)\n"


def backoff(attempts: int) -> float:
    """Seconds before the attempt after `attempts` attempts: 30, 120, 480, ... by default."""
    return settings.ACUMOS_HOOK_BACKOFF_SECONDS * BACKOFF_FACTOR ** max(0, attempts - 1)


def _try_again_or_give_up(delivery: HookDelivery, error: str, **fields) -> None:
    if delivery.attempts >= settings.ACUMOS_HOOK_MAX_ATTEMPTS:
        _end(delivery, JobStatus.FAILED, error=f"gave up after {delivery.attempts} attempts; the last {error}",
             **fields)
        return
    when = timezone.now() + timedelta(seconds=backoff(delivery.attempts))
    # Conditional, like a claim: only the claim this process holds is turned back into a wait.
    waiting = HookDelivery.objects.filter(pk=delivery.pk, status=JobStatus.RUNNING, claimed_by=delivery.claimed_by)
    if waiting.update(status=JobStatus.PENDING, next_attempt_at=when, heartbeat=timezone.now(),
                      error=f"attempt {delivery.attempts} {error}; the next at {when:%Y-%m-%d %H:%M:%S} UTC", **fields):
        jobs.send(jobs.task_named(DELIVERY_TASK), str(delivery.pk), countdown=backoff(delivery.attempts))


def _failed(delivery: HookDelivery, message: str) -> None:
    """Refused before sending (the URL is no longer allowed, the hook turned off) or a bug: no retry."""
    result = {"attempt": delivery.attempts, "at": timezone.now().isoformat(), "ms": 0, "error": message}
    _end(delivery, JobStatus.FAILED, error=message, results=[*delivery.results, result],
         log=delivery.log + _line(result))


def _end(delivery: HookDelivery, status: str, **fields) -> None:
    """The token's key is dropped (nothing will resend it); a delivery that failed revokes its token (the
    receiver never took the event) and tells whoever set the hook."""
    jobs.finish(HookDelivery.objects.filter(pk=delivery.pk), status, token_encrypted="", **fields)
    if status == JobStatus.FAILED:
        if delivery.token_id:
            _revoke(ApiToken.objects.filter(pk=delivery.token_id))
        _tell_failed(delivery, fields.get("error", ""))


def _tell_failed(delivery: HookDelivery, error: str) -> None:
    setter = delivery.hook.created_by
    if setter is None:
        return
    marketplace_services.notify(setter, NotificationKind.DEPLOYMENT,
                                f"Retraining hook failed for {delivery.deployment.display_name}"[:200],
                                url=f"/deployments/{delivery.deployment_id}/", message=error,
                                target=f"hook-delivery:{delivery.hook_id}")


# ---------------------------------------------------------------- the reaper's part

def _reap(send: bool) -> list[str]:
    """Deliveries whose sender stopped mid-attempt (heartbeat stale, or its process gone) count that attempt as
    failed and wait for the next one; pending ones that were due a stale period ago and were not taken up
    (their task or timer was lost) are sent again. Bounded by ACUMOS_HOOK_MAX_ATTEMPTS, not the jobs' own
    bound: a delivery's attempts are its retries."""
    stale = timezone.now() - timedelta(seconds=settings.ACUMOS_JOB_STALE_SECONDS)
    actions = [_stopped(row) for row in HookDelivery.objects.filter(status=JobStatus.RUNNING)
               if jobs.process_gone(row.claimed_by) or (row.heartbeat or row.started or row.created) < stale]
    if send:
        lost = HookDelivery.objects.filter(status=JobStatus.PENDING, next_attempt_at__lt=stale)
        for pk in lost.values_list("pk", flat=True):
            # Due from now: the next reap waits a full stale period before it sends it again.
            HookDelivery.objects.filter(pk=pk, status=JobStatus.PENDING).update(next_attempt_at=timezone.now())
            jobs.send(jobs.task_named(DELIVERY_TASK), str(pk))
            actions.append(f"hook delivery {pk}: sent again")
    return [action for action in actions if action]


def _resume() -> list[str]:
    """At the start of the process that runs jobs (the embedded default): its timers died with the process
    before it, so every pending delivery is sent again for its time, and those it was sending are retried."""
    actions = [_stopped(row) for row in HookDelivery.objects.filter(status=JobStatus.RUNNING)
               if jobs.process_gone(row.claimed_by)]
    now = timezone.now()
    for pk, due in HookDelivery.objects.filter(status=JobStatus.PENDING).values_list("pk", "next_attempt_at"):
        wait = max(0.0, (due - now).total_seconds()) if due else 0.0
        jobs.send(jobs.task_named(DELIVERY_TASK), str(pk), countdown=wait)
        actions.append(f"hook delivery {pk}: sent again")
    return [action for action in actions if action]


def _stopped(row: HookDelivery) -> str:
    delivery = (HookDelivery.objects.select_related("hook__created_by", "deployment")
                .filter(pk=row.pk, status=JobStatus.RUNNING, claimed_by=row.claimed_by).first())
    if delivery is None:  # it ended (or was claimed again) since it was read
        return ""
    error = "was not answered: the worker sending it stopped"
    result = {"attempt": delivery.attempts, "at": timezone.now().isoformat(), "ms": 0, "error": error}
    _try_again_or_give_up(delivery, error, results=[*delivery.results, result], log=delivery.log + _line(result))
    return f"hook delivery {row.pk}: its worker stopped; attempt {delivery.attempts} counted as failed"


JOBS = jobs.JobKind("hook delivery", HookDelivery, DELIVERY_TASK, fail=_failed, reaper=_reap, resumer=_resume)
