"""The deployment page walked in a real browser, at desktop and at phone width: the owner deploys a
model to this host, tries it, hot-swaps a model with another interface in, tries its method, rolls
back, tries the first model again, stops it and is told (not refused in red) when it may go. All of it
on one page load: the page follows the deployment by itself, and the actions answer in place.

Model code runs for real, in the sandbox (the local target), as on `make run`. Screenshots go to
test-output/e2e/deployment-walk/."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from acumos_portal import sandbox
from acumos_portal.choices import JobStatus
from deployment.choices import DeploymentStatus, TargetDeployers, TargetKind
from deployment.models import Deployment
from marketplace.models import Revision
from onboarding.models import OnboardingJob
from onboarding.services import onboarding_start

from ..bundles import builders, parts_of
from ..factories import TargetFactory
from ..waiting import wait_for
from .conftest import DESKTOP, PHONE, SCREENSHOTS, Camera
from .test_marketplace_walk import too_wide

pytestmark = pytest.mark.django_db(transaction=True)
ONBOARDING_SECONDS = 120
# A deploy starts a runner in the sandbox and a swap loads a model beside the old one: seconds each.
OPERATION_MS = 60_000


@pytest.fixture(scope="module")
def camera() -> Camera:
    folder = SCREENSHOTS / "deployment-walk"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return Camera(folder)


@pytest.fixture
def deployments_dir(settings, tmp_path):
    settings.ACUMOS_DEPLOYMENTS_DIR = tmp_path / "deployments"
    yield settings.ACUMOS_DEPLOYMENTS_DIR
    sandbox.sweep(sandbox.records_dir(), keep=lambda record: False)  # no runner outlives the test


def onboard(owner, bundle) -> Revision:
    """Through the service, as the CLI would: the browser onboarding is the marketplace walk's."""
    job = onboarding_start(user=owner, parts=parts_of(bundle))
    wait_for(lambda: OnboardingJob.objects.get(pk=job.pk).status in (JobStatus.SUCCEEDED, JobStatus.FAILED),
             ONBOARDING_SECONDS, "onboarding")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    return Revision.objects.get(pk=job.revision_uuid)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_deploy_try_swap_interfaces_roll_back_and_stop_without_a_reload(
        viewport, open_as, browser_problems, camera, portal, deployments_dir, owner, example_bundle, tmp_path):
    width = "phone" if viewport == PHONE else "desktop"
    iris = onboard(owner, example_bundle)
    text = onboard(owner, builders.text_bundle(tmp_path / "text", tag="e2e"))
    TargetFactory(name="This host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)

    page = open_as(owner)
    page.set_viewport_size(viewport)
    page.goto(reverse("marketplace:revision", args=[iris.pk]))
    page.get_by_role("button", name="Deploy", exact=True).click()
    page.wait_for_url("**/deployments/*/")
    deployment = Deployment.objects.get()
    loads = count_page_loads(page)

    # Deployed: the title's badge, the status and Try it follow without a reload.
    expect(page.locator(".page-head__title .badge")).to_have_text("Running", timeout=OPERATION_MS)
    expect(page.get_by_role("heading", name="Try it")).to_be_visible()
    camera.shoot(page, f"{width}-deployed")
    try_it(page, "classify", expect_field="species")
    camera.shoot(page, f"{width}-tried-iris")

    page.get_by_label("Model version to serve").select_option(label=f"{text.solution.name} {text.version}")
    page.get_by_role("button", name="Swap in").click()
    expect(page.locator("#id_method option")).to_have_text(["measure"], timeout=OPERATION_MS)
    expect(page.get_by_role("heading", level=1)).to_contain_text(text.solution.name)  # named by what it serves
    try_it(page, "measure", expect_field="length")
    camera.shoot(page, f"{width}-swapped-and-tried-text")

    page.get_by_role("button", name="Roll back to this").first.click()
    expect(page.locator("#id_method option")).to_have_text(["classify"], timeout=OPERATION_MS)
    expect(page.get_by_role("button", name="Swap in")).to_be_enabled()
    try_it(page, "classify", expect_field="species")
    camera.shoot(page, f"{width}-rolled-back-and-tried-iris")

    warnings_where_a_second_copy_or_a_delete_is_asked(page, camera, iris, width, viewport)

    page.once("dialog", lambda dialog: dialog.accept())  # Stop asks first
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.locator(".page-head__title .badge")).to_have_text("Stopped", timeout=OPERATION_MS)
    # An owner may not end the grace period early on this site: told when it goes, with no red error.
    expect(page.locator("[data-grace]")).to_contain_text("Kept, restartable, until")
    expect(page.get_by_role("button", name="Destroy")).to_have_count(0)
    expect(page.locator(".alert--error")).to_have_count(0)
    camera.shoot(page, f"{width}-stopped-kept-until")

    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.STOPPED
    assert loads() == 0, "the page was loaded again during the walk: it must follow the deployment in place"
    problems = browser_problems + too_wide(camera)
    assert problems == [], "\n".join(problems)


def count_page_loads(page: Page):
    """How many times the page was loaded (a navigation of its main frame) after this call."""
    loads: list[str] = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and loads.append(frame.url))
    return lambda: len(loads)


def try_it(page: Page, method: str, *, expect_field: str) -> None:
    """Try it offers the served model's own method with its sample; Send answers in place."""
    expect(page.locator("#id_method")).to_have_value(method)
    page.locator("#id_body").fill("")
    page.locator("#id_method").select_option(method)  # picking the method fills its sample, after htmx swaps too
    expect(page.locator("#id_body")).not_to_have_value("")
    sample = json.loads(page.locator("#id_body").input_value())
    assert isinstance(sample, dict) and sample, "Try it is filled with the model's own sample"
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#try-result pre")).to_contain_text(f'"{expect_field}"')


def warnings_where_a_second_copy_or_a_delete_is_asked(page: Page, camera, iris, width: str, viewport) -> None:
    """In another tab (the deployment's page stays as it is): deploying the same version again says
    where it already runs, and deleting the model says that its deployment keeps serving."""
    other = page.context.new_page()
    try:
        other.set_viewport_size(viewport)
        other.goto(reverse("marketplace:revision", args=[iris.pk]) + "#deploy")
        expect(other.locator("#deploy")).to_contain_text("Already running here:")
        camera.shoot(other, f"{width}-deploy-form-says-already-running-here")
        other.goto(reverse("marketplace:model", args=[iris.solution.pk]) + "#manage-delete")
        other.get_by_text("Delete this model…").click()
        expect(other.locator("[data-deployed]")).to_contain_text("Deleting the model does not stop them")
        camera.shoot(other, f"{width}-delete-says-deployments-keep-serving")
    finally:
        other.close()
