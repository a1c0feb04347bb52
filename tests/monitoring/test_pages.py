"""The alert rules and retraining hook sections below a deployment's monitoring panel (monitoring.views,
templates/monitoring/_rules.html, _hook.html): a rule in words, changed, refused beside its field, reset; a
hook set (the URL guard with the admin allowance off and on), its secret shown once, the button that calls it;
htmx answers the section, a plain form the page; who may (another user 404, anonymous to sign in). That it all
works in a browser under the CSP: tests/e2e/test_monitoring_settings.py."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from acumos_portal import jobs
from acumos_portal.accounts.models import SiteSettings
from acumos_portal.choices import JobStatus
from deployment.choices import DeploymentStatus
from monitoring import hooks, views
from monitoring.choices import RuleKind
from monitoring.models import AlertRule, Hook, HookDelivery

from ..factories import DeploymentFactory, RevisionFactory, SolutionFactory

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def deployment(owner):
    revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris"), version="1.0.0")
    return DeploymentFactory(name="iris", revision=revision, created_by=owner, status=DeploymentStatus.RUNNING,
                             endpoint_url="http://127.0.0.1:9")


@pytest.fixture
def sent(monkeypatch):
    """The background tasks asked for (nothing runs by itself)."""
    calls: list[tuple] = []
    monkeypatch.setattr(jobs, "send", lambda task, *args, countdown=0: calls.append((task.name, args)))
    return calls


def allow_private(on: bool) -> None:
    SiteSettings.objects.update_or_create(pk=1, defaults={"hooks_may_reach_private": on})


def url(name: str, deployment, *args) -> str:
    return reverse(f"monitoring:{name}", args=[deployment.pk, *args])


def text(response) -> str:
    """The answer's words, tags dropped and spaces folded (what a person reads)."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def field_block(response, field_id: str) -> str:
    """The HTML of the form field whose input has `field_id`: its label, input, help and errors."""
    page = response.content.decode()
    start = page.rindex('<div class="field', 0, page.index(f'id="{field_id}"'))
    return html.unescape(page[start:page.index("</div>", page.index(f'id="{field_id}"'))])


# ---------------------------------------------------------------- the sections, and who sees them


def test_the_deployment_page_loads_the_rules_and_the_hook_once_with_htmx(client_for, owner, deployment):
    page = client_for(owner).get(reverse("deployment:detail", args=[deployment.pk])).content.decode()
    assert f'hx-get="{url("settings", deployment)}" hx-trigger="load"' in page
    assert f'href="{url("panel", deployment)}#monitoring-rules"' in page  # without JavaScript


def test_the_rules_say_in_words_what_fires_them(client_for, owner, operator, deployment):
    AlertRule.objects.create(deployment=deployment, kind=RuleKind.P99, threshold=250, windows=1, enabled=False,
                             created_by=operator)
    section = client_for(owner).get(url("settings", deployment), headers=HTMX)
    assert section.status_code == 200 and "<html" not in section.content.decode()
    said = text(section)
    assert "Fires when the error rate is over 5 % for 3 samples in a row — default" in said
    assert "Fires when any input field drifts for 3 samples in a row — default" in said
    assert "Fires when accuracy from feedback is under 0.8 for 3 samples in a row — default" in said
    assert ("Off: it does not fire (when on, it fires when p99 latency is over 250 ms for 1 sample) — set by operator"
            in said)
    # The form shows the threshold in its unit: 5 (%), not 0.05.
    assert 'name="error_rate-threshold" value="5"' in section.content.decode()


def test_without_htmx_the_section_is_on_the_monitoring_page(client_for, owner, deployment):
    response = client_for(owner).get(url("settings", deployment))
    assert response.status_code == 302 and response["Location"] == f"{url('panel', deployment)}#monitoring-rules"
    page = client_for(owner).get(url("panel", deployment)).content.decode()
    assert 'id="monitoring-rules"' in page and 'id="monitoring-hook"' in page


