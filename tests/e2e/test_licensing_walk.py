"""Licensing walked in a real browser: a model whose licence needs an agreement (rtuRequired); another
user asks for access on its licence page; the licensor declines saying why; the requester reads the
reason and asks again; the licensor sees the earlier request beside the new one and approves with a
count of downloads; the requester downloads the bundle from the model page (answered 200, a zip) and
finds what is left on My licences. The licensor reads the agreements, usage (and its CSV) and offer
pages, then revokes the agreement saying why: the model page turns its download off again.

Like the other walks it fails on console errors, CSP violations, server errors (5xx) and pages that do
not fit, at 1280 px and at 390 px (each key screen is also shot at phone width). Screenshots:
test-output/e2e/licensing-walk/."""

from __future__ import annotations

import re
import zipfile

import pytest
from playwright.sync_api import Page, expect

from licensing.models import Agreement
from tests.licensing.test_pages import DECLINE_REASON, SPDX, gated_revision

from .conftest import SCREENSHOTS, Camera
from .test_marketplace_walk import too_wide

pytestmark = pytest.mark.django_db(transaction=True)
FIRST_ASK = "We sort flowers by species at a market stall."
SECOND_ASK = "Flowers Ltd, 12 Market Street: sorting irises for resale."
APPROVAL = "Welcome: three downloads for a start."
REVOKE_REASON = "The stall closed: the agreement ends here."


@pytest.fixture(scope="module")
def camera() -> Camera:
    folder = SCREENSHOTS / "licensing-walk"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return Camera(folder)


def test_a_request_is_declined_asked_again_approved_and_the_bundle_downloads(
        open_as, browser_problems, camera, owner, other_user, catalogs, tmp_path):
    revision = gated_revision(owner, catalogs["public"])
    model_url = f"/models/{revision.solution_id}/"
    requester, licensor = open_as(other_user), open_as(owner)
    try:
        request_access(requester, camera, model_url, FIRST_ASK)
        decide(licensor, camera, decline=True)
        read_the_decline_and_ask_again(requester, camera)
        decide(licensor, camera, decline=False)
        download_the_bundle(requester, camera, model_url, tmp_path)
        what_is_left(requester, camera)
        licensors_pages(licensor, camera, revision.solution_id)
        revoke(licensor, requester, camera, model_url)
    except Exception:
        for page in (requester, licensor):
            camera.shoot(page, "where-it-failed")
        raise

    agreement = Agreement.objects.get(assignee_user=other_user)
    assert agreement.rules.get(action="download").count_used == 1 and agreement.revoke_reason == REVOKE_REASON
    problems = browser_problems + too_wide(camera)
    assert problems == [], "\n".join(problems)


def request_access(page: Page, camera: Camera, model_url: str, message: str) -> None:
    page.goto(model_url)
    line = page.locator("#licence")
    expect(line.locator("[data-spdx]")).to_have_text(SPDX)
    expect(line.locator("[data-rtu]")).to_have_text("Needs an agreement")
    expect(line.locator("[data-viewer-state]")).to_have_text(
        "To download Gated Iris you need an agreement with its licensor.")
    expect(page.locator("[data-download-off]")).to_contain_text("No agreement")
    camera.shoot(page, "model-page-needs-an-agreement")
    camera.shoot_phone(page.context, page.url, "model-page-needs-an-agreement")

    line.get_by_role("link", name="Request access").click()
    expect(page.get_by_role("heading", name=re.compile("^Licence of "))).to_be_visible()
    expect(page.locator("[data-licence-text]")).to_contain_text("only under an agreement with Acme")
    camera.shoot(page, "licence-page-request-form")
    camera.shoot_phone(page.context, page.url, "licence-page-request-form")
    page.get_by_label("Message to the licensor").fill(message)
    page.get_by_role("button", name="Request access").click()
    expect(page.locator("#access")).to_contain_text("is pending")
    expect(page.locator("#toasts")).to_contain_text("Your request is sent")
    camera.shoot(page, "licence-page-request-pending")


def decide(page: Page, camera: Camera, *, decline: bool) -> None:
    page.goto("/licensing/")
    expect(page).to_have_url(re.compile(r"/licensing/requests/$"))
    request = page.locator("article.request")
    expect(request).to_have_count(1)
    if decline:
        expect(request).to_contain_text(FIRST_ASK)
        camera.shoot(page, "licensor-requests")
        camera.shoot_phone(page.context, page.url, "licensor-requests")
        request.get_by_label("Why").fill(DECLINE_REASON)
        request.get_by_role("button", name=re.compile("^Decline")).click()
        expect(page.locator("#toasts")).to_contain_text("Declined: other is told why")
    else:
        expect(request).to_contain_text(SECOND_ASK)
        request.get_by_text("1 earlier request from other").click()
        expect(request.locator(".request__earlier")).to_contain_text(DECLINE_REASON)
        request.get_by_label("Download: count limit").fill("3")
        request.get_by_label("Note for the requester").fill(APPROVAL)
        camera.shoot(page, "licensor-approves-with-a-count")
        request.get_by_role("button", name=re.compile("^Approve")).click()
        expect(page.locator("#toasts")).to_contain_text("Approved: other may use Gated Iris")
    expect(page.get_by_role("heading", name="Nothing to decide")).to_be_visible()
    camera.shoot(page, "licensor-requests-decided")


