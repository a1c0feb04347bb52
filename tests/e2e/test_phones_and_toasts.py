"""Phones, and feedback where the eye is (issue 17, items 5 and 6), in Chromium.

1. The onboarding form and job, the version page, My models (every tab), Manage (every page) and the
   account pages fit a phone and a desktop: nothing wider than the window, nothing clipped by a box or cut
   off by its card (the camera's layout check); tables scroll inside their cards or stack; the job's steps
   stack on a phone, so a step's skip reason is read inside the window, and so do the version's artifacts,
   so each Download button is.
2. A message is a toast pinned near the top of the window: however far down the page is scrolled, it is
   in view; it closes with its button, and a success fades by itself; an error stays until closed. A toast
   an htmx answer carries (HX-Trigger) shows the same way.
Screenshots: test-output/e2e/phones/."""

from __future__ import annotations

import json
import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, Route, expect

from marketplace import services
from marketplace.models import Revision
from onboarding.choices import JobStatus
from onboarding.services import onboarding_start
from tests.bundles import parts_of
from tests.factories import CatalogFactory, OnboardingJobFactory, published_revision

from .conftest import DESKTOP, PHONE, SCREENSHOTS, Camera, layout_problems

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "IrisClassifier"  # the example bundle's name
LONG_ERROR = ("the model failed its smoke test: the candidate model failed its sample for 'classify': "
              "ValueError: Input X contains NaN; RandomForestClassifier does not accept missing values encoded as NaN "
              "natively (https://scikit-learn.org/stable/modules/impute.html#a-very-long-anchor-without-spaces)")


@pytest.fixture(scope="module")
def camera() -> Camera:
    folder = SCREENSHOTS / "phones"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return Camera(folder)


@pytest.fixture
def world(portal, settings, inline_jobs, example_bundle, owner, publisher, admin_user, catalogs):
    """The example onboarded for real (its smoke test off: skipped, with the reason in the step's log),
    published in Company Models and waiting for review in Public Models; a job half done, one failed with a
    long error, another model deleted; a notification for the owner."""
    settings.ACUMOS_SMOKE_TEST = False
    with inline_jobs():
        job = onboarding_start(user=owner, parts=parts_of(example_bundle))
    job.refresh_from_db()
    revision = Revision.objects.get(pk=job.revision_uuid)
    services.update_details(owner, revision.solution, description="Classifies iris flowers.\n\n" + "A paragraph. " * 80,
                            tags=["iris", "flowers"], model_type="CL")
    services.publish_directly(revision, catalogs["company"])
    services.publish(owner, revision, catalogs["public"], message="Ready for everyone: " + "it is tested. " * 12)
    OnboardingJobFactory(owner=owner, status=JobStatus.RUNNING, model_name="Gradient Boosted Churn Predictor",
                         steps_done=4)
    OnboardingJobFactory(owner=owner, status=JobStatus.FAILED, model_name="Broken", error=LONG_ERROR,
                         finished=timezone.now(), steps_done=7)
    deleted = published_revision(catalogs["company"], name="Old Forest", owner=owner)
    services.soft_delete(owner, deleted.solution)
    services.notify(owner, "comment", "A comment on IrisClassifier", message="Which data set?")
    return {"job": job, "solution": revision.solution}


def visit(page: Page, camera: Camera, url: str, name: str) -> list[str]:
    page.goto(url)
    camera.shoot(page, name)
    return [f"{url}: {problem}" for problem in layout_problems(page)]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_pages_fit_and_nothing_is_clipped(viewport, open_as, browser_problems, camera, world, owner, publisher,
                                              admin_user):
    width = "phone" if viewport == PHONE else "desktop"
    problems: list[str] = []

    page = open_as(owner)
    page.set_viewport_size(viewport)
    job_url = f"/onboarding/jobs/{world['job'].pk}/"
    problems += visit(page, camera, job_url, f"{width}-job")
    the_skip_reason_is_in_the_window(page, viewport)
    problems += visit(page, camera, f"/revisions/{world['job'].revision_uuid}/", f"{width}-revision")
    every_download_is_in_the_window(page, viewport)
    for tab in ("unpublished", "published", "deleted", "requests"):
        problems += visit(page, camera, f"/my-models/?tab={tab}", f"{width}-my-models-{tab}")
    problems += visit(page, camera, "/onboarding/new/", f"{width}-onboard")
    problems += visit(page, camera, "/accounts/password/", f"{width}-password")

    page = open_as(publisher)
    page.set_viewport_size(viewport)
    for url, name in (("/manage/", "manage"), ("/manage/publish-requests/", "manage-requests")):
        problems += visit(page, camera, url, f"{width}-{name}")

    page = open_as(admin_user)
    page.set_viewport_size(viewport)
    for url, name in (("/manage/catalogs/", "manage-catalogs"), ("/manage/catalogs/new/", "manage-catalog-new"),
                      ("/manage/users/", "manage-users"), (f"/manage/users/{owner.pk}/", "manage-user"),
                      ("/manage/site/", "manage-site")):
        problems += visit(page, camera, url, f"{width}-{name}")

    page = open_as(None)
    page.set_viewport_size(viewport)
    for url, name in (("/accounts/login/", "sign-in"), ("/accounts/signup/", "sign-up"),
                      ("/accounts/password/reset/", "password-reset")):
        problems += visit(page, camera, url, f"{width}-{name}")

    assert problems + browser_problems == [], "\n".join(problems + browser_problems)


