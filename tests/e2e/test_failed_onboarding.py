"""A model that fails its smoke test, onboarded in a real browser at desktop and phone width: the job
page, My models and the notification each say what failed in a sentence ending with the exception's
own line, never the runner's raw JSON and never "10 of 10 steps finished"; the full runner output is
one click away. Screenshots go to test-output/e2e/failed-onboarding/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from ..bundles import builders
from .conftest import DESKTOP, PHONE, SCREENSHOTS, Camera
from .test_marketplace_walk import too_wide

pytestmark = pytest.mark.django_db(transaction=True)
ONBOARDING_TIMEOUT_MS = 180_000
EXCEPTION_LINE = "ValueError: negative input is not supported by this model"  # what the model raises
RAW_RUNNER_JSON = re.compile(r'\{\s*"error"|"code"\s*:|prediction_failed')


@pytest.fixture(scope="module")
def camera() -> Camera:
    folder = SCREENSHOTS / "failed-onboarding"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return Camera(folder)


@pytest.fixture(scope="module")
def failing_bundle(tmp_path_factory):
    return builders.failing_bundle(tmp_path_factory.mktemp("failing") / "bundle", fail_on_sample=True)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_failed_smoke_test_is_said_in_a_sentence_everywhere(viewport, open_as, browser_problems, camera, portal,
                                                               owner, failing_bundle):
    width = "phone" if viewport == PHONE else "desktop"
    page = open_as(owner)
    page.set_viewport_size(viewport)
    page.goto("/onboarding/new/")
    for name in ("metadata.json", "model.proto", "modelpackage.zip"):
        page.get_by_label(name, exact=True).set_input_files(failing_bundle / name)
    page.get_by_role("button", name="Upload and onboard").click()
    page.wait_for_url(re.compile(r"/onboarding/jobs/[0-9a-f-]+/$"))

    failure = page.get_by_role("alert").filter(has=page.get_by_role("heading", name="Onboarding failed"))
    expect(failure).to_be_visible(timeout=ONBOARDING_TIMEOUT_MS)
    expect(failure).to_contain_text(EXCEPTION_LINE)
    expect(page.locator("#job-live")).to_contain_text(re.compile(r"failed at step \d+ of \d+: Smoke-test"))
    expect(page.get_by_text(re.compile(r"\b(\d+) of \1 steps finished"))).to_have_count(0)
    no_raw_json(page, "#job-live .alert")
    # The failed step's full output is on the page, open, and not cut before the traceback's last line.
    output = page.locator("#job-live tr.step--failed details", has_text="Runner output")
    expect(output).to_have_attribute("open", "")
    expect(output.locator("pre")).to_contain_text(EXCEPTION_LINE)
    camera.shoot(page, f"{width}-job-failed")

    page.goto("/my-models/")
    failed = page.get_by_role("region", name="Recent uploads that failed")
    expect(failed).to_contain_text(EXCEPTION_LINE)
    no_raw_json(page, "section[aria-labelledby=failed-title]")
    camera.shoot(page, f"{width}-my-models-failed-upload")

    page.goto("/notifications/")
    feed = page.get_by_role("region", name="All notifications")
    expect(feed.get_by_role("listitem").first).to_contain_text(EXCEPTION_LINE)
    no_raw_json(page, "main")
    camera.shoot(page, f"{width}-notification-failed")

    problems = browser_problems + too_wide(camera)
    assert problems == [], "\n".join(problems)


def no_raw_json(page: Page, where: str) -> None:
    text = page.locator(where).first.inner_text()
    assert not RAW_RUNNER_JSON.search(text), f"raw runner JSON shown to a person in {where}: {text[:400]}"