@pytest.mark.parametrize("persona", ["other_user", "publisher"])
def test_another_user_gets_404_from_every_view(request, client_for, deployment, persona):
    client = client_for(request.getfixturevalue(persona))
    assert client.get(url("settings", deployment), headers=HTMX).status_code == 404
    assert client.get(url("hook-deliveries", deployment), headers=HTMX).status_code == 404
    assert client.post(url("rule", deployment, "p99"), {"p99-threshold": 5, "p99-windows": 3}).status_code == 404
    assert client.post(url("hook", deployment), {"hook-url": "http://127.0.0.1:9/hook"}).status_code == 404
    assert client.post(url("hook-call", deployment)).status_code == 404
    assert not AlertRule.objects.exists() and not Hook.objects.exists()


def test_an_anonymous_visitor_is_sent_to_sign_in(client_for, deployment):
    client = client_for(None)
    for response in (client.get(url("settings", deployment)), client.post(url("rule", deployment, "p99"), {}),
                     client.post(url("hook", deployment), {}), client.post(url("hook-call", deployment))):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login"))
    assert not AlertRule.objects.exists()


def test_one_who_sees_but_may_not_manage_sees_the_rules_read_only_and_no_hook_url(client_for, owner, deployment,
                                                                                   monkeypatch):
    """Nobody today sees a deployment they may not manage; the day someone does, the templates show what
    can_manage and can_change_hook decide, and the views refuse the rest."""
    allow_private(True)
    hooks.set_hook(deployment, url="http://127.0.0.1:9/secret-trainer", user=owner)
    monkeypatch.setattr(views, "can_manage", lambda user, deployment: False)
    monkeypatch.setattr(hooks, "can_change_hook", lambda user, subject: False)
    monkeypatch.setattr(hooks, "can_deliver_now", lambda user, deployment: False)
    client = client_for(owner)
    section = client.get(url("settings", deployment), headers=HTMX)
    body = section.content.decode()
    assert "Fires when the error rate is over 5 %" in text(section)
    assert "<form" not in body and "secret-trainer" not in body and "Call the hook now" not in body
    assert "Its URL and deliveries are shown only to whoever manages this deployment" in text(section)
    assert client.post(url("rule", deployment, "p99"), {"p99-threshold": 5, "p99-windows": 3}).status_code == 403
    assert client.post(url("hook-call", deployment)).status_code == 403
    assert not AlertRule.objects.exists()


# ---------------------------------------------------------------- rules


def test_changing_a_rule_saves_it_in_its_unit_and_answers_the_section(client_for, owner, deployment):
    response = client_for(owner).post(url("rule", deployment, "error_rate"),
                                      {"error_rate-threshold": "7", "error_rate-windows": "4",
                                       "error_rate-enabled": "on", "action": "save"}, headers=HTMX)
    assert response.status_code == 200
    rule = AlertRule.objects.get(deployment=deployment, kind=RuleKind.ERROR_RATE)
    assert (rule.threshold, rule.windows, rule.enabled, rule.created_by) == (0.07, 4, True, owner)
    assert 'id="monitoring-rules"' in response.content.decode()
    assert "Fires when the error rate is over 7 % for 4 samples in a row — set by owner Saved." in text(response)
    assert "monitoring-changed" in response["HX-Trigger"]  # the charts redraw the bound


def test_unticked_on_turns_a_rule_off(client_for, owner, deployment):
    client_for(owner).post(url("rule", deployment, "p99"), {"p99-threshold": "400", "p99-windows": "2"}, headers=HTMX)
    rule = AlertRule.objects.get(deployment=deployment, kind=RuleKind.P99)
    assert (rule.threshold, rule.windows, rule.enabled) == (400.0, 2, False)
    said = text(client_for(owner).get(url("settings", deployment), headers=HTMX))
    assert "Off: it does not fire (when on, it fires when p99 latency is over 400 ms for 2 samples in a row)" in said


