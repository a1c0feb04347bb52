"""End-to-end fixtures: a live portal (pytest-django's `live_server` over the test database), one
Debian Chromium per module driven by Playwright, a fresh browser context per user, and a camera
that saves a full-page screenshot of every page visited to test-output/e2e/.

Playwright's own browser download does not work on these machines, so the tests always launch
/usr/bin/chromium (installed by `make browser`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from acumos_portal import jobs
from tests.conftest import REPO

CHROMIUM = Path(os.environ.get("ACUMOS_CHROMIUM", "/usr/bin/chromium"))
# Headless without a sandbox (containers), and quiet: without the background-networking flags
# Chromium keeps calling Google services, which a closed network answers with long timeouts.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = REPO / "test-output" / "e2e"
# One wait for anything a page does by itself (a click's answer, an htmx swap); onboarding gets longer.
PAGE_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Browser:
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run `make browser` (Debian package chromium).",
                    pytrace=False)
    # Playwright's sync API keeps an event loop in this thread, which Django takes for an async context
    # and then refuses every ORM call of the test itself (fixtures, assertions) while the browser lives.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        expect.set_options(timeout=PAGE_TIMEOUT_MS)
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def portal(live_server, settings):
    """The live server, with background jobs on this process's thread pool (no broker), and that pool
    shut down before the database is flushed, so no job thread outlives the test. Onboarding runs every
    step for real (the smoke test starts the model in a runner process, which it stops) except the
    image build, which needs a registry or a Docker engine: it is skipped, as on a site without one."""
    settings.CELERY_BROKER_URL = ""
    settings.ACUMOS_IMAGE_BUILDER = ""
    yield live_server
    jobs.shutdown()


@dataclass
class Camera:
    """Numbers and saves full-page screenshots: test-output/e2e/<nn>-<name>.png. It also notes every
    page that is wider than the window (a horizontal scroll bar: something does not fit), and every
    page whose content is cut off although the page fits (a box that hides what overflows it, or
    something reaching past its card's right edge): on a phone both hide what a person came to read."""

    folder: Path
    taken: list[Path] = field(default_factory=list)
    # How a page sticks out or clips its content -> the numbers of the screenshots that show it.
    too_wide: dict[str, list[str]] = field(default_factory=dict)

    def shoot(self, page: Page, name: str) -> Path:
        page.wait_for_load_state("load")
        # From the top: a sticky header would otherwise be drawn where the window was scrolled to.
        page.evaluate("window.scrollTo(0, 0)")
        path = self.folder / f"{len(self.taken) + 1:02d}-{_slug(name)}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
        self.taken.append(path)
        for problem in layout_problems(page):
            self.too_wide.setdefault(problem, []).append(path.name[:2])
        return path

    def shoot_phone(self, context: BrowserContext, url: str, name: str) -> Path:
        """The same page at phone width, in a page of its own so the desktop page keeps its state."""
        phone = context.new_page()
        try:
            phone.set_viewport_size(PHONE)
            phone.goto(url)
            return self.shoot(phone, f"{name}-phone")
        finally:
            phone.close()


# How much wider than the window the page is, and the outermost elements that stick out (those whose
# parent fits): where the layout breaks, rather than everything inside it.
_OVERFLOW_JS = """() => {
  const width = window.innerWidth, page = document.documentElement.scrollWidth;
  if (page <= width) return "";
  const classes = (el) => typeof el.className === "string" ? el.className.trim().split(/\\s+/).filter(Boolean) : [];
  const name = (el) => [el.tagName.toLowerCase() + (el.id ? "#" + el.id : ""), ...classes(el)].join(".");
  const out = [...document.body.querySelectorAll("*")].filter((el) => {
    const right = el.getBoundingClientRect().right;
    const parent = el.parentElement && el.parentElement.getBoundingClientRect().right;
    return right > width + 1 && !(parent > width + 1);
  }).slice(0, 4).map((el) => `${name(el)} (right edge ${Math.round(el.getBoundingClientRect().right)})`);
  return `${page}px wide in a ${width}px window; sticking out: ${out.join(", ")}`;
}"""


def layout_problems(page: Page) -> list[str]:
    """What does not fit on the page as it is now drawn, in words (empty when everything fits)."""
    overflow = page.evaluate(_OVERFLOW_JS)
    return ([overflow] if overflow else []) + page.evaluate(_CLIPPED_JS)


# Content cut off inside a page that fits the window, which _OVERFLOW_JS cannot see:
# 1. a box that hides what overflows it sideways (overflow hidden or clip) and has more than it shows;
# 2. an element whose right edge is past its card's (.card, .model-card), with nothing between them that
#    scrolls: the card clips it, or it spills out of the card's frame.
# What is cut off on purpose is left out: boxes that scroll (overflow auto/scroll: a table in .table-scroll,
# a <pre>), text ended with an ellipsis, text pushed out of its box to show an icon instead (a negative
# text-indent, as the Django admin's selector buttons do), form fields (they scroll their own text), and
# what is not drawn (display none, a closed <details>, visually-hidden text of 1 px). Each problem is
# reported once, at the outermost element that has it (the first few of each kind).
_CLIPPED_JS = """() => {
  const LIMIT = 4, SLACK = 1;
  const classes = (el) => typeof el.className === "string" ? el.className.trim().split(/\\s+/).filter(Boolean) : [];
  const name = (el) => [el.tagName.toLowerCase() + (el.id ? "#" + el.id : ""), ...classes(el)].join(".");
  const text = (el) => (el.textContent || "").trim().replace(/\\s+/g, " ").slice(0, 40);
  const scrolls = (el) => ["auto", "scroll"].includes(getComputedStyle(el).overflowX);
  const hides = (el) => ["hidden", "clip"].includes(getComputedStyle(el).overflowX);
  const drawn = (el) => {
    const box = el.getBoundingClientRect();
    return box.width > SLACK && box.height > SLACK && el.checkVisibility({visibilityProperty: true});
  };
  const scrollsBetween = (el, card) => {
    for (let node = el.parentElement; node && node !== card; node = node.parentElement) {
      if (scrolls(node)) return true;
    }
    return false;
  };
  const clipping = [], spilling = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (el.matches("input, textarea, select, option") || !drawn(el)) continue;
    const style = getComputedStyle(el);
    const onPurpose = style.textOverflow === "ellipsis" || parseFloat(style.textIndent) < 0;
    if (hides(el) && !onPurpose && el.scrollWidth > el.clientWidth + SLACK
        && !clipping.some((outer) => outer.el.contains(el))) {
      clipping.push({el, hidden: el.scrollWidth - el.clientWidth});
    }
    const card = el.parentElement && el.parentElement.closest(".card, .model-card");
    if (!card || scrollsBetween(el, card)) continue;
    const edge = card.getBoundingClientRect().right, right = el.getBoundingClientRect().right;
    const parent = el.parentElement;
    const parentSpills = parent !== card && parent.getBoundingClientRect().right > edge + SLACK;
    if (right > edge + SLACK && !parentSpills) spilling.push({el, card, by: right - edge});
  }
  return [
    ...clipping.slice(0, LIMIT).map(({el, hidden}) =>
      `${name(el)} clips ${Math.round(hidden)}px of its content sideways ("${text(el)}")`),
    ...spilling.slice(0, LIMIT).map(({el, card, by}) =>
      `${name(el)} reaches ${Math.round(by)}px past the right edge of its card ${name(card)} ("${text(el)}")`),
  ];
}"""


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@pytest.fixture(scope="module")
def camera() -> Camera:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):  # only this run's pictures, so none is mistaken for a new one
        old.unlink()
    return Camera(SCREENSHOTS)


