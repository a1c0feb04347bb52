"""The monitoring charts on a deployment's page, in Chromium, at desktop and phone width: a day of samples
of a live model and a canary (made in the database, as the collection rounds would have: no runner needed),
two swaps and a rollback, a drift alert firing. The page loads the panel with htmx; the four charts are
drawn (canvases of a real size), their legends name the variants, fields and thresholds, a swap's line says
what changed when the pointer is on it, the panel refreshing itself draws it again (not twice), and nothing
is refused by the Content-Security-Policy or breaks a script. A deployment with no figures yet says when
they come. Screenshots: test-output/e2e/monitoring-charts/."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from acumos_portal.choices import JobStatus
from deployment.choices import DeploymentStatus, OperationKind
from deployment.models import Operation
from monitoring.choices import RuleKind
from monitoring.models import Alert, AlertRule
from tests.factories import DeploymentFactory, OperationFactory, RevisionFactory, SolutionFactory
from tests.monitoring.test_views import a_day_of_samples

from .conftest import DESKTOP, PHONE, SCREENSHOTS, Camera
from .test_marketplace_walk import too_wide

pytestmark = pytest.mark.django_db(transaction=True)
CHARTS = ("traffic", "errors", "drift", "quality")


@pytest.fixture(scope="module")
def camera() -> Camera:
    folder = SCREENSHOTS / "monitoring-charts"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return Camera(folder)


@pytest.fixture
def watched(owner):
    """A running deployment with a day of figures: swapped to 1.1.0 20 h ago, to 1.2.0 6 h ago, rolled back
    to 1.1.0 2 h ago; one input field drifting for the last 6 h, and the drift rule firing for it."""
    now = timezone.now().replace(microsecond=0)
    solution = SolutionFactory(owner=owner, name="Iris")
    first = RevisionFactory(solution=solution, version="1.0.0")
    deployment = DeploymentFactory(name="iris", revision=first, created_by=owner, status=DeploymentStatus.RUNNING,
                                   endpoint_url="http://127.0.0.1:9")
    a_day_of_samples(deployment, now=now)
    revisions = {"1.1.0": RevisionFactory(solution=solution, version="1.1.0"),
                 "1.2.0": RevisionFactory(solution=solution, version="1.2.0")}
    for hours, kind, version in ((20, OperationKind.SWAP, "1.1.0"), (6, OperationKind.SWAP, "1.2.0"),
                                 (2, OperationKind.ROLLBACK, "1.1.0")):
        finished = now - timedelta(hours=hours)
        operation = OperationFactory(deployment=deployment, kind=kind, status=JobStatus.SUCCEEDED,
                                     revision=revisions[version], requested_by=owner, finished=finished,
                                     started=finished - timedelta(seconds=3))
        Operation.objects.filter(pk=operation.pk).update(created=finished - timedelta(seconds=4))  # auto_now_add
    rule = AlertRule.objects.create(deployment=deployment, kind=RuleKind.DRIFT, threshold=0.1, windows=3)
    AlertRule.objects.create(deployment=deployment, kind=RuleKind.ERROR_RATE, threshold=0.02)
    Alert.objects.create(rule=rule, deployment=deployment, fired_at=now - timedelta(hours=5, minutes=50),
                         summary="Input drift on classify.petal_length: PSI 0.31 over 0.1 for 3 rounds in a row")
    return deployment


def open_deployment(page: Page, deployment) -> None:
    page.goto(reverse("deployment:detail", args=[deployment.pk]))
    expect(page.locator("#monitoring .uplot")).to_have_count(len(CHARTS))


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_four_charts_draw_a_day_with_swaps_and_alerts(viewport, open_as, browser_problems, camera, owner,
                                                           watched):
    width = "phone" if viewport == PHONE else "desktop"
    page = open_as(owner)
    page.set_viewport_size(viewport)
    open_deployment(page, watched)

    for chart in CHARTS:
        box = page.locator(f'[data-chart="{chart}"] canvas').bounding_box()
        assert box and box["width"] > 150 and box["height"] > 150, f"{chart}: canvas {box}"
        # As wide as its box (responsive), not a fixed size.
        plot = page.locator(f'[data-chart="{chart}"]').bounding_box()
        assert abs(box["width"] - plot["width"]) <= 2, f"{chart}: canvas {box['width']} in a box of {plot['width']}"
    legends = {chart: page.locator(f'[data-chart="{chart}"] .u-legend').inner_text() for chart in CHARTS}
    assert "Live req/s" in legends["traffic"] and "Canary p99" in legends["traffic"]
    assert "Live errors" in legends["errors"] and "alert bound" in legends["errors"]
    for field in ("classify.petal_length", "classify.sepal_length", "classify.sepal_width", "classify.petal_width"):
        assert field in legends["drift"]
    assert "threshold" in legends["drift"] and "classify.species (accuracy)" in legends["quality"]
    expect(page.locator("#monitoring .alert--error")).to_contain_text("Input drift on classify.petal_length")
    expect(page.locator("#chart-drift-summary")).to_contain_text("Past the threshold now: classify.petal_length")

    # The pointer on the 6-hours-ago swap's line says what changed.
    data = json.loads(page.locator("#monitoring-data").get_attribute("data-json"))
    swap = data["swaps"][1]
    figure = page.locator("figure", has=page.locator('[data-chart="drift"]'))
    figure.scroll_into_view_if_needed()
    over = page.locator('[data-chart="drift"] .u-over')
    area = over.bounding_box()
    x = area["x"] + (swap["at"] - data["t"][0]) / (data["t"][-1] - data["t"][0]) * area["width"]
    page.mouse.move(x, area["y"] + area["height"] / 2)
    tip = page.locator('[data-chart="drift"] .monitoring__tip')
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("Swapped to Iris 1.2.0")
    shoot(figure, camera, f"{width}-drift-chart-pointer-on-a-swap")
    page.mouse.move(0, 0)
    shoot(page.locator("#monitoring"), camera, f"{width}-panel")
    camera.shoot(page, f"{width}-deployment-page")

    # Every minute the panel asks for itself: the new one is drawn, the old charts let go, and the list the
    # reader opened stays open.
    page.get_by_text("What it served in this range: 3 changes").click()
    expect(page.locator("#monitoring-swaps li")).to_have_count(3)
    page.evaluate("""() => {
      const panel = document.querySelector("#monitoring");
      panel.setAttribute("data-replaced", "");
      htmx.ajax("GET", panel.getAttribute("hx-get"), {target: "#monitoring", swap: "outerHTML"});
    }""")
    expect(page.locator("#monitoring[data-replaced]")).to_have_count(0)  # a new panel came
    expect(page.locator("#monitoring .uplot")).to_have_count(len(CHARTS))
    page.wait_for_timeout(300)
    expect(page.locator(".uplot")).to_have_count(len(CHARTS))
    expect(page.locator("#monitoring-swaps")).to_have_attribute("open", "")
    expect(page.locator("#monitoring-swaps li").first).to_contain_text("Rolled back to Iris 1.1.0")

    problems = browser_problems + too_wide(camera)
    assert problems == [], "\n".join(problems)


def shoot(element: Locator, camera: Camera, name: str) -> None:
    """A part of the page alone, at full resolution, without the page's sticky header over it. (Playwright
    scrolls to an element that is not in view: where the pointer then is, is something else.)"""
    header = element.page.locator(".topbar")
    header.evaluate("(bar) => { bar.style.visibility = 'hidden'; }")
    try:
        element.screenshot(path=str(camera.folder / f"{name}.png"), animations="disabled")
    finally:
        header.evaluate("(bar) => { bar.style.visibility = ''; }")


def test_a_deployment_without_figures_says_when_they_come(open_as, browser_problems, camera, owner):
    deployment = DeploymentFactory(name="fresh", created_by=owner, revision=RevisionFactory(
        solution=SolutionFactory(owner=owner, name="Fresh")), status=DeploymentStatus.RUNNING)
    page = open_as(owner)
    page.goto(reverse("deployment:detail", args=[deployment.pk]))
    expect(page.locator("[data-monitoring-empty]")).to_contain_text("No figures yet.")
    expect(page.locator("#monitoring canvas")).to_have_count(0)
    camera.shoot(page, "desktop-no-figures-yet")
    assert browser_problems == [], "\n".join(browser_problems)