@pytest.mark.parametrize(("kind", "threshold", "says"), [
    ("error_rate", "100", "Type a number from 0 up to but not including 100 %."),
    ("error_rate", "-1", "Type a number from 0 up to but not including 100 %."),
    ("drift", "150", "Type a number from 0 up to but not including 100 %."),
    ("p99", "0", "Type more than 0 ms."),
    ("quality", "-0.5", "Type 0 or more."),
    ("p99", "fast", "Enter a number."),
])
def test_a_bad_threshold_is_shown_beside_its_field_and_changes_nothing(client_for, owner, deployment, kind,
                                                                        threshold, says):
    response = client_for(owner).post(url("rule", deployment, kind), {f"{kind}-threshold": threshold,
                                                                       f"{kind}-windows": "3",
                                                                       f"{kind}-enabled": "on"}, headers=HTMX)
    assert response.status_code == 200  # htmx swaps only a 2xx answer in
    block = field_block(response, f"id_{kind}-threshold")
    assert "field--error" in block and says in block
    assert "Saved" not in text(response)
    assert not AlertRule.objects.exists()
    assert "HX-Trigger" not in response


def test_bad_samples_in_a_row_are_shown_beside_that_field(client_for, owner, deployment):
    response = client_for(owner).post(url("rule", deployment, "p99"), {"p99-threshold": "500", "p99-windows": "61"},
                                      headers=HTMX)
    block = field_block(response, "id_p99-windows")
    assert "field--error" in block and "less than or equal to 60" in block
    assert not AlertRule.objects.exists()


def test_without_javascript_a_change_goes_back_to_the_page_and_an_error_shows_it_400(client_for, owner, deployment):
    client = client_for(owner)
    saved = client.post(url("rule", deployment, "p99"), {"p99-threshold": "300", "p99-windows": "3",
                                                         "p99-enabled": "on"})
    assert saved.status_code == 302 and saved["Location"] == f"{url('panel', deployment)}#rule-p99"
    refused = client.post(url("rule", deployment, "p99"), {"p99-threshold": "0", "p99-windows": "3"})
    assert refused.status_code == 400 and "<html" in refused.content.decode()
    assert "Type more than 0 ms." in field_block(refused, "id_p99-threshold")
    assert AlertRule.objects.get(kind=RuleKind.P99).threshold == 300


def test_reset_puts_the_default_back(client_for, owner, deployment):
    client = client_for(owner)
    client.post(url("rule", deployment, "p99"), {"p99-threshold": "300", "p99-windows": "3"}, headers=HTMX)
    assert "Reset to default" in client.get(url("settings", deployment), headers=HTMX).content.decode()
    response = client.post(url("rule", deployment, "p99"), {"action": "reset"}, headers=HTMX)
    assert not AlertRule.objects.exists()
    assert "p99 latency: back to the default." in text(response)
    assert "Fires when p99 latency is over 1000 ms for 3 samples in a row — default" in text(response)


def test_an_unknown_kind_is_404(client_for, owner, deployment):
    assert client_for(owner).post(url("rule", deployment, "latency"), {}).status_code == 404


# ---------------------------------------------------------------- the hook


def post_hook(client, deployment, hook_url, **extra):
    body = {"hook-url": hook_url, "hook-on_alert": ["drift", "quality"], "hook-enabled": "on", "action": "save",
            **extra}
    return client.post(url("hook", deployment), body, headers=HTMX)


def test_a_private_address_is_refused_unless_an_admin_allows_it_and_the_secret_is_shown_once(client_for, owner,
                                                                                            deployment):
    client = client_for(owner)
    allow_private(False)
    refused = post_hook(client, deployment, "http://127.0.0.1:9/hook")
    block = field_block(refused, "id_hook-url")
    assert "field--error" in block
    assert "127.0.0.1 is" in block and "hooks may only call public addresses" in block
    assert "an admin may allow private ones in the site settings" in block
    assert not Hook.objects.exists()

    allow_private(True)
    made = post_hook(client, deployment, "http://127.0.0.1:9/hook")
    hook = Hook.objects.get(deployment=deployment)
    secret = re.search(r'id="hook-secret" value="(whsec_[^"]+)"', made.content.decode()).group(1)
    assert hook.url == "http://127.0.0.1:9/hook" and hook.on_alert == ["drift", "quality"] and hook.enabled
    assert "Copy the secret now: it is not shown again" in text(made)
    # The event is signed with the secret shown.
    assert hooks.signature(secret, 1, b"{}") == hooks.signature(
        hooks.secretbox.decrypt(hook.secret_encrypted), 1, b"{}")
    again = client.get(url("settings", deployment), headers=HTMX).content.decode()
    assert secret not in again and "hook-secret" not in again
    assert "http://127.0.0.1:9/hook" in again  # the URL, to whoever manages it

    changed = post_hook(client, deployment, "http://127.0.0.1:9/other", **{"hook-on_alert": ["p99"]})
    assert "whsec_" not in changed.content.decode() and "its secret stays the same" in text(changed)
    assert Hook.objects.get(deployment=deployment).on_alert == ["p99"]

    rotated = client.post(url("hook", deployment), {"action": "rotate"}, headers=HTMX)
    new = re.search(r'id="hook-secret" value="(whsec_[^"]+)"', rotated.content.decode()).group(1)
    assert new != secret and hooks.secretbox.decrypt(Hook.objects.get().secret_encrypted) == new


