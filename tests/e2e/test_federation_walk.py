"""Federation walked in a real browser, as an admin of one portal does it: two real portals (alpha and
beta, tests/federation/cluster.py: each its own database, registry, identity and TLS terminator).
Alpha has a model in a public catalog and knows beta; beta's admin signs in, reads beta's identity,
registers alpha with the form, pings it (the answer comes in place), subscribes to its catalog (the list
asked of alpha over mutual TLS), dry-runs and runs the subscription (each run's page follows the run by
itself), and opens the imported model: it comes from alpha, its signature verified, and its details are
not editable here.

Like the other walks it fails on console errors, CSP violations, server errors (5xx) and pages that do
not fit at desktop and phone widths. Screenshots: test-output/e2e/federation-walk/."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives import hashes
from playwright.sync_api import Browser, Page, expect

from tests.bundles import builders
from tests.federation.cluster import Instance, running_cluster
from tests.federation.test_sync import make_catalog, publish, push

from .conftest import DESKTOP, PAGE_TIMEOUT_MS, SCREENSHOTS, Camera, _watch
from .test_deployment_walk import count_page_loads
from .test_marketplace_walk import too_wide

# Two portals to start (a database each to migrate, an image built and onboarded at alpha), then an
# import that copies the model's image between registries.
pytestmark = pytest.mark.timeout(900)
ADMIN = "admin"
ADMIN_PASSWORD = "admin-password-for-tests"  # what tests/servers.py gives every portal it starts
MODEL = "IrisFromAlpha"
CATALOG = "Shared with partners"
PEER_NAME = "Alpha"
# A run asks alpha for its changes and, for a real one, copies every artifact and the image's layers.
RUN_MS = 180_000


@pytest.fixture(scope="module")
def camera() -> Camera:
    folder = SCREENSHOTS / "federation-walk"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return Camera(folder)


@pytest.fixture(scope="module")
def alpha_and_beta() -> tuple[Instance, Instance]:
    """Two started portals; everything they made is stopped and removed when the module is done."""
    with running_cluster() as cluster:
        alpha, beta = cluster.make_instances(2)
        yield alpha, beta


@pytest.fixture(scope="module")
def offered(alpha_and_beta, tmp_path_factory) -> dict:
    """At alpha, through its API: a data scientist's model, onboarded and published in a public
    catalog; and beta registered as alpha's peer, so that beta may call it."""
    alpha, beta = alpha_and_beta
    bundle = builders.iris_bundle(tmp_path_factory.mktemp("iris"))
    made = push(alpha, alpha.portal.user_with_token("scientist"), MODEL, bundle)
    publish(alpha, made["revisionId"], make_catalog(alpha, CATALOG, "PB"))
    alpha.add_peer(beta)
    return made


def open_portal(browser: Browser, instance: Instance, problems: list[str]):
    """A fresh browser context on `instance` (the e2e conftest's watch on it: 5xx, script and console
    errors, CSP violations, requests elsewhere); closed by the caller."""
    context = browser.new_context(base_url=instance.url, viewport=DESKTOP)
    _watch(context, problems, instance.url)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    return context, page


def test_an_admin_registers_a_peer_subscribes_runs_and_finds_the_imported_model(
        browser, browser_problems, camera, alpha_and_beta, offered):
    alpha, beta = alpha_and_beta
    context, page = open_portal(browser, beta, browser_problems)
    try:
        sign_in(page)
        overview_shows_this_sites_identity(page, camera, beta)
        register_and_ping(page, camera, alpha)
        subscribe(page, camera)
        dry_run = run_and_follow(page, camera, "Dry run", outcome="would import", shot="dry-run")
        expect(dry_run.locator("#run-live")).to_contain_text("dry run: nothing was changed")
        page.get_by_role("link", name="Back to the subscription").click()
        run = run_and_follow(page, camera, "Run now", outcome="Imported", shot="run")
        bytes_cell = run.locator("#run-live tbody tr").filter(has_text=MODEL).locator('td[data-label="Bytes"]')
        expect(bytes_cell).to_have_text(re.compile(r"^[1-9][\d.,]*\s(bytes|KB|MB|GB)"))
        run_url = page.url
        imported_model_comes_from_alpha_read_only(page, camera, offered, alpha)

        # 6. At phone width: the overview and the run's page fit.
        camera.shoot_phone(context, "/site/federation/", "overview")
        camera.shoot_phone(context, run_url, "run")
    except Exception:
        camera.shoot(page, "where-it-failed")  # what the page said when the walk stopped
        raise
    finally:
        context.close()

    problems = browser_problems + too_wide(camera)
    assert problems == [], "\n".join(problems)


