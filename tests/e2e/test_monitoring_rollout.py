"""The rollout section of a deployment's monitoring panel, in Chromium, while a canary rollout runs: the deployment
follows its model and rolls new versions out as a canary (10 %, then 50 %); its candidate Iris 1.2.0 has been at
10 % for two collection rounds, with samples of the live model and of the candidate since the step began (made in
the database, as the collection rounds would have: no runner needed), and two earlier rollouts ended (one promoted
by its gates, one rolled back by its error-rate gate).

Its creator sees the mode and gates in words, the candidate's and the live model's figures side by side (the
numbers summed from the samples of this step only), the weight and step, what the step waits for, Promote now
and Abort, and the last rollouts with their states and reasons; the section fits a phone. Abort (after its
confirm question) ends the rollout and records the runner change as an operation (which fails in the background
here: no runner listens). Nobody else sees the deployment at all: another user is told it does not exist, a
visitor who is not signed in is sent to sign in. Screenshots: test-output/e2e/monitoring-rollout/; nothing
refused by the Content-Security-Policy, no script error."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from acumos_portal.choices import UNFINISHED, JobStatus
from deployment.choices import DeploymentStatus, OperationKind, RolloutMode, RolloutState
from deployment.models import Operation, Rollout
from monitoring.choices import Variant
from monitoring.models import Sample
from tests.factories import DeploymentFactory, RevisionFactory, SolutionFactory

from .conftest import PHONE, SCREENSHOTS, Camera
from .test_marketplace_walk import too_wide
from .test_monitoring_charts import shoot

pytestmark = pytest.mark.django_db(transaction=True)

LIVE_GENERATION, CANDIDATE_GENERATION = 6, 7
# What the gates said after the step's second round (monitoring.rollouts.judge's words for these figures).
PROGRESS = ("canary at 10 % (step 1 of 2): every gate held over 250 requests (error rate 1.2 %, p99 61.5 ms, "
            "accuracy 93.0 %); quality not judged (17 of 30 answers with feedback) so far; round 2 of 3")
ROLLED_BACK = ("canary at 10 % (step 1 of 2): error rate 9.6 % (24 of 250 requests) over the 5.0 % allowed "
               "(the live model: 0.3 % errors over 2210 requests); rolled back")
PROMOTED = "canary at 50 % (step 2 of 2): every gate held over 3120 requests (error rate 0.4 %, p99 52 ms) in 3 rounds"


@pytest.fixture(scope="module")
def camera() -> Camera:
    folder = SCREENSHOTS / "monitoring-rollout"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return Camera(folder)


@pytest.fixture
def rolling(owner):
    """A running deployment of Iris 1.1.0 that follows Iris and rolls new versions out as a canary, with the
    accuracy gate on (90 %); Iris 1.2.0 at 10 % since 2.5 minutes ago. Before: 1.1.0 promoted two days ago,
    1.1.1 rolled back yesterday. Samples: the live model every minute for half an hour before the step (not
    counted), then two rounds of the live model and the candidate since the step began."""
    now = timezone.now().replace(microsecond=0)
    solution = SolutionFactory(owner=owner, name="Iris")
    versions = {version: RevisionFactory(solution=solution, version=version)
                for version in ("1.0.0", "1.1.0", "1.1.1", "1.2.0")}
    deployment = DeploymentFactory(name="iris", revision=versions["1.1.0"], created_by=owner, follows=solution,
                                   status=DeploymentStatus.RUNNING, endpoint_url="http://127.0.0.1:9",
                                   rollout_mode=RolloutMode.CANARY, rollout_steps=[10, 50],
                                   rollout_gates={"min_quality": 0.9})
    ended = {RolloutState.PROMOTED: ("1.1.0", "1.0.0", now - timedelta(days=2), [10, 50], 1, PROMOTED),
             RolloutState.ROLLED_BACK: ("1.1.1", "1.1.0", now - timedelta(days=1), [10, 50], 0, ROLLED_BACK)}
    for state, (version, previous, finished, weights, step, reason) in ended.items():
        Rollout.objects.create(deployment=deployment, revision=versions[version], previous_revision=versions[previous],
                               mode=RolloutMode.CANARY, weights=weights, step=step, gates=deployment.gates,
                               state=state, reason=reason, finished=finished, candidate_generation=LIVE_GENERATION - 1,
                               step_started_at=finished - timedelta(minutes=4))
    step_started = now - timedelta(seconds=150)
    rollout = Rollout.objects.create(
        deployment=deployment, revision=versions["1.2.0"], previous_revision=versions["1.1.0"],
        mode=RolloutMode.CANARY, weights=[10, 50], step=0, gates=deployment.gates, state=RolloutState.RUNNING,
        candidate_generation=CANDIDATE_GENERATION, step_started_at=step_started, progress=PROGRESS)

    samples = [Sample(deployment=deployment, at=now - timedelta(minutes=minutes), variant=Variant.LIVE,
                      generation=LIVE_GENERATION, requests=1150 + 7 * (minutes % 5), errors=minutes % 3,
                      p50_ms=11.5 + (minutes % 4) / 4, p99_ms=44 + minutes % 6)
               for minutes in range(30, 2, -1)]
    quality = {"classify.species": {"metric": "accuracy", "value": 0.93, "count": 17}}
    live_quality = {"classify.species": {"metric": "accuracy", "value": 0.955, "count": 412}}

    def figures(requests, errors, p50_ms, p99_ms) -> dict:
        return {"requests": requests, "errors": errors, "p50_ms": p50_ms, "p99_ms": p99_ms}

    # The canary takes a tenth of the traffic; its sample is collected a second after the live one.
    for seconds, live, candidate in ((120, figures(1084, 3, 11.8, 46.0), figures(121, 1, 13.9, 57.0)),
                                     (60, figures(1092, 4, 12.1, 48.5), figures(129, 2, 14.4, 61.5))):
        at = now - timedelta(seconds=seconds)
        samples.append(Sample(deployment=deployment, at=at, variant=Variant.LIVE, generation=LIVE_GENERATION,
                              quality=live_quality, **live))
        samples.append(Sample(deployment=deployment, at=at + timedelta(seconds=1), variant=Variant.CANARY,
                              generation=CANDIDATE_GENERATION, quality=quality, **candidate))
    Sample.objects.bulk_create(samples)
    return deployment, rollout


def open_rollout(page: Page, deployment) -> None:
    """The deployment's page; htmx loads the panel, then the section below it."""
    page.goto(reverse("deployment:detail", args=[deployment.pk]))
    expect(page.locator("#monitoring .uplot").first).to_be_visible()
    expect(page.locator("#monitoring-rollout")).to_be_visible()