def test_without_javascript_the_secret_is_on_the_answer_not_after_a_redirect(client_for, owner, deployment):
    allow_private(True)
    response = client_for(owner).post(url("hook", deployment), {"hook-url": "http://127.0.0.1:9/hook",
                                                                "hook-enabled": "on"})
    assert response.status_code == 200 and "<html" in response.content.decode()
    assert 'id="hook-secret" value="whsec_' in response.content.decode()


def test_the_model_s_hook_is_named_as_such_and_one_for_the_deployment_takes_over(client_for, owner, deployment):
    allow_private(True)
    hooks.set_hook(deployment.revision.solution, url="http://127.0.0.1:9/model-hook", user=owner)
    client = client_for(owner)
    said = text(client.get(url("settings", deployment), headers=HTMX))
    assert "its model, Iris, by owner" in said and "http://127.0.0.1:9/model-hook" in said
    assert "Set a hook for this deployment only (it takes over from the model's)" in said
    post_hook(client, deployment, "http://127.0.0.1:9/own")
    said = text(client.get(url("settings", deployment), headers=HTMX))
    assert "this deployment (its own)" in said and "http://127.0.0.1:9/own" in said
    removed = client.post(url("hook", deployment), {"action": "remove"}, headers=HTMX)
    assert "This deployment's hook is removed" in text(removed) and "its model, Iris" in text(removed)
    assert not Hook.objects.filter(deployment=deployment).exists()


def test_the_button_creates_a_delivery_listed_with_its_answer(client_for, owner, deployment, sent):
    allow_private(True)
    client = client_for(owner)
    post_hook(client, deployment, "http://127.0.0.1:9/hook")
    response = client.post(url("hook-call", deployment), headers=HTMX)
    delivery = HookDelivery.objects.get(deployment=deployment)
    assert (delivery.kind, delivery.requested_by, delivery.status) == ("manual", owner, JobStatus.PENDING)
    assert f"Called: event {delivery.pk} is on its way" in text(response)
    body = response.content.decode()
    assert f'data-delivery="{delivery.pk}"' in body
    # While it is under way the list asks for itself again, and shows the answer when it came.
    assert f'hx-get="{url("hook-deliveries", deployment)}" hx-trigger="every 2s"' in body
    HookDelivery.objects.filter(pk=delivery.pk).update(status=JobStatus.SUCCEEDED, attempts=1, response_status=204)
    listed = client.get(url("hook-deliveries", deployment), headers=HTMX)
    assert "1 attempt · last answer HTTP 204" in text(listed) and "Succeeded" in text(listed)
    assert "every 2s" not in listed.content.decode()


def test_the_button_with_no_hook_or_a_hook_turned_off_says_why(client_for, owner, deployment, sent):
    allow_private(True)
    client = client_for(owner)
    none = client.post(url("hook-call", deployment), headers=HTMX)
    assert "this deployment has no retraining hook" in text(none)
    post_hook(client, deployment, "http://127.0.0.1:9/hook", **{"hook-enabled": ""})
    section = client.get(url("settings", deployment), headers=HTMX).content.decode()
    assert re.search(r"<button[^>]*disabled[^>]*>Call the hook now", section)
    off = client.post(url("hook-call", deployment), headers=HTMX)
    assert "turned off; turn it on to call it" in text(off)
    assert not HookDelivery.objects.exists()