def the_skip_reason_is_in_the_window(page: Page, viewport: dict) -> None:
    """The image step is skipped on a site without a builder; why is said in its log, the table's last
    column: on a phone the rows stack, so it is inside the window without scrolling the table."""
    reason = page.locator("#step-build_image .step__log")
    expect(reason).not_to_be_empty()
    box = reason.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], box
    table = page.locator("#job-live .table-scroll")
    assert table.evaluate("box => box.scrollWidth <= box.clientWidth"), "the steps table scrolls sideways"


def every_download_is_in_the_window(page: Page, viewport: dict) -> None:
    """The artifacts' Download buttons, the table's last column: on a phone its rows stack."""
    downloads = page.get_by_role("link", name=re.compile(r"^Download .+"))
    assert downloads.count() >= 3
    for box in (download.bounding_box() for download in downloads.all()):
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], box


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_message_stays_in_view_wherever_the_page_is_scrolled_until_closed_or_faded(
        viewport, open_as, browser_problems, camera, world, admin_user, catalogs):
    """A redirect to an anchor far down a page (the model page's #manage) lands away from the page's top;
    here the reader scrolls down a long list of catalogs instead: the toast is in view either way."""
    width = "phone" if viewport == PHONE else "desktop"
    for n in range(25):
        CatalogFactory(name=f"Team catalog {n:02d}")
    page = open_as(admin_user)
    page.set_viewport_size(viewport)
    page.clock.install()  # a success's fade, without waiting for it

    saved = create_catalog(page, "Research Models")
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    assert page.evaluate("window.scrollY") > 0, "the page is too short to scroll"
    in_view(page, saved)
    page.screenshot(path=str(camera.folder / f"toast-{width}-scrolled-down.png"), animations="disabled")
    saved.get_by_role("button", name="Dismiss this message").click()
    expect(saved).to_have_count(0)

    saved = create_catalog(page, "Teaching Models")
    page.clock.run_for(7_000)
    expect(saved).to_be_visible()  # long enough to be read
    page.clock.run_for(2_000)
    expect(saved).to_have_count(0)

    # A refusal is an error: it interrupts (role=alert) and stays until it is closed.
    page.goto(f"/manage/catalogs/{catalogs['company'].pk}/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Delete {catalogs['company'].name}").click()
    refused = page.get_by_role("alert").filter(has_text="Not deleted:")
    expect(refused).to_be_visible()
    expect(refused).to_have_class("toast toast--error")
    in_view(page, refused)
    page.clock.run_for(60_000)
    expect(refused).to_be_visible()
    refused.get_by_role("button", name="Dismiss this message").click()
    expect(refused).to_have_count(0)
    assert browser_problems == [], "\n".join(browser_problems)


def create_catalog(page: Page, name: str):
    page.goto("/manage/catalogs/new/")
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create catalog").click()
    page.wait_for_url("**/manage/catalogs/")
    toast = page.get_by_role("status").filter(has_text=f"Catalog {name} created.")
    expect(toast).to_be_visible()
    expect(toast).to_have_class("toast toast--success")
    return toast


def test_an_htmx_answer_with_a_toast_shows_it_and_an_error_stays(open_as, browser_problems, camera, world, owner):
    """The answer to "Mark all as read" (htmx) gets toasts in its HX-Trigger as acumos_portal.htmx.add_toast
    writes them, beside the event the view sends itself; the page shows both toasts, the error as an alert."""
    page = open_as(owner)
    page.set_viewport_size(PHONE)
    page.clock.install()
    toasts = [{"level": "success", "text": "Marked 1 notification as read."},
              {"level": "error", "text": "But the bell could not be updated."}]

    def with_toasts(route: Route) -> None:
        response = route.fetch()
        events = {response.headers.get("hx-trigger", "notifications-read"): None, "toast": toasts}
        route.fulfill(response=response, headers={**response.headers, "hx-trigger": json.dumps(events)})

    page.route("**/notifications/read/", with_toasts)
    page.goto("/notifications/")
    page.get_by_role("button", name="Mark all as read").click()
    success = page.get_by_role("status").filter(has_text=toasts[0]["text"])
    error = page.get_by_role("alert").filter(has_text=toasts[1]["text"])
    expect(success).to_be_visible()
    expect(error).to_be_visible()
    expect(error).to_have_class("toast toast--error")
    in_view(page, error)
    page.screenshot(path=str(camera.folder / "toast-phone-htmx.png"), animations="disabled")

    page.clock.run_for(30_000)
    expect(success).to_have_count(0)
    expect(error).to_be_visible()  # an error is read and closed, not missed
    error.get_by_role("button", name="Dismiss this message").click()
    expect(error).to_have_count(0)
    assert browser_problems == [], "\n".join(browser_problems)


def in_view(page: Page, toast) -> None:
    """Wholly inside the window, and under the sticky top bar rather than behind it."""
    box = toast.bounding_box()
    window = page.viewport_size
    topbar = page.locator(".topbar").bounding_box()
    assert box["y"] >= topbar["y"] + topbar["height"] and box["y"] + box["height"] <= window["height"], (box, topbar)
    assert box["x"] >= 0 and box["x"] + box["width"] <= window["width"], box