def row(page: Page, heading: str):
    """The cells of the variants table's row headed `heading` (the live model's, then the candidate's)."""
    table = page.locator(".monitoring-rollout__variants")
    return table.locator("tbody tr").filter(has=page.get_by_role("rowheader", name=heading, exact=True)).locator("td")


def test_the_creator_sees_the_running_canary_beside_the_live_model_and_aborts_it(
        open_as, browser_problems, camera, owner, rolling):
    deployment, rollout = rolling
    page = open_as(owner)
    open_rollout(page, deployment)
    section = page.locator("#monitoring-rollout")
    expect(section.get_by_role("heading", name="Rollout of new versions")).to_be_visible()

    # How new versions arrive, and the gates in words.
    expect(section.locator("[data-rollout-said]")).to_have_text(
        "Canary: a new ready version first answers a share of the requests (10 %, then 50 %), each step judged by "
        "the gates; after the last one it is promoted, and a failing gate rolls it back.")
    expect(section.locator(".monitoring-rollout__gates li")).to_have_text([
        "At least 100 requests answered by the candidate and 3 collection rounds per step",
        "Error rate at most 5 %",
        "p99 latency at most 1000 ms",
        "Accuracy from feedback at least 90 %, once 30 answers have their truth",
    ])

    # The running rollout: what, at which weight and step, since when, what it waits for.
    running = section.locator(f'[data-rollout="{rollout.pk}"]')
    expect(running.get_by_role("heading", name="Running: Iris 1.2.0")).to_be_visible()
    expect(running.locator(".badge")).to_have_text("Canary")
    since = timezone.localtime(rollout.step_started_at).strftime("%Y-%m-%d %H:%M:%S")
    expect(running.locator(".monitoring-rollout__step")).to_have_text(
        f"Canary at 10 % of the requests (step 1 of 2), since {since}.")
    expect(running.locator("[data-rollout-progress]")).to_have_text(PROGRESS[0].upper() + PROGRESS[1:])

    # Side by side: the live model, then the candidate, each named with its version; this step's figures only
    # (the live model's half hour before it is left out).
    table = running.locator(".monitoring-rollout__variants")
    expect(table.locator('thead th[data-variant="live"]')).to_have_accessible_name("Live Iris 1.1.0")
    expect(table.locator('thead th[data-variant="candidate"]')).to_have_accessible_name("Candidate Iris 1.2.0")
    expect(row(page, "Requests")).to_have_text(["2176", "250"])  # 1084 + 1092; 121 + 129
    expect(row(page, "Error rate")).to_have_text(["0.3 %", "1.2 %"])  # 7 of 2176; 3 of 250
    expect(row(page, "p50 latency")).to_have_text(["12.1 ms", "14.4 ms"])  # each one's latest
    expect(row(page, "p99 latency")).to_have_text(["48.5 ms", "61.5 ms"])
    expect(row(page, "Accuracy from feedback")).to_have_text(["95.5 % (412 answers)", "93.0 % (17 answers)"])
    expect(table).not_to_contain_text("Agreement")  # a canary's answers are not compared with the live ones
    live, candidate = (table.locator(f'thead th[data-variant="{v}"]').bounding_box() for v in ("live", "candidate"))
    assert abs(live["y"] - candidate["y"]) < 1 and candidate["x"] >= live["x"] + live["width"] - 1, (live, candidate)

    # Its creator may decide: both buttons, Promote enabled (the runners hold the candidate).
    expect(running.get_by_role("button", name="Promote now")).to_be_enabled()
    expect(running.get_by_role("button", name="Abort")).to_be_enabled()
    expect(section.get_by_text("Promote once the runners hold the candidate")).to_have_count(0)

    # The last rollouts, newest first, with their states and reasons.
    ended = section.locator("[data-ended-rollout]")
    expect(ended).to_have_count(2)
    expect(ended.nth(0).locator(".badge")).to_have_text("Rolled back")
    expect(ended.nth(0)).to_contain_text("Iris 1.1.1 · canary · ")
    expect(ended.nth(0).locator(".monitoring-rollout__reason")).to_have_text(ROLLED_BACK[0].upper() + ROLLED_BACK[1:])
    expect(ended.nth(1).locator(".badge")).to_have_text("Promoted")
    expect(ended.nth(1)).to_contain_text("Iris 1.1.0 · canary · ")
    expect(ended.nth(1).locator(".monitoring-rollout__reason")).to_have_text(PROMOTED[0].upper() + PROMOTED[1:])
    expect(ended.filter(has_text=" · by ")).to_have_count(0)  # the gates decided both: nobody is named

    shoot(section, camera, "desktop-rollout-section-running")
    camera.shoot(page, "desktop-deployment-page-running")
    see_it_on_a_phone(page, deployment, camera)

    abort(page, camera, deployment, rollout, owner)

    problems = browser_problems + too_wide(camera)
    assert problems == [], "\n".join(problems)


