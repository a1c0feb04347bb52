"""Retraining hooks (monitoring.hooks): a receiver on 127.0.0.1 gets the signed event and checks the signature
with the secret the owner was shown; a failing receiver is tried again by the delivery's clock (next_attempt_at,
moved by the test rather than waited for), every attempt recorded, until it answers or the attempts run out;
the URL guard at saving and at sending; the onboarding token the event carries (scoped, for the model's owner,
replaced by the next event's); the alert that calls it; the API; and who may, as a table."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from acumos_portal import jobs
from acumos_portal.accounts import services as account_services
from acumos_portal.accounts.models import ApiToken, SiteSettings
from acumos_portal.choices import JobStatus
from marketplace.choices import Audience, NotificationKind
from marketplace.models import Notification, SolutionShare
from monitoring import alerts, hooks
from monitoring.choices import RuleKind, Variant
from monitoring.models import Alert, AlertRule, Hook, HookDelivery, Sample
from onboarding.models import OnboardingJob

from ..factories import DeploymentFactory, RevisionFactory, SolutionFactory
from ..onboarding.test_acumos_api import acumos_push, contents, without_version
from ..receivers import Answer, Received, Receiver

pytestmark = pytest.mark.django_db
NAME = "IrisClassifier"  # the example bundle's name: the event's token pushes it


# ---------------------------------------------------------------- fixtures and helpers

@pytest.fixture
def private_allowed(db):
    """The receivers of these tests listen on 127.0.0.1: the admin allowance is on unless a test turns it off."""
    SiteSettings.objects.update_or_create(pk=1, defaults={"hooks_may_reach_private": True})


@pytest.fixture
def sent(monkeypatch, django_capture_on_commit_callbacks):
    """What the hooks send to the background (task name, args, countdown): nothing runs by itself; tests call
    run_delivery, as the task would, when the delivery is due."""
    calls: list[tuple] = []
    monkeypatch.setattr(jobs, "send", lambda task, *args, countdown=0: calls.append((task.name, args, countdown)))
    return calls


@pytest.fixture
def solution(owner):
    return SolutionFactory(owner=owner, name=NAME)


@pytest.fixture
def deployment(solution):
    return DeploymentFactory(revision=RevisionFactory(solution=solution), endpoint_url="http://127.0.0.1:3330")


def committed(django_capture_on_commit_callbacks, call, *args, **kwargs):
    with django_capture_on_commit_callbacks(execute=True):
        return call(*args, **kwargs)


def run(delivery) -> HookDelivery:
    hooks.run_delivery(str(delivery.pk))
    return HookDelivery.objects.get(pk=delivery.pk)


def due_now(delivery) -> None:
    """The clock of the delivery moved on: its next attempt is due."""
    HookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def verify(secret: str, received, *, tolerance: float = 300) -> dict:
    """What a receiver does (independently of the portal's code): recompute the HMAC over "<t>.<body>", compare
    in constant time, refuse an old timestamp; then read the event."""
    fields = dict(part.split("=", 1) for part in received.headers["X-Acumos-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected), "the signature does not verify"
    assert abs(time.time() - int(fields["t"])) < tolerance
    return json.loads(received.body)


def signed_by(secret: str, received) -> bool:
    try:
        verify(secret, received)
    except AssertionError:
        return False
    return True


def drifting_samples(deployment, count: int = 3) -> None:
    now = timezone.now()
    for i in range(count):
        Sample.objects.create(deployment=deployment, at=now - timedelta(minutes=count - i), variant=Variant.LIVE,
                              requests=100, drift={"classify.petal_length": {"score": 0.42, "threshold": 0.1,
                                                                             "drifted": True,
                                                                             "measure": "wasserstein"}})


# ---------------------------------------------------------------- the signed event

def test_the_button_sends_a_signed_event_the_receiver_verifies(owner, deployment, solution, private_allowed, sent,
                                                              django_capture_on_commit_callbacks, bundle_parts):
    with Receiver() as receiver:
        hook, secret = hooks.set_hook(deployment, url=receiver.url, user=owner)
        assert secret.startswith("whsec_") and hooks.hook_of(deployment) == hook
        delivery = committed(django_capture_on_commit_callbacks, hooks.deliver_now, deployment, owner)
        assert sent == [(hooks.DELIVERY_TASK, (str(delivery.pk),), 0)]
        delivery = run(delivery)
    assert delivery.status == JobStatus.SUCCEEDED and delivery.attempts == 1
    [received] = receiver.requests
    event = verify(secret, received)
    assert not signed_by("whsec_another", received)
    tampered = Received(received.method, received.path, received.headers, received.body.replace(b"manual", b"drift"))
    assert not signed_by(secret, tampered)
    assert received.headers["X-Acumos-Event"] == "manual"
    assert received.headers["X-Acumos-Delivery"] == str(delivery.pk) == event["id"]
    assert received.headers["Content-Type"] == "application/json"
    assert event["type"] == "manual" and event["alert"] is None
    assert event["deployment"] == {"id": str(deployment.pk), "name": deployment.display_name,
                                   "endpoint": "http://127.0.0.1:3330",
                                   "page": f"http://127.0.0.1:8000/deployments/{deployment.pk}/"}
    assert event["solution"] == {"id": str(solution.pk), "name": NAME}
    assert event["revision"] == {"id": str(deployment.revision.pk), "version": deployment.revision.version}
    assert event["recent_inputs"] is None and "no inputs to export" in event["recent_inputs_reason"]
    onboarding = event["onboarding"]
    assert onboarding["push_url"] == "http://127.0.0.1:8000/onboarding-app/v2/models" and onboarding["name"] == NAME
    # The body is canonical JSON (sorted keys, no spaces): the bytes the signature covers.
    assert received.body == json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    # Recorded: the answer; the event without the token's value; the token's key no longer kept.
    assert delivery.response_status == 200 and delivery.response_body == '{"ok": true}'
    assert delivery.results[0]["status"] == 200 and delivery.results[0]["attempt"] == 1
    assert delivery.event["onboarding"]["token"] == hooks.REDACTED and delivery.token_encrypted == ""
    # The token in the event pushes a revision of this model, as its owner.
    token = ApiToken.objects.get(pk=delivery.token_id)
    assert token.user == owner and token.solution_id == solution.pk and token.name == f"retraining hook: {NAME}"
    assert timedelta(hours=23) < token.expires - timezone.now() <= timedelta(hours=24)
    pushed = acumos_push(Client(), without_version(contents(bundle_parts)), f"Bearer {onboarding['token']}")
    assert pushed.status_code == 201, pushed.content
    assert OnboardingJob.objects.get().solution_uuid == solution.pk


def test_a_failing_receiver_is_tried_again_by_the_clock_and_every_attempt_is_recorded(
        owner, deployment, private_allowed, sent, django_capture_on_commit_callbacks):
    with Receiver(Answer(500, b"trainer busy"), Answer(503, b"still busy"), Answer(200, b"queued")) as receiver:
        _, secret = hooks.set_hook(deployment, url=receiver.url, user=owner)
        delivery = committed(django_capture_on_commit_callbacks, hooks.deliver_now, deployment, owner)
        sent.clear()
        before = timezone.now()
        delivery = run(delivery)
        assert delivery.status == JobStatus.PENDING and delivery.attempts == 1
        assert delivery.response_status == 500 and delivery.response_body == "trainer busy"
        assert timedelta(seconds=29) <= delivery.next_attempt_at - before <= timedelta(seconds=31)
        assert "attempt 1 answered HTTP 500" in delivery.error
        assert sent == [(hooks.DELIVERY_TASK, (str(delivery.pk),), 30)]
        # Sent early (a duplicate, a resend): it is not due, nothing happens.
        assert run(delivery).attempts == 1 and len(receiver.requests) == 1
        due_now(delivery)
        delivery = run(delivery)
        assert delivery.status == JobStatus.PENDING and delivery.attempts == 2 and sent[-1][2] == 120
        due_now(delivery)
        delivery = run(delivery)
    assert delivery.status == JobStatus.SUCCEEDED and delivery.attempts == 3
    assert [r.get("status") for r in delivery.results] == [500, 503, 200]
    assert [r["attempt"] for r in delivery.results] == [1, 2, 3]
    assert delivery.response_body == "queued" and delivery.token_encrypted == "" and delivery.error == ""
    assert delivery.log.count("\n") == 3 and "attempt 2 at" in delivery.log
    # Each attempt is signed anew; the event is the same one (a receiver drops repeats by its id).
    assert all(signed_by(secret, received) for received in receiver.requests)
    assert len({json.loads(r.body)["id"] for r in receiver.requests}) == 1
    assert hooks.backoff(1) == 30 and hooks.backoff(2) == 120 and hooks.backoff(3) == 480


def test_a_receiver_that_never_answers_well_is_given_up_on_its_token_revoked_and_the_setter_told(
        owner, deployment, private_allowed, sent, settings, django_capture_on_commit_callbacks):
    settings.ACUMOS_HOOK_MAX_ATTEMPTS = 3
    with Receiver(Answer(500, b"\x00\x01binary")) as receiver:
        hooks.set_hook(deployment, url=receiver.url, user=owner)
        delivery = committed(django_capture_on_commit_callbacks, hooks.deliver_now, deployment, owner)
        for _ in range(3):
            delivery = run(delivery)
            due_now(delivery)
        assert run(delivery).attempts == 3  # ended: nothing more is sent
    assert len(receiver.requests) == 3
    assert delivery.status == JobStatus.FAILED and "gave up after 3 attempts" in delivery.error
    assert delivery.response_body == "(a binary answer of 8 bytes; not kept)"
    assert ApiToken.objects.get(pk=delivery.token_id).revoked is not None
    note = Notification.objects.get(user=owner, kind=NotificationKind.DEPLOYMENT)
    assert "Retraining hook failed" in note.title and "gave up after 3 attempts" in note.message


def test_an_unreachable_receiver_is_recorded_and_tried_again(owner, deployment, private_allowed, sent,
                                                              django_capture_on_commit_callbacks):
    with Receiver() as receiver:
        url = receiver.url
    hooks.set_hook(deployment, url=url, user=owner)  # the receiver has stopped: nothing listens there
    delivery = run(committed(django_capture_on_commit_callbacks, hooks.deliver_now, deployment, owner))
    assert delivery.status == JobStatus.PENDING and delivery.response_status is None
    assert delivery.results[0]["error"].startswith("could not be reached: ConnectionError")


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(owner, deployment, private_allowed, sent,
                                                           django_capture_on_commit_callbacks):
    with Receiver(Answer(307, b"", {"Location": "http://169.254.169.254/"})) as receiver:
        hooks.set_hook(deployment, url=receiver.url, user=owner)
        delivery = run(committed(django_capture_on_commit_callbacks, hooks.deliver_now, deployment, owner))
    assert len(receiver.requests) == 1 and delivery.status == JobStatus.PENDING
    assert "redirect (to http://169.254.169.254/), which is not followed" in delivery.results[0]["error"]


# ---------------------------------------------------------------- the URL guard, at saving and at sending

def test_the_url_is_refused_when_saved_unless_the_site_allows_private_addresses(owner, deployment):
    for url in ("http://127.0.0.1:9000/hook", "http://localhost/hook", "http://10.0.0.8/", "http://[::1]/",
                "ftp://example.com/", "http://u:p@127.0.0.1/"):
        with pytest.raises(hooks.HookRefused) as refused:
            hooks.set_hook(deployment, url=url, user=owner)
        assert refused.value.field == "url"
    assert not Hook.objects.exists()
    SiteSettings.objects.update_or_create(pk=1, defaults={"hooks_may_reach_private": True})
    hook, _ = hooks.set_hook(deployment, url="http://127.0.0.1:9000/hook", user=owner)
    assert hook.url == "http://127.0.0.1:9000/hook"
    with pytest.raises(hooks.HookRefused, match="user name or password"):
        hooks.set_hook(deployment, url="http://u:p@127.0.0.1/", user=owner)


def test_the_url_is_checked_again_when_sent_and_a_refusal_is_not_retried(owner, deployment, private_allowed, sent,
                                                                         django_capture_on_commit_callbacks):
    with Receiver() as receiver:
        hooks.set_hook(deployment, url=receiver.url, user=owner)
        delivery = committed(django_capture_on_commit_callbacks, hooks.deliver_now, deployment, owner)
        SiteSettings.objects.filter(pk=1).update(hooks_may_reach_private=False)
        sent.clear()
        delivery = run(delivery)
    assert receiver.requests == [] and sent == []
    assert delivery.status == JobStatus.FAILED and "127.0.0.1 is a loopback address" in delivery.error
    assert ApiToken.objects.get(pk=delivery.token_id).revoked is not None


# ---------------------------------------------------------------- alerts call it

def test_a_firing_drift_rule_calls_the_hook_with_what_drifted(owner, deployment, private_allowed, sent,
                                                              django_capture_on_commit_callbacks):
    with Receiver() as receiver:
        _, secret = hooks.set_hook(deployment, url=receiver.url, user=owner)
        drifting_samples(deployment)
        [alert] = committed(django_capture_on_commit_callbacks, alerts.evaluate, deployment)
        delivery = HookDelivery.objects.get()
        assert delivery.alert == alert and delivery.kind == RuleKind.DRIFT
        run(delivery)
    event = verify(secret, receiver.requests[0])
    assert receiver.requests[0].headers["X-Acumos-Event"] == "drift"
    assert event["type"] == "drift" and event["alert"]["id"] == alert.pk
    assert event["alert"]["summary"].startswith("Input drift on classify.petal_length: Wasserstein 0.42 over 0.1")
    drifted = event["alert"]["evidence"]["samples"][-1]["drifted"]
    assert drifted == {"classify.petal_length": {"measure": "wasserstein", "score": 0.42, "threshold": 0.1}}
    # Still firing at the next round: no second event.
    assert committed(django_capture_on_commit_callbacks, alerts.evaluate, deployment) == []
    assert HookDelivery.objects.count() == 1


def test_only_the_kinds_the_hook_listens_to_call_it(owner, deployment, private_allowed, sent):
    hooks.set_hook(deployment, url="http://127.0.0.1:9/hook", user=owner)
    rules = {kind: AlertRule.objects.create(deployment=deployment, kind=kind, threshold=0) for kind in RuleKind.values}

    def fire(kind):
        alert = Alert.objects.create(rule=rules[kind], deployment=deployment, fired_at=timezone.now(), summary=kind)
        return hooks.deliver_for_alert(alert)

    assert fire(RuleKind.ERROR_RATE) is None and fire(RuleKind.P99) is None
    assert fire(RuleKind.QUALITY).kind == RuleKind.QUALITY
    hooks.set_hook(deployment, url="http://127.0.0.1:9/hook", user=owner, on_alert=["p99"])
    assert fire(RuleKind.DRIFT) is None and fire(RuleKind.P99).kind == RuleKind.P99
    hooks.set_hook(deployment, url="http://127.0.0.1:9/hook", user=owner, enabled=False, on_alert=["p99"])
    assert fire(RuleKind.P99) is None
    with pytest.raises(hooks.HookRefused, match="turned off"):
        hooks.deliver_now(deployment, owner)


def test_a_broken_hook_never_stops_the_round_that_fired_the_alert(owner, deployment, monkeypatch, caplog):
    def broken(alert):
        raise RuntimeError("boom")

    monkeypatch.setattr(hooks, "deliver_for_alert", broken)
    drifting_samples(deployment)
    assert len(alerts.evaluate(deployment)) == 1
    assert "could not be started" in caplog.text


# ---------------------------------------------------------------- which hook, and the token

def test_a_solutions_hook_serves_its_deployments_unless_one_has_its_own(owner, other_user, solution, deployment,
                                                                        private_allowed, sent):
    shared, _ = hooks.set_hook(solution, url="http://127.0.0.1:9/solution", user=owner)
    assert hooks.effective_hook(deployment) == shared
    # Someone else's deployment of the same model: its inputs are not the solution owner's to see.
    theirs = DeploymentFactory(revision=deployment.revision, created_by=other_user)
    assert hooks.effective_hook(theirs) is None
    with pytest.raises(hooks.NoHook):
        hooks.deliver_now(theirs, other_user)
    own, _ = hooks.set_hook(deployment, url="http://127.0.0.1:9/own", user=owner, enabled=False)
    assert hooks.effective_hook(deployment) == own  # turned off, it still speaks for this deployment


def test_the_next_event_revokes_the_previous_token_and_supersedes_a_pending_event(owner, deployment,
                                                                                  private_allowed, sent):
    hooks.set_hook(deployment, url="http://127.0.0.1:9/hook", user=owner)
    first = hooks.deliver_now(deployment, owner)
    second = hooks.deliver_now(deployment, owner)
    first.refresh_from_db()
    assert first.status == JobStatus.FAILED and f"superseded by the newer event {second.pk}" in first.error
    assert first.token_encrypted == ""
    assert ApiToken.objects.get(pk=first.token_id).revoked is not None
    assert ApiToken.objects.get(pk=second.token_id).revoked is None
    assert ApiToken.objects.filter(user=owner, solution_id=deployment.revision.solution_id).count() == 2


def test_the_token_is_the_owners_when_an_admin_set_the_hook_and_none_when_the_setter_may_not_change_the_model(
        owner, operator, admin_user, solution, deployment, private_allowed, sent):
    hooks.set_hook(solution, url="http://127.0.0.1:9/hook", user=admin_user)
    delivery = hooks.deliver_now(deployment, owner)
    assert ApiToken.objects.get(pk=delivery.token_id).user == owner
    # An operator may manage the deployment, not change the model: the event goes, without a token.
    hooks.set_hook(deployment, url="http://127.0.0.1:9/hook", user=operator)
    delivery = hooks.deliver_now(deployment, operator)
    assert delivery.token_id is None and delivery.token_encrypted == ""
    assert delivery.event["onboarding"]["token"] is None
    assert "set by operator, who may not change IrisClassifier" in delivery.event["onboarding"]["reason"]


def test_rotating_the_secret_signs_the_next_event_with_the_new_one(owner, deployment, private_allowed, sent):
    with Receiver() as receiver:
        _, old = hooks.set_hook(deployment, url=receiver.url, user=owner)
        hook, new = hooks.rotate_secret(deployment, user=owner)
        assert new != old and new.startswith("whsec_")
        assert hooks.set_hook(deployment, url=receiver.url, user=owner)[1] == ""  # a change shows no secret
        run(hooks.deliver_now(deployment, owner))
    [received] = receiver.requests
    assert signed_by(new, received) and not signed_by(old, received)


def test_removing_the_hook_revokes_its_tokens_and_drops_unsent_events(owner, deployment, private_allowed, sent):
    hooks.set_hook(deployment, url="http://127.0.0.1:9/hook", user=owner)
    delivery = hooks.deliver_now(deployment, owner)
    hooks.remove_hook(deployment, user=owner)
    assert not Hook.objects.exists() and not HookDelivery.objects.exists()
    assert ApiToken.objects.get(pk=delivery.token_id).revoked is not None
    hooks.run_delivery(str(delivery.pk))  # its task, arriving late: nothing to do
    with pytest.raises(hooks.NoHook):
        hooks.remove_hook(deployment, user=owner)


# ---------------------------------------------------------------- the reaper

def test_the_reaper_retries_an_attempt_whose_worker_died_and_resends_a_lost_one(owner, deployment, private_allowed,
                                                                                 sent):
    hooks.set_hook(deployment, url="http://127.0.0.1:9/hook", user=owner)
    dead = hooks.deliver_now(deployment, owner)
    hook2 = hooks.set_hook(DeploymentFactory(revision=deployment.revision), url="http://127.0.0.1:9/h", user=owner)[0]
    lost = hooks.deliver_now(hook2.deployment, owner)
    # One was being sent by a process that is gone (a pid that cannot be); the other's timer was lost.
    HookDelivery.objects.filter(pk=dead.pk).update(status=JobStatus.RUNNING, attempts=1,
                                                   claimed_by=f"{jobs.this_process().split(':')[0]}:999999999:1")
    HookDelivery.objects.filter(pk=lost.pk).update(next_attempt_at=timezone.now() - timedelta(hours=1))
    sent.clear()
    actions = hooks.JOBS.reap()
    dead.refresh_from_db()
    assert dead.status == JobStatus.PENDING and dead.results[0]["error"].endswith("the worker sending it stopped")
    assert (hooks.DELIVERY_TASK, (str(dead.pk),), 30) in sent and (hooks.DELIVERY_TASK, (str(lost.pk),), 0) in sent
    assert len(actions) == 2


# ---------------------------------------------------------------- the API

def test_the_api_sets_shows_rotates_calls_lists_and_removes_a_deployments_hook(owner, deployment, private_allowed,
                                                                              sent, client_for):
    client = client_for(owner)
    base = f"/api/v1/deployments/{deployment.pk}/hook"
    assert client.get(base).status_code == 404
    refused = client.put(base, {"url": "ftp://example.com/"}, content_type="application/json")
    assert refused.status_code == 400 and "http:// or https://" in refused.json()["error"]["details"]["url"][0]
    made = client.put(base, {"url": "http://127.0.0.1:9/hook"}, content_type="application/json")
    assert made.status_code == 201 and made.json()["secret"].startswith("whsec_")
    assert made.json()["on_alert"] == ["drift", "quality"] and made.json()["created_by"] == "owner"
    changed = client.put(base, {"url": "http://127.0.0.1:9/other", "on_alert": ["p99", "drift"]},
                         content_type="application/json")
    assert changed.status_code == 200 and "secret" not in changed.json()
    assert changed.json()["on_alert"] == ["drift", "p99"]
    assert "secret" not in client.get(base).json()
    assert client.post(f"{base}/rotate").json()["secret"] != made.json()["secret"]
    called = client.post(f"{base}/deliver")
    assert called.status_code == 202 and called.json()["kind"] == "manual" and called.json()["status"] == "pending"
    listed = client.get(f"{base}/deliveries").json()
    assert [d["id"] for d in listed["results"]] == [called.json()["id"]]
    assert listed["results"][0]["event"]["onboarding"]["token"] == hooks.REDACTED
    assert client.delete(base).status_code == 204 and not Hook.objects.exists()
    assert client.post(f"{base}/deliver").status_code == 404


def test_the_api_refuses_an_unknown_rule_kind(owner, solution, private_allowed, client_for):
    response = client_for(owner).put(f"/api/v1/solutions/{solution.pk}/hook",
                                     {"url": "http://127.0.0.1:9/", "on_alert": ["latency"]},
                                     content_type="application/json")
    assert response.status_code == 400 and "on_alert" in response.json()["error"]["details"]


# ---------------------------------------------------------------- who may: one table

PERSONAS = ("owner", "co_owner", "other_user", "publisher", "operator", "admin_user", "anonymous")
# A private model: who may not see it gets 404; a deployment: operators run every deployment.
SOLUTION_HOOK = {"owner": True, "co_owner": True, "other_user": False, "publisher": False, "operator": False,
                 "admin_user": True, "anonymous": False}
DEPLOYMENT_HOOK = {"owner": True, "co_owner": False, "other_user": False, "publisher": False, "operator": True,
                   "admin_user": True, "anonymous": False}


@pytest.fixture
def personas(request, owner, co_owner, other_user, publisher, operator, admin_user, solution):
    SolutionShare.objects.create(solution=solution, user=co_owner, shared_by=owner)
    return {name: (request.getfixturevalue(name) if name != "anonymous" else None) for name in PERSONAS}


def _anonymous():
    from django.contrib.auth.models import AnonymousUser

    return AnonymousUser()


@pytest.mark.parametrize("persona", PERSONAS)
def test_who_may_change_hooks_and_press_the_button(persona, personas, solution, deployment):
    user = personas[persona] or _anonymous()
    assert hooks.can_change_hook(user, solution) is SOLUTION_HOOK[persona]
    assert hooks.can_change_hook(user, deployment) is DEPLOYMENT_HOOK[persona]
    assert hooks.can_deliver_now(user, deployment) is DEPLOYMENT_HOOK[persona]
    if persona == "anonymous":
        return
    for subject, allowed in ((solution, SOLUTION_HOOK[persona]), (deployment, DEPLOYMENT_HOOK[persona])):
        if not allowed:
            with pytest.raises(hooks.HookNotAllowed):
                hooks.set_hook(subject, url="http://93.184.215.14/hook", user=user)


def _status(allowed: bool, persona: str, *, seen: bool = False) -> int:
    if persona == "anonymous":
        return 401
    return 200 if allowed else 403 if seen else 404


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_hook_endpoints_answer_each_persona(persona, personas, solution, deployment, private_allowed, sent,
                                                client_for):
    hooks.set_hook(solution, url="http://127.0.0.1:9/s", user=personas["owner"])
    hooks.set_hook(deployment, url="http://127.0.0.1:9/d", user=personas["owner"])
    client = client_for(personas[persona])
    for base, allowed in ((f"/api/v1/solutions/{solution.pk}/hook", SOLUTION_HOOK[persona]),
                          (f"/api/v1/deployments/{deployment.pk}/hook", DEPLOYMENT_HOOK[persona])):
        expected = _status(allowed, persona)
        assert client.get(base).status_code == expected, base
        assert client.get(f"{base}/deliveries").status_code == expected, base
        put = client.put(base, {"url": "http://127.0.0.1:9/x"}, content_type="application/json")
        assert put.status_code == expected, (base, put.content)
        assert client.post(f"{base}/rotate").status_code == expected, base
    deliver = client.post(f"/api/v1/deployments/{deployment.pk}/hook/deliver")
    assert deliver.status_code == (202 if DEPLOYMENT_HOOK[persona] else _status(False, persona)), deliver.content
    assert Hook.objects.count() == 2  # nobody refused changed anything


def test_someone_who_sees_a_public_model_but_may_not_change_it_gets_403(other_user, solution, client_for):
    solution.audience = Audience.SIGNED_IN
    solution.save()
    response = client_for(other_user).get(f"/api/v1/solutions/{solution.pk}/hook")
    assert response.status_code == 403 and "owners or an admin" in response.json()["error"]["message"]


def test_a_token_user_is_refused_by_a_hooks_scoped_token(owner, solution):
    key = account_services.token_create(user=owner, name="hook", solution_id=solution.pk)[1]
    response = Client().get(f"/api/v1/solutions/{solution.pk}/hook", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 401
    mine = account_services.token_create(user=owner, name="mine")[1]
    response = Client().get(f"/api/v1/solutions/{solution.pk}/hook", headers={"Authorization": f"Bearer {mine}"})
    assert response.status_code == 404  # authenticated; no hook set
