"""A consumer tries a public model in a real browser, at desktop and phone width: its owner deployed
it to this host and shared the deployment for trying (on the deployment's page); another user finds the
model, is told they may not deploy it here (and what they can do instead), and tries it on the model
page, where the request goes through the portal. Screenshots go to test-output/e2e/consumer-try/."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from deployment.choices import DeploymentStatus, TargetDeployers, TargetKind
from deployment.models import Deployment
from marketplace import services as marketplace_services

from ..factories import TargetFactory
from .conftest import DESKTOP, PHONE, SCREENSHOTS, Camera
from .test_deployment_walk import OPERATION_MS, deployments_dir, onboard  # noqa: F401 (a fixture)
from .test_marketplace_walk import too_wide

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def camera() -> Camera:
    folder = SCREENSHOTS / "consumer-try"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return Camera(folder)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_consumer_tries_a_public_model_its_owner_shared(viewport, open_as, browser_problems, camera, portal,
                                                         deployments_dir, owner, other_user, catalogs,  # noqa: F811
                                                         example_bundle):
    width = "phone" if viewport == PHONE else "desktop"
    iris = onboard(owner, example_bundle)
    marketplace_services.publish_directly(iris, catalogs["public"])
    TargetFactory(name="This host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)

    # The owner deploys it and shares the deployment for Try it, on the deployment's page.
    owner_page = open_as(owner)
    owner_page.set_viewport_size(viewport)
    owner_page.goto(reverse("marketplace:revision", args=[iris.pk]))
    owner_page.get_by_role("button", name="Deploy", exact=True).click()
    owner_page.wait_for_url("**/deployments/*/")
    expect(owner_page.locator(".page-head__title .badge")).to_have_text("Running", timeout=OPERATION_MS)
    owner_page.get_by_role("button", name="Share for Try it").click()
    expect(owner_page.get_by_role("button", name="Stop sharing")).to_be_visible()
    camera.shoot(owner_page, f"{width}-owner-shared-the-deployment")
    assert Deployment.objects.get().shared and Deployment.objects.get().status == DeploymentStatus.RUNNING

    # A consumer finds it and tries it on the model page.
    page = open_as(other_user)
    page.set_viewport_size(viewport)
    page.goto(reverse("marketplace:model", args=[iris.solution.pk]))
    panel = page.locator("#try")
    expect(panel.get_by_label("Method")).to_have_value("classify")
    expect(panel).to_contain_text("Deploying this model here is for its owners, operators and admins")
    sample = json.loads(panel.get_by_label("Request (JSON)").input_value())
    assert set(sample) >= {"sepal_length", "petal_width"}  # the model's own sample
    panel.get_by_role("button", name="Send").click()
    expect(panel.locator("#model-try-result pre")).to_contain_text('"species"')
    deployment = Deployment.objects.get()
    assert deployment.endpoint_url.split("//", 1)[1] not in page.content()  # where it runs is not said
    camera.shoot(page, f"{width}-consumer-tried-it")

    panel.get_by_label("Request (JSON)").fill('{"sepal_length": "wide"}')
    panel.get_by_role("button", name="Send").click()
    expect(panel.get_by_role("alert")).to_contain_text("sepal_length")  # the model's own words, in place
    camera.shoot(page, f"{width}-consumer-bad-input")

    problems = browser_problems + too_wide(camera)
    assert problems == [], "\n".join(problems)