def see_it_on_a_phone(page: Page, deployment, camera: Camera) -> None:
    """The same section at phone width: the two columns of figures still side by side, with no sideways scroll."""
    phone = page.context.new_page()
    try:
        phone.set_viewport_size(PHONE)
        open_rollout(phone, deployment)
        section = phone.locator("#monitoring-rollout")
        expect(row(phone, "Requests")).to_have_text(["2176", "250"])
        camera.shoot(phone, "phone-deployment-page-running")
        shoot(section, camera, "phone-rollout-section-running")
        # The candidate's column is in view beside the live one's, not scrolled off to the right.
        widths = section.locator(".table-scroll").evaluate("(box) => [box.scrollWidth, box.clientWidth]")
        assert widths[0] <= widths[1], f"the figures scroll sideways on a phone: {widths[0]}px in {widths[1]}px"
        for name in ("Promote now", "Abort"):
            box = section.get_by_role("button", name=name).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], f"{name}: {box}"
    finally:
        phone.close()


def abort(page: Page, camera: Camera, deployment, rollout, owner) -> None:
    """Abort, after the question it asks ("Cancel" sends nothing): the rollout ends at once and the runner change
    is recorded as an operation, run on the portal's thread pool. No runner listens here, so that operation
    fails; the page's history says so after a reload, while the rollout stays aborted."""
    questions: list[str] = []
    sent: list[str] = []
    page.on("request", lambda request: request.method == "POST" and sent.append(request.url))
    section = page.locator("#monitoring-rollout")

    def answer(accept: bool):
        def handle(dialog) -> None:
            questions.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()
        return handle

    # "Cancel" to the question: nothing is sent.
    page.once("dialog", answer(accept=False))
    section.get_by_role("button", name="Abort").click()
    expect(section.get_by_role("button", name="Abort")).to_be_enabled()
    page.wait_for_timeout(300)  # htmx sends right after the answer: a request would be on its way by now
    assert questions == ["Abort this rollout? The candidate is dropped; the live model keeps answering."]
    assert sent == []
    assert Rollout.objects.get(pk=rollout.pk).state == RolloutState.RUNNING
    assert not Operation.objects.filter(deployment=deployment).exists()
    expect(section.get_by_role("status")).to_have_count(0)

    # "OK": aborted.
    page.once("dialog", answer(accept=True))
    section.get_by_role("button", name="Abort").click()
    expect(section.get_by_role("status")).to_have_text(
        "Aborted: the candidate is being dropped; the live model never stopped answering.")
    assert len(questions) == 2 and questions[1] == questions[0]
    assert [url.removeprefix(page.url.split("/deployments/")[0]) for url in sent] == [
        reverse("monitoring:rollout-abort", args=[deployment.pk, rollout.pk])]
    expect(section.locator("[data-rollout]")).to_have_count(0)
    expect(section.get_by_role("button", name="Promote now")).to_have_count(0)
    newest = section.locator("[data-ended-rollout]").first
    expect(newest).to_have_attribute("data-ended-rollout", str(rollout.pk))
    expect(newest.locator(".badge")).to_have_text("Aborted")
    expect(newest).to_contain_text("Iris 1.2.0 · canary · ")
    expect(newest).to_contain_text(" · by owner")
    expect(newest.locator(".monitoring-rollout__reason")).to_have_text("Aborted by owner at 10 % (step 1 of 2)")
    expect(section.locator("[data-ended-rollout]")).to_have_count(3)

    rollout.refresh_from_db()
    assert (rollout.state, rollout.decided_by, rollout.reason) == (
        RolloutState.ABORTED, owner, "aborted by owner at 10 % (step 1 of 2)")
    operation = Operation.objects.get(deployment=deployment)
    assert (operation.kind, operation.rollout_id, operation.requested_by, operation.revision.version) == (
        OperationKind.ABORT, rollout.pk, owner, "1.2.0")
    shoot(section, camera, "desktop-rollout-section-aborted")
    # The job runs on the portal's thread pool: let it end before the test does (it cannot reach a runner).
    deadline = time.monotonic() + 15
    while Operation.objects.filter(pk=operation.pk, status__in=UNFINISHED).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Rollout.objects.get(pk=rollout.pk).state == RolloutState.ABORTED  # a failed drop does not undo it
    # What a person finds on the page afterwards: the history says the runner change failed (nothing listens on
    # the endpoint here); the rollout section still says aborted.
    assert Operation.objects.get(pk=operation.pk).status == JobStatus.FAILED
    page.reload()
    history = page.locator("section", has=page.get_by_role("heading", name="History"))
    expect(history.get_by_role("row").filter(has_text="Abort candidate")).to_contain_text("Failed")
    expect(history.get_by_role("alert")).to_contain_text("the runner at http://127.0.0.1:9/model/candidate could not "
                                                         "be reached")
    expect(page.locator(f'#monitoring-rollout [data-ended-rollout="{rollout.pk}"] .badge')).to_have_text("Aborted")
    camera.shoot(page, "desktop-deployment-page-after-abort")


