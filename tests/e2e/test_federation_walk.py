"""Federation walked in a real browser, as an admin of one portal does it: two real portals (alpha and
beta, tests/federation/cluster.py: each its own database, registry, identity and TLS terminator).
Alpha has a model in a public catalog and knows beta; beta's admin signs in, reads beta's identity,
registers alpha with the form, pings it (the answer comes in place), subscribes to its catalog (the list
asked of alpha over mutual TLS), dry-runs and runs the subscription (each run's page follows the run by
itself), and opens the imported model: it comes from alpha, its signature verified, and its details are
not editable here. Then, at phone width, the overview and the run's page fit and read without scrolling
sideways.

Like the other walks they fail on console errors, CSP violations, server errors (5xx) and pages that do
not fit at desktop and phone widths. The tests run in order on the same two portals: the phone test
reads what the walk made. Screenshots: test-output/e2e/federation-walk/."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives import hashes
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.bundles import builders
from tests.federation.cluster import Instance, running_cluster
from tests.federation.test_sync import make_catalog, publish, push

from .conftest import DESKTOP, PAGE_TIMEOUT_MS, PHONE, SCREENSHOTS, Camera, _watch, layout_problems
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


@pytest.fixture(scope="module")
def walked() -> dict:
    """What the walk leaves for the phone test: the address of the real run's page."""
    return {}


@pytest.fixture
def at_beta(browser, browser_problems, alpha_and_beta):
    """`at_beta(viewport)`: a page at beta in a fresh browser context, signed in as its admin through
    the sign-in form, watched as the e2e conftest watches pages (5xx, script and console errors, CSP
    violations, requests elsewhere). Contexts are closed afterwards."""
    contexts: list[BrowserContext] = []

    def make(viewport: dict) -> Page:
        context, page = open_portal(browser, alpha_and_beta[1], browser_problems, viewport)
        contexts.append(context)
        sign_in(page)
        return page

    yield make
    for context in contexts:
        context.close()


def open_portal(browser: Browser, instance: Instance, problems: list[str], viewport: dict):
    context = browser.new_context(base_url=instance.url, viewport=viewport)
    _watch(context, problems, instance.url)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    return context, page


def test_an_admin_registers_a_peer_subscribes_runs_and_finds_the_imported_model(
        at_beta, browser_problems, camera, alpha_and_beta, offered, walked):
    alpha, beta = alpha_and_beta
    page = at_beta(DESKTOP)
    try:
        overview_shows_this_sites_identity(page, camera, beta)
        register_and_ping(page, camera, alpha)
        subscribe(page, camera)

        run_and_follow(page, camera, "Dry run", outcome="would import", shot="dry-run")
        live = page.locator("#run-live")
        expect(live).to_contain_text("dry run: nothing was changed")
        expect(live.locator("dl")).to_contain_text(re.compile(r"Summary\s*1 would[- ]import"))
        page.get_by_role("link", name="Back to the subscription").click()

        run_and_follow(page, camera, "Run now", outcome="Imported", shot="run")
        expect(live.locator("dl")).to_contain_text(re.compile(r"Summary\s*1 imported"))
        bytes_cell = live.locator("tbody tr").filter(has_text=MODEL).locator('td[data-label="Bytes"]')
        expect(bytes_cell).to_have_text(re.compile(r"^[1-9][\d.,]*\s(bytes|KB|MB|GB)"))
        walked["run"] = page.url

        imported_model_comes_from_alpha_read_only(page, camera, offered, alpha)
    except Exception:
        camera.shoot(page, "where-it-failed")  # what the page said when the walk stopped
        raise

    problems = browser_problems + too_wide(camera)
    assert problems == [], "\n".join(problems)