def read_the_decline_and_ask_again(page: Page, camera: Camera) -> None:
    page.reload()
    access = page.locator("#access")
    expect(access.locator("[data-viewer-state]")).to_have_text(f"Declined: {DECLINE_REASON} You may request again.")
    camera.shoot(page, "licence-page-declined")
    camera.shoot_phone(page.context, page.url, "licence-page-declined")
    page.get_by_label("Message to the licensor").fill(SECOND_ASK)
    page.get_by_role("button", name="Request again").click()
    expect(access).to_contain_text("is pending")


def download_the_bundle(page: Page, camera: Camera, model_url: str, folder) -> None:
    page.goto(model_url)
    expect(page.locator("#licence [data-viewer-state]")).to_contain_text("3 of 3 downloads left")
    camera.shoot(page, "model-page-entitled")
    camera.shoot_phone(page.context, page.url, "model-page-entitled")
    head = page.locator(".model-head__actions")
    with page.expect_response(re.compile(r"/revisions/[0-9a-f-]+/bundle/$")) as answered, \
            page.expect_download() as downloading:
        head.get_by_role("link", name="Download").click()
    assert answered.value.status == 200
    assert answered.value.headers["content-type"] == "application/zip"
    saved = folder / downloading.value.suggested_filename
    downloading.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert "license.json" in archive.namelist()
    page.reload()
    expect(page.locator("#licence [data-viewer-state]")).to_contain_text("2 of 3 downloads left")


def what_is_left(page: Page, camera: Camera) -> None:
    page.locator(".usermenu summary").click()
    page.get_by_role("link", name="Licensing (licences and agreements)").click()
    expect(page).to_have_url(re.compile(r"/licensing/mine/$"))
    expect(page.locator("#agreements")).to_contain_text("2 of 3 left")
    expect(page.locator("#requests")).to_contain_text(DECLINE_REASON)
    camera.shoot(page, "my-licences")
    camera.shoot_phone(page.context, page.url, "my-licences")


def licensors_pages(page: Page, camera: Camera, solution_id) -> None:
    page.goto("/licensing/agreements/")
    expect(page.locator("table.agreements")).to_contain_text("2 of 3 left")
    camera.shoot(page, "licensor-agreements")
    camera.shoot_phone(page.context, page.url, "licensor-agreements")
    page.goto("/licensing/usage/")
    expect(page.locator("tbody")).to_contain_text("other")
    camera.shoot(page, "licensor-usage")
    camera.shoot_phone(page.context, page.url, "licensor-usage")
    csv = page.request.get(page.locator("[data-csv]").get_attribute("href"))
    header = "day,model_id,model,action,agreement,user,peer,quantity,entries"
    assert csv.status == 200 and csv.text().splitlines()[0] == header
    page.goto(f"/licensing/offers/{solution_id}/")
    expect(page.get_by_role("heading", name="Offer for Gated Iris")).to_be_visible()
    camera.shoot(page, "licensor-offer")
    camera.shoot_phone(page.context, page.url, "licensor-offer")


def revoke(licensor: Page, requester: Page, camera: Camera, model_url: str) -> None:
    licensor.goto("/licensing/agreements/")
    row = licensor.locator("table.agreements tbody tr").filter(has_text="other")
    row.locator("summary", has_text="Revoke").click()
    row.get_by_label("Why").fill(REVOKE_REASON)
    camera.shoot(licensor, "licensor-revokes")
    row.get_by_role("button", name=re.compile("^Revoke the agreement")).click()
    expect(licensor.locator("#toasts")).to_contain_text("Revoked: other may no longer use Gated Iris")
    expect(row.locator(".badge")).to_have_text("Revoked")

    requester.goto(model_url)
    expect(requester.locator("#licence [data-viewer-state]")).to_contain_text(REVOKE_REASON)
    expect(requester.locator("[data-download-off]")).to_contain_text("Revoked")
    camera.shoot(requester, "model-page-revoked")
    requester.locator("#licence").get_by_role("link", name="See your options").click()
    expect(requester.get_by_role("button", name="Request again")).to_be_visible()  # asking again is the way back
    camera.shoot(requester, "licence-page-revoked")