def test_an_operator_decides_too_and_nobody_else_sees_it(open_as, browser_problems, camera, operator, other_user,
                                                          rolling):
    """Only whoever may manage a deployment (its creator, an operator, an admin) sees it at all
    (deployment.selectors.visible_deployments is can_manage's circle): there is no one who would see the
    section without its buttons. An operator who did not create it gets them; another user is told the page
    does not exist; a visitor who is not signed in is sent to sign in."""
    deployment, rollout = rolling
    url = reverse("deployment:detail", args=[deployment.pk])
    staff = open_as(operator)
    open_rollout(staff, deployment)
    expect(row(staff, "Requests")).to_have_text(["2176", "250"])
    for name in ("Promote now", "Abort"):
        expect(staff.locator("#monitoring-rollout").get_by_role("button", name=name)).to_be_enabled()

    page = open_as(other_user)
    response = page.goto(url)
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    # Chromium logs the 404 itself as an error: the one expected here.
    assert browser_problems == [f"console error on {page.url}: Failed to load resource: the server responded with "
                                "a status of 404 (Not Found)"], browser_problems
    del browser_problems[:]
    expect(page.get_by_text("Rollout of new versions")).to_have_count(0)
    expect(page.get_by_role("button", name="Abort")).to_have_count(0)
    camera.shoot(page, "another-user-404")

    visitor = open_as(None)
    visitor.goto(url)
    assert visitor.url.endswith(f"{reverse('accounts:login')}?next={quote(url, safe='/')}"), visitor.url
    expect(visitor.get_by_text("Rollout of new versions")).to_have_count(0)
    camera.shoot(visitor, "visitor-sent-to-sign-in")

    assert Rollout.objects.get(pk=rollout.pk).state == RolloutState.RUNNING
    assert not Operation.objects.filter(deployment=deployment).exists()
    problems = browser_problems + too_wide(camera)
    assert problems == [], "\n".join(problems)