def test_at_phone_width_the_overview_and_the_run_fit_and_read_without_scrolling_sideways(
        at_beta, browser_problems, camera, walked):
    """The camera's layout check, and one more for the tables that stack on a phone (one row a card):
    a stacked table that still scrolls sideways hides the end of what its rows say."""
    if "run" not in walked:
        pytest.fail("the walk did not get as far as a run (see its failure)", pytrace=False)
    page = at_beta(PHONE)
    problems: list[str] = []
    for url, name in (("/site/federation/", "overview-phone"), (walked["run"], "run-phone")):
        page.goto(url)
        camera.shoot(page, name)
        problems += [f"{url}: {problem}" for problem in layout_problems(page) + stacked_tables_scrolling(page)]
    assert problems + browser_problems == [], "\n".join(problems + browser_problems)


def stacked_tables_scrolling(page: Page) -> list[str]:
    """The stacked tables (.table-stack) that are wider than their box, and by how much."""
    return page.locator(".table-stack").evaluate_all("""boxes => boxes
        .filter((box) => box.scrollWidth > box.clientWidth + 1)
        .map((box) => `a stacked table scrolls ${box.scrollWidth - box.clientWidth}px sideways `
                      + `under "${box.closest("section")?.querySelector("h2")?.textContent.trim()}"`)""")


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
    expect(identity).to_contain_text(fingerprint(beta))
    expect(identity.locator("#public-pem")).to_have_value(re.compile("BEGIN CERTIFICATE"))
    assert "PRIVATE KEY" not in page.content()
    assert beta.key_path.read_text().strip() not in page.content()
    camera.shoot(page, "overview")
    phone_shot(page.context, camera, "/site/federation/", "overview-before-peers")


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
    expect(answer).to_contain_text(fingerprint(alpha))
    expect(page.get_by_role("status").filter(has_text=f"{PEER_NAME} answered.")).to_be_visible()
    assert loads() == 0, "Ping reloaded the page: its answer must come in place"
    camera.shoot(page, "peer-pinged")
    phone_shot(page.context, camera, page.url, "peer", ready="#subscribe-slot form")


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


def run_and_follow(page: Page, camera: Camera, button: str, *, outcome: str, shot: str) -> None:
    """Press `button` on the subscription's page and follow the run's page until the run is done,
    without reloading it; its one model has `outcome`."""
    page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_url(re.compile(r"/site/federation/runs/[0-9a-f-]+/$"))
    loads = count_page_loads(page)
    live = page.locator("#run-live")
    # Whether there was anything to follow: a run done before its page was drawn needs no updates.
    print(f"{button}: the run's page opened with status {live.locator('.badge').first.text_content()!r}")
    camera.shoot(page, f"{shot}-started")
    expect(live.locator(".badge").first).to_have_text(re.compile("Succeeded|Failed"), timeout=RUN_MS)
    expect(live.locator(".badge").first).to_have_text("Succeeded")
    row = live.locator("tbody tr").filter(has_text=MODEL)
    expect(row).to_have_count(1)
    expect(row.locator('td[data-label="Outcome"]')).to_have_text(outcome)
    assert loads() == 0, f"the {shot}'s page was loaded again: it must follow the run in place"
    camera.shoot(page, f"{shot}-done")


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
    phone_shot(page.context, camera, page.url, "imported-model")


def phone_shot(context: BrowserContext, camera: Camera, url: str, name: str, *, ready: str | None = None) -> None:
    """The page at phone width in a page of its own (the desktop page keeps its state), once `ready`
    (what the page loads after it is drawn, e.g. a form htmx fetches) is there."""
    phone = context.new_page()
    try:
        phone.set_viewport_size(PHONE)
        phone.goto(url)
        if ready:
            expect(phone.locator(ready)).to_be_visible()
        camera.shoot(phone, f"{name}-phone")
    finally:
        phone.close()


def fingerprint(instance: Instance) -> str:
    """How the pages name an instance's certificate: SHA-256 of its DER, hex."""
    return instance.credentials.certificate.fingerprint(hashes.SHA256()).hex()
