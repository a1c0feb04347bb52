"""A deployment's alert rules and retraining hook on its page, in Chromium: the owner changes a rule (a bad
threshold first: the error beside the field), sets a hook to a receiver on 127.0.0.1 (the admin allowance on),
copies the secret shown once, presses "Call the hook now", and the receiver gets the event signed with that
secret (the portal fixture runs the delivery job on its thread pool, as `make run` does); the deliveries list
shows the answer. Desktop and phone screenshots (test-output/e2e/monitoring-settings/); nothing refused by the
Content-Security-Policy, no script error."""

from __future__ import annotations

import json
import time

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from acumos_portal.accounts.models import SiteSettings
from deployment.choices import DeploymentStatus
from monitoring.choices import RuleKind
from monitoring.models import AlertRule, HookDelivery
from tests.factories import DeploymentFactory, RevisionFactory, SolutionFactory
from tests.monitoring.test_hooks import verify
from tests.receivers import Receiver

from .conftest import PHONE, SCREENSHOTS, Camera
from .test_marketplace_walk import too_wide
from .test_monitoring_charts import shoot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def camera() -> Camera:
    folder = SCREENSHOTS / "monitoring-settings"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return Camera(folder)


@pytest.fixture
def deployment(owner):
    SiteSettings.objects.update_or_create(pk=1, defaults={"hooks_may_reach_private": True})
    revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris"), version="1.0.0")
    return DeploymentFactory(name="iris", revision=revision, created_by=owner, status=DeploymentStatus.RUNNING,
                             endpoint_url="http://127.0.0.1:9")


def test_an_owner_changes_a_rule_sets_a_hook_and_calls_it(open_as, browser_problems, camera, owner, deployment):
    page = open_as(owner)
    page.goto(reverse("deployment:detail", args=[deployment.pk]))
    change_a_rule(page, camera)
    with Receiver() as receiver:
        secret = set_the_hook(page, camera, receiver)
        page.get_by_role("button", name="Call the hook now").click()
        expect(page.locator("#monitoring-hook [role=status]")).to_contain_text("Called: event")
        delivery = HookDelivery.objects.get()
        row = page.locator(f'[data-delivery="{delivery.pk}"]')
        expect(row).to_contain_text("Succeeded")  # the list asks for itself until the answer is in
        expect(row).to_contain_text("1 attempt · last answer HTTP 200")
        deadline = time.monotonic() + 10
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        [received] = receiver.requests
    event = verify(secret, received)
    assert event["type"] == "manual" and event["deployment"]["id"] == str(deployment.pk)
    assert json.loads(received.body)["id"] == str(delivery.pk)
    expect(page.get_by_text("Copy the secret now")).to_have_count(0)  # gone with the answer that showed it

    shoot(page.locator("#monitoring-settings"), camera, "desktop-rules-and-hook-after-a-call")
    camera.shoot(page, "desktop-deployment-page")
    phone = page.context.new_page()
    phone.set_viewport_size(PHONE)
    phone.goto(reverse("deployment:detail", args=[deployment.pk]))
    expect(phone.locator("#monitoring-hook")).to_contain_text("Last deliveries")
    phone.locator("#rule-p99").get_by_text("Change this rule").click()
    camera.shoot(phone, "phone-deployment-page")
    shoot(phone.locator("#monitoring-settings"), camera, "phone-rules-and-hook")

    problems = browser_problems + too_wide(camera)
    assert problems == [], "\n".join(problems)


def change_a_rule(page, camera) -> None:
    """A threshold out of range first: the browser's own check is skipped (as a script-less form's would be)
    so that the server's answer is what is shown, beside the field. Then one that is saved."""
    error_rate = page.locator("#rule-error_rate")
    expect(error_rate).to_contain_text("Fires when the error rate is over 5 % for 3 samples in a row — default")
    error_rate.get_by_text("Change this rule").click()
    threshold = error_rate.get_by_label("Error rate over (%)")
    threshold.evaluate("(input) => input.form.noValidate = true")
    threshold.fill("150")
    error_rate.get_by_role("button", name="Save").click()
    expect(page.locator("#rule-error_rate .field--error")).to_contain_text(
        "Type a number from 0 up to but not including 100 %.")
    assert not AlertRule.objects.exists()
    shoot(page.locator("#rule-error_rate"), camera, "desktop-a-threshold-refused-beside-its-field")

    page.locator("#rule-error_rate").get_by_label("Error rate over (%)").fill("2")
    page.locator("#rule-error_rate").get_by_label("Samples in a row").fill("5")
    page.locator("#rule-error_rate").get_by_role("button", name="Save").click()
    expect(page.locator("#rule-error_rate [role=status]")).to_contain_text("Saved.")
    expect(page.locator("#rule-error_rate")).to_contain_text(
        "Fires when the error rate is over 2 % for 5 samples in a row — set by owner")
    rule = AlertRule.objects.get(kind=RuleKind.ERROR_RATE)
    assert (rule.threshold, rule.windows, rule.enabled) == (0.02, 5, True)


def set_the_hook(page, camera, receiver) -> str:
    """The hook to the receiver (on 127.0.0.1: the fixture turned the admin allowance on); its secret."""
    hook = page.locator("#monitoring-hook")
    expect(hook).to_contain_text("No retraining hook is set")
    hook.get_by_label("URL the events are POSTed to").fill(receiver.url)
    hook.get_by_role("button", name="Set the hook").click()
    secret_box = page.locator("#hook-secret-box")
    expect(secret_box).to_contain_text("Copy the secret now: it is not shown again")
    expect(secret_box.get_by_role("button", name="Copy")).to_be_visible()
    secret = page.locator("#hook-secret").input_value()
    assert secret.startswith("whsec_")
    expect(hook).to_contain_text(receiver.url)
    expect(hook).to_contain_text("alerts of Input drift, Quality from feedback; and the button")
    shoot(page.locator("#monitoring-settings"), camera, "desktop-rules-and-hook-with-the-secret")
    return secret