def sign_in(page: Page) -> None:
    """Through beta's own sign-in form, as its admin would."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(ADMIN)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    expect(page.get_by_role("button", name="Sign out", include_hidden=True)).to_be_attached()


def overview_shows_this_sites_identity(page: Page, camera: Camera, beta: Instance) -> None:
    """Beta's name (its certificate's CN) and fingerprint; the certificate to give peers, never a key."""
    page.goto("/site/federation/")
    identity = page.locator("#identity")
    expect(identity).to_contain_text(beta.subject)
    expect(identity).to_contain_text(beta.credentials.certificate.fingerprint(hashes.SHA256()).hex())
    expect(identity.locator("#public-pem")).to_have_value(re.compile("BEGIN CERTIFICATE"))
    assert "PRIVATE KEY" not in page.content()
    assert beta.key_path.read_text().strip() not in page.content()
    camera.shoot(page, "overview")
    camera.shoot_phone(page.context, "/site/federation/", "overview-before-peers")


def register_and_ping(page: Page, camera: Camera, alpha: Instance) -> None:
    """The register form with what alpha's admins give: its address, its CA and its CN. Ping answers
    on the peer's page without a reload, with a toast."""
    form = page.locator("#register")
    form.get_by_label("Name").fill(PEER_NAME)
    form.get_by_label("API URL").fill(alpha.federation_url)
    form.get_by_label("Certificate or CA (PEM)").fill(alpha.ca_pem)
    form.get_by_label("Subject CN").fill(alpha.subject)
    form.get_by_role("button", name="Register peer").click()
    # The form posts to ...#register; the browser keeps that fragment through the redirect.
    page.wait_for_url(re.compile(r"/site/federation/peers/[0-9a-f-]+/(#.*)?$"))
    expect(page.get_by_role("status").filter(has_text=f"{PEER_NAME} is registered and active.")).to_be_visible()
    expect(page.locator("#details")).to_contain_text(alpha.subject)
    camera.shoot(page, "peer-registered")

    loads = count_page_loads(page)
    page.get_by_role("button", name=f"Ping {PEER_NAME}").click()
    answer = page.locator("#ping-answer .alert--ok")
    expect(answer).to_contain_text("answered.")
    expect(answer).to_contain_text(alpha.credentials.certificate.fingerprint(hashes.SHA256()).hex())
    expect(page.get_by_role("status").filter(has_text=f"{PEER_NAME} answered.")).to_be_visible()
    assert loads() == 0, "Ping reloaded the page: its answer must come in place"
    camera.shoot(page, "peer-pinged")
    camera.shoot_phone(page.context, page.url, "peer")


def subscribe(page: Page, camera: Camera) -> None:
    """The peer page asks alpha for its catalogs (over mutual TLS) and offers them in its form. On
    demand only (interval 0), so beta's scheduler does not run it behind the walk's back."""
    slot = page.locator("#subscribe-slot")
    # By its name, not its label: the grant form's select on the same page has the id this label points to.
    catalog = slot.locator('select[name="catalog"]')
    expect(catalog.locator("option")).to_have_text(["Public Models (public)", f"{CATALOG} (public)"])
    catalog.select_option(label=f"{CATALOG} (public)")
    slot.get_by_label("Interval (seconds)").fill("0")
    expect(slot.get_by_label("Owner (user name)")).to_have_value(ADMIN)
    camera.shoot(page, "subscribe-form")
    slot.get_by_role("button", name="Subscribe").click()
    page.wait_for_url(re.compile(r"/site/federation/subscriptions/[0-9a-f-]+/$"))
    expect(page.get_by_role("status").filter(has_text="Subscribed to")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text(CATALOG)
    camera.shoot(page, "subscription")


def run_and_follow(page: Page, camera: Camera, button: str, *, outcome: str, shot: str) -> Page:
    """Press `button` on the subscription's page and follow the run's page until the run is done,
    without reloading it; its one model has `outcome`."""
    page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_url(re.compile(r"/site/federation/runs/[0-9a-f-]+/$"))
    loads = count_page_loads(page)
    live = page.locator("#run-live")
    print(f"{button}: the run's page opened with status {live.locator('.badge').first.text_content()!r}")
    camera.shoot(page, f"{shot}-started")
    expect(live.locator(".badge").first).to_have_text(re.compile("Succeeded|Failed"), timeout=RUN_MS)
    expect(live.locator(".badge").first).to_have_text("Succeeded")
    row = live.locator("tbody tr").filter(has_text=MODEL)
    expect(row).to_have_count(1)
    expect(row.locator('td[data-label="Outcome"]')).to_have_text(outcome)
    assert loads() == 0, f"the {shot}'s page was loaded again: it must follow the run in place"
    camera.shoot(page, f"{shot}-done")
    return page


def imported_model_comes_from_alpha_read_only(page: Page, camera: Camera, offered: dict, alpha: Instance) -> None:
    """The model page names where the copy came from and that its signature was verified; its
    details are alpha's, so the Manage panel says so instead of offering a form."""
    page.goto(f"/models/{offered['solutionId']}/")
    expect(page.get_by_role("heading", level=1)).to_have_text(MODEL)
    origin = page.locator("[data-origin]")
    expect(origin).to_contain_text(f"From {PEER_NAME}")
    expect(origin).to_contain_text(f"origin {alpha.subject}")
    expect(origin).to_contain_text("signature verified")
    expect(page.locator("[data-read-only]")).to_contain_text(f"Read-only: imported from {alpha.subject}")
    expect(page.get_by_role("button", name="Save details")).to_have_count(0)
    expect(page.locator("#manage-details textarea, #manage-details input:not([type=hidden])")).to_have_count(0)
    camera.shoot(page, "imported-model")
    camera.shoot_phone(page.context, page.url, "imported-model")