@pytest.fixture
def browser_problems() -> list[str]:
    """What went wrong beneath the pages, which a screenshot may not show: a server error (5xx)
    on any request (htmx ones too), an uncaught script error, an error in the console, anything the
    Content-Security-Policy refused, a request to any other site than the portal. The test asserts
    there are none; they are also printed, so a failure elsewhere shows them too."""
    problems: list[str] = []
    yield problems
    for problem in problems:
        print(problem)


@pytest.fixture
def open_as(browser, portal, browser_problems):
    """`open_as(user)`: a page in a fresh browser context, signed in with a session cookie (the test
    Client's force_login); `open_as(None)`: an anonymous visitor. Contexts are closed afterwards."""
    contexts: list[BrowserContext] = []

    def make(user=None) -> Page:
        context = browser.new_context(base_url=portal.url, viewport=DESKTOP)
        contexts.append(context)
        if user is not None:
            context.add_cookies([_session_cookie(user, portal.url)])
        _watch(context, browser_problems, portal.url)
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        return page

    yield make
    for context in contexts:
        context.close()


def _watch(context: BrowserContext, problems: list[str], origin: str) -> None:
    def on_request(request) -> None:
        if not request.url.startswith((origin + "/", "data:", "blob:")):
            problems.append(f"a request to another site: {request.method} {request.url} (from {request.frame.url})")

    def on_response(response) -> None:
        if response.status >= 500:
            problems.append(f"HTTP {response.status} {response.request.method} {response.url}")

    def on_violation(source, violation: dict) -> None:
        problems.append("CSP violation on {page}: {directive} refused {blocked} ({where}) {sample}".format(
            page=source["page"].url, directive=violation["directive"], blocked=violation["blocked"] or "inline",
            where=violation["where"], sample=violation["sample"]).rstrip())

    # Every Content-Security-Policy violation in any page of this context, as the page's own event reports
    # it (Playwright's init scripts and bindings are not subject to the page's policy).
    context.expose_binding("reportCspViolation", on_violation)
    context.add_init_script(_CSP_WATCH_JS)

    def on_page(page: Page) -> None:
        page.on("pageerror", lambda error: problems.append(f"script error on {page.url}: {error}"))
        page.on("console", lambda message: message.type == "error" and problems.append(
            f"console error on {page.url}: {message.text}"))

    context.on("request", on_request)
    context.on("response", on_response)
    context.on("page", on_page)


_CSP_WATCH_JS = """document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation({
    directive: event.effectiveDirective, blocked: event.blockedURI, sample: event.sample || "",
    where: `${event.sourceFile || event.documentURI}:${event.lineNumber}:${event.columnNumber}`,
  });
});"""


def _session_cookie(user, url: str) -> dict:
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return {"name": name, "value": client.cookies[name].value, "url": url}

