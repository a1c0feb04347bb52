"""The monitoring panel of a deployment's page (monitoring.views.panel, monitoring.selectors.chart_data):
who sees it (whoever sees the deployment: its creator, operators, admins; 404 for anyone else, the sign-in
page for anonymous visitors), the shape of the chart data from a day of samples with swaps and alerts, and
what it says when there is nothing to draw yet. That the charts render is shown in Chromium
(tests/e2e/test_monitoring_charts.py)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from acumos_portal.choices import JobStatus
from deployment.choices import DeploymentStatus, OperationKind
from monitoring import selectors
from monitoring.choices import AlertState, RuleKind, Variant
from monitoring.models import Alert, AlertRule, Sample

from ..factories import DeploymentFactory, OperationFactory, RevisionFactory, SolutionFactory

pytestmark = pytest.mark.django_db
DRIFT_FIELDS = ("classify.sepal_length", "classify.sepal_width", "classify.petal_length", "classify.petal_width")


def a_day_of_samples(deployment, *, now, hours: float = 24, interval: int = 60,
                     variants=(Variant.LIVE, Variant.CANARY), drift_from_hour: float = 18) -> list[Sample]:
    """Samples as the collection rounds would have made them: every `interval` s for `hours` up to `now`,
    one per variant a round (the canary a second after the live one, as collected one after the other; the
    last round's last sample at `now`), traffic following the time of day (the canary a tenth of it), one
    input field (petal_length) drifting from `drift_from_hour` on and accuracy from feedback dropping then.
    Made in one bulk insert."""
    rounds = int(hours * 3600 // interval)
    start = now - timedelta(seconds=(rounds - 1) * interval)
    samples = []
    for index in range(rounds):
        at, hour = start + timedelta(seconds=index * interval), index * interval / 3600
        drifting = hour >= drift_from_hour
        for offset, variant in enumerate(variants):
            canary = variant == Variant.CANARY
            requests = int((300 + 200 * math.sin(hour / 24 * 2 * math.pi)) * (0.1 if canary else 1))
            samples.append(Sample(
                deployment=deployment, at=at - timedelta(seconds=len(variants) - 1 - offset), variant=variant,
                generation=1, requests=requests, errors=requests // 200,
                p50_ms=8 + 2 * math.sin(hour) + (3 if canary else 0),
                p99_ms=30 + 6 * math.sin(hour * 1.3) + (index * 7919 % 11) + (12 if canary else 0),
                drift=_drift(hour, drift_from_hour),
                quality={"classify.species": {"metric": "accuracy", "value": 0.85 if drifting else 0.95,
                                              "count": 100 + index}}))
    return Sample.objects.bulk_create(samples)


def _drift(hour: float, drift_from_hour: float) -> dict:
    def score(i: int) -> float:
        grown = 0.3 * (hour - drift_from_hour) / 6 if hour >= drift_from_hour and i == 2 else 0
        return round(0.02 + 0.01 * (i % 3) + grown, 4)

    return {name: {"score": score(i), "threshold": 0.1, "drifted": score(i) > 0.1, "measure": "psi"}
            for i, name in enumerate(DRIFT_FIELDS)}


@pytest.fixture
def deployment(owner):
    revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris"), version="1.0.0")
    return DeploymentFactory(name="iris", revision=revision, created_by=owner, status=DeploymentStatus.RUNNING,
                             endpoint_url="http://127.0.0.1:9")


def swap(deployment, *, finished, version: str, kind=OperationKind.SWAP, status=JobStatus.SUCCEEDED, by=None):
    revision = (deployment.revision if version == deployment.revision.version
                else RevisionFactory(solution=deployment.revision.solution, version=version))
    return OperationFactory(deployment=deployment, kind=kind, status=status, revision=revision,
                            previous_revision=deployment.revision, finished=finished, requested_by=by)


def url(deployment) -> str:
    return reverse("monitoring:panel", args=[deployment.pk])


# ---------------------------------------------------------------- who sees it


@pytest.mark.parametrize(("persona", "status"), [
    ("owner", 200), ("operator", 200), ("admin_user", 200), ("other_user", 404), ("publisher", 404),
])
def test_whoever_sees_the_deployment_sees_its_panel_and_nobody_else(request, client_for, deployment, persona, status):
    user = request.getfixturevalue(persona)
    answer = client_for(user).get(url(deployment), headers={"HX-Request": "true"})
    assert answer.status_code == status
    page = client_for(user).get(reverse("deployment:detail", args=[deployment.pk]))
    assert page.status_code == status  # the same who-may-see as the deployment's page
    if status == 200:
        assert 'id="monitoring"' in answer.content.decode()


def test_an_anonymous_visitor_is_sent_to_sign_in(client_for, deployment):
    answer = client_for(None).get(url(deployment))
    assert answer.status_code == 302
    assert answer["Location"].startswith(reverse("accounts:login")) and url(deployment) in answer["Location"]


def test_it_answers_get_only(client_for, owner, deployment):
    assert client_for(owner).post(url(deployment)).status_code == 405


# ---------------------------------------------------------------- the page and the fragment


def test_the_deployment_page_loads_the_panel_with_htmx_and_links_it_without(client_for, owner, deployment):
    page = client_for(owner).get(reverse("deployment:detail", args=[deployment.pk])).content.decode()
    assert f'hx-get="{url(deployment)}" hx-trigger="load"' in page
    assert f'<a href="{url(deployment)}">' in page  # without JavaScript: the panel on a page of its own
    for asset in ("vendor/uplot/uPlot.iife.min.js", "vendor/uplot/uPlot.min.css", "js/monitoring.js",
                  "css/monitoring.css"):
        assert asset in page


def test_htmx_gets_the_panel_alone_refreshing_itself_and_a_browser_a_whole_page(client_for, owner, deployment):
    a_day_of_samples(deployment, now=timezone.now(), hours=1)
    fragment = client_for(owner).get(url(deployment), headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment and 'hx-trigger="every 60s"' in fragment
    # In an attribute, not a <script>: htmx removes those from what it swaps in.
    assert '<div id="monitoring-data" hidden data-json="{&quot;since&quot;:' in fragment and "<script" not in fragment
    assert fragment.count('data-chart="') == 4
    whole = client_for(owner).get(url(deployment)).content.decode()
    assert "<html" in whole and "vendor/uplot/uPlot.iife.min.js" in whole and 'id="monitoring-data"' in whole


def test_the_panel_says_the_latest_figures_in_words_beside_each_chart(client_for, owner, deployment):
    # The last round 3 minutes into a 5-minute bucket, so that the last point holds 4 rounds.
    seconds = (timezone.now().timestamp() // 300 - 1) * 300 + 181
    now = datetime.fromtimestamp(seconds, tz=UTC)
    a_day_of_samples(deployment, now=now)
    html = client_for(owner).get(url(deployment), headers={"HX-Request": "true"}).content.decode()
    for chart in ("traffic", "errors", "drift", "quality"):
        assert f'aria-describedby="chart-{chart}-summary"' in html and f'id="chart-{chart}-summary"' in html
    panel = selectors.panel(deployment)
    summaries = panel["summaries"]
    assert "Live:" in summaries["traffic"] and "Canary:" in summaries["traffic"]
    # Of the last point (its 5 minutes' rounds), as the legend shows it when the pointer is elsewhere.
    assert summaries["traffic"].startswith("From ") and " UTC: Live: " in summaries["traffic"]
    last_p99 = panel["chart_data"]["traffic"]["live"]["p99"][-1]
    assert f"p99 {last_p99:.0f} ms;" in summaries["traffic"]
    assert "requests/s" in summaries["traffic"]
    assert "p99" in summaries["traffic"] and "errors (" in summaries["errors"]
    # One field drifted past its threshold; the other three are named as below theirs.
    assert summaries["drift"].startswith("Past the threshold now: classify.petal_length")
    assert "The other 3 fields below their thresholds" in summaries["drift"]
    assert summaries["quality"].startswith("classify.species: accuracy 0.85 on")
    for sentence in summaries.values():
        assert sentence in html
    assert "collected every minute, drawn 5 min a point" in html and "p99 the worst of each point" in html


def test_without_drift_scores_or_feedback_those_charts_say_why_instead(client_for, owner, deployment):
    Sample.objects.create(deployment=deployment, at=timezone.now(), requests=120, errors=3, p50_ms=5, p99_ms=20)
    html = client_for(owner).get(url(deployment), headers={"HX-Request": "true"}).content.decode()
    assert 'data-chart="traffic"' in html and 'data-chart="errors"' in html
    assert 'data-chart="drift"' not in html and 'data-chart="quality"' not in html
    assert "No drift scores yet: the runner compares inputs with its reference once it has enough of them." in html
    assert "No quality figures yet: they come from feedback" in html
    assert "Live: 2 requests/s, p50 5.0 ms, p99 20 ms." in html and "Live: 2.5 % errors (3 of 120 requests)." in html


# ---------------------------------------------------------------- the data


def test_a_day_of_two_variants_with_swaps_and_alerts_makes_one_aligned_time_axis(owner, deployment):
    now = timezone.now().replace(microsecond=0)
    a_day_of_samples(deployment, now=now)
    swap(deployment, finished=now - timedelta(hours=20), version="1.1.0", by=owner)
    swap(deployment, finished=now - timedelta(hours=2), version="1.0.0", kind=OperationKind.ROLLBACK)
    swap(deployment, finished=now - timedelta(hours=3), version="9.9.9", status=JobStatus.FAILED)  # served nothing
    swap(deployment, finished=now - timedelta(days=3), version="0.9.0")  # before the range
    rule = AlertRule.objects.create(deployment=deployment, kind=RuleKind.DRIFT, threshold=0.1, windows=3)
    AlertRule.objects.create(deployment=deployment, kind=RuleKind.ERROR_RATE, threshold=0.05)
    AlertRule.objects.create(deployment=deployment, kind=RuleKind.P99, threshold=500, enabled=False)
    Alert.objects.create(rule=rule, deployment=deployment, fired_at=now - timedelta(hours=5),
                         summary="classify.petal_length drifted (PSI 0.41 > 0.1) for 3 rounds")
    Alert.objects.create(rule=rule, deployment=deployment, state=AlertState.RESOLVED,
                         fired_at=now - timedelta(hours=30), resolved_at=now - timedelta(hours=23), summary="old one")
    Alert.objects.create(rule=rule, deployment=deployment, state=AlertState.RESOLVED,
                         fired_at=now - timedelta(days=3), resolved_at=now - timedelta(days=2), summary="long gone")

    data = selectors.chart_data(deployment, until=now, points=1440)  # every round a point
    json.dumps(data)  # JSON-ready as it is

    assert data["samples"] == 2 * 1440 and len(data["t"]) == 1440  # a round's two variants share one time
    assert data["t"] == sorted(data["t"]) and data["t"][-1] == now.timestamp() - 1  # the live sample's time
    assert data["variants"] == ["live", "canary"]
    for variant in ("live", "canary"):
        for series in ("rps", "error_rate", "p50", "p99"):
            assert len(data["traffic"][variant][series]) == 1440
    live = data["traffic"]["live"]
    assert live["rps"][-1] == pytest.approx(Sample.objects.filter(variant="live").last().requests / 60, rel=1e-3)
    assert data["traffic"]["canary"]["rps"][-1] < live["rps"][-1] / 5
    assert 0 < live["error_rate"][-1] < 0.01 and live["p99"][-1] >= 30

    drift = data["drift"]
    assert [f["name"] for f in drift["fields"]][0] == "classify.petal_length"  # furthest past its threshold first
    assert sorted(f["name"] for f in drift["fields"]) == sorted(DRIFT_FIELDS)
    assert {f["threshold"] for f in drift["fields"]} == {0.1} and drift["measures"] == ["psi"]
    assert all(len(f["values"]) == 1440 for f in drift["fields"]) and drift["more"] == 0
    assert data["quality"]["fields"][0]["name"] == "classify.species"
    assert data["quality"]["fields"][0]["latest"] == pytest.approx(0.85)

    # saved or default, enabled (the disabled p99 rule draws no bound); drift's rule is a share of fields, no score line
    assert data["rules"] == {"error_rate": 0.05, "quality": 0.8}
    assert [(s["kind"], s["version"]) for s in data["swaps"]] == [("swap", "1.1.0"), ("rollback", "1.0.0")]
    assert data["swaps"][0]["label"] == "Swapped to Iris 1.1.0" and data["swaps"][0]["by"] == "owner"
    assert data["swaps"][1]["label"] == "Rolled back to Iris 1.0.0" and data["swaps"][1]["by"] == "user"
    assert [(a["summary"], a["firing"]) for a in data["alerts"]] == [
        ("classify.petal_length drifted (PSI 0.41 > 0.1) for 3 rounds", True), ("old one", False)]


def test_a_day_is_folded_into_five_minute_buckets_that_keep_the_worst_p99_and_add_up_the_counts(deployment):
    now = timezone.now().replace(microsecond=0)
    samples = [s for s in a_day_of_samples(deployment, now=now) if s.variant == Variant.LIVE]
    data = selectors.chart_data(deployment, until=now)
    assert data["step"] == 300 and 288 <= len(data["t"]) <= 289 <= selectors.MOST_POINTS
    # The buckets are whole five minutes since the epoch (the same at every refresh), each at its latest round.
    t = data["t"][10]
    inside = [s for s in samples if t - 300 < s.at.timestamp() <= t and s.at.timestamp() // 300 == t // 300]
    assert len(inside) == 5 and inside[-1].at.timestamp() == t
    live = data["traffic"]["live"]
    assert live["p99"][10] == pytest.approx(max(s.p99_ms for s in inside), abs=0.01)
    assert live["p50"][10] == pytest.approx(sum(s.p50_ms for s in inside) / 5, abs=0.01)
    assert live["rps"][10] == pytest.approx(sum(s.requests for s in inside) / 300, abs=0.001)
    assert live["error_rate"][10] == pytest.approx(sum(s.errors for s in inside) / sum(s.requests for s in inside),
                                                   abs=1e-5)
    drift = {f["name"]: f["values"] for f in data["drift"]["fields"]}["classify.petal_length"]
    assert drift[-1] == max(s.drift["classify.petal_length"]["score"] for s in samples[-5:]
                            if s.at.timestamp() // 300 == samples[-1].at.timestamp() // 300)


def test_the_data_takes_four_queries_whatever_the_number_of_samples(deployment):
    now = timezone.now()
    a_day_of_samples(deployment, now=now, hours=1)
    with CaptureQueriesContext(connection) as few:
        selectors.chart_data(deployment, until=now)
    a_day_of_samples(deployment, now=now - timedelta(hours=1), hours=5)
    with CaptureQueriesContext(connection) as many:
        data = selectors.chart_data(deployment, until=now)
    assert data["samples"] == 2 * 6 * 60
    assert len(few) == len(many) == 4  # samples, rules, swaps, alerts
    sample_query = next(q["sql"] for q in many if "monitoring_sample" in q["sql"])
    assert '"drift"' in sample_query and '"generation"' not in sample_query  # only the columns drawn


def test_a_time_without_samples_breaks_the_lines_instead_of_bridging_it(deployment):
    now = timezone.now().replace(microsecond=0)
    a_day_of_samples(deployment, now=now, hours=1, variants=(Variant.LIVE,))
    a_day_of_samples(deployment, now=now - timedelta(hours=3), hours=1, variants=(Variant.LIVE,))
    data = selectors.chart_data(deployment, until=now)
    breaks = [i for i, rps in enumerate(data["traffic"]["live"]["rps"]) if rps is None]
    assert len(breaks) == 1 and len(data["t"]) == 121
    assert data["t"][breaks[0]] == data["t"][breaks[0] - 1] + 60  # one interval after the last sample before it
    assert all(f["values"][breaks[0]] is None for f in data["drift"]["fields"])


def test_a_canary_that_joined_later_has_nothing_before_it(deployment):
    now = timezone.now().replace(microsecond=0)
    a_day_of_samples(deployment, now=now, hours=2, variants=(Variant.LIVE,))
    a_day_of_samples(deployment, now=now, hours=1, variants=(Variant.CANARY,))
    data = selectors.chart_data(deployment, until=now)
    canary = data["traffic"]["canary"]["p99"]
    assert len(data["t"]) == 120 and canary[:60] == [None] * 60 and None not in canary[60:]


def test_many_drifting_fields_draw_the_worst_and_count_the_rest(deployment):
    now = timezone.now()
    drift = {f"classify.f{i:02d}": {"score": i / 100, "threshold": 0.1, "drifted": i > 10, "measure": "psi"}
             for i in range(20)}
    Sample.objects.create(deployment=deployment, at=now, requests=10, drift=drift)
    data = selectors.chart_data(deployment)["drift"]
    assert len(data["fields"]) == selectors.MOST_DRIFT_FIELDS and data["more"] == 20 - selectors.MOST_DRIFT_FIELDS
    assert data["fields"][0]["name"] == "classify.f19" and data["more_drifted"] == 1  # f11
    assert "12 more fields not drawn, 1 of them drifted." in selectors.panel(deployment)["summaries"]["drift"]


# ---------------------------------------------------------------- nothing to draw yet


def test_a_live_deployment_without_figures_says_when_the_first_round_comes(client_for, owner, deployment):
    html = client_for(owner).get(url(deployment), headers={"HX-Request": "true"}).content.decode()
    assert "data-monitoring-empty" in html and 'data-chart="' not in html and "monitoring-data" not in html
    assert "No figures yet. The portal&#x27;s scheduler collects them every minute: the first round comes within " \
           "a minute of it running." in html
    # Once any deployment was collected, the next round's time is known.
    other = DeploymentFactory(status=DeploymentStatus.RUNNING)
    last_round = timezone.now() - timedelta(seconds=20)
    Sample.objects.create(deployment=other, at=last_round, requests=1)
    empty = selectors.panel(deployment)["empty"]
    due = timezone.localtime(last_round + timedelta(seconds=60))
    assert empty == (f"No figures yet. The first collection round for it is due at about {due:%Y-%m-%d %H:%M} UTC "
                     "(rounds run every minute); the charts appear then.")


def test_a_stopped_deployment_says_figures_come_while_it_runs(deployment):
    deployment.status = DeploymentStatus.STOPPED
    assert selectors.panel(deployment)["empty"] == (
        "No figures: they are collected while the deployment runs, and it is stopped.")


def test_figures_older_than_the_range_are_named(deployment):
    Sample.objects.create(deployment=deployment, at=timezone.now() - timedelta(days=2), requests=1)
    assert selectors.panel(deployment)["empty"].startswith("No figures in this range: the latest are from ")


def test_the_interval_is_the_sites(settings, deployment):
    settings.ACUMOS_MONITORING_INTERVAL_SECONDS = 300
    assert selectors.collection_interval() == 300
    assert "every 5 min" in selectors.panel(deployment)["empty"]


def test_field_names_a_hostile_model_chose_reach_the_page_only_as_text(client_for, owner, deployment):
    """Field names come from the model's proto and the runner's answers: the model's author chose them."""
    hostile = 'classify.<img src=x onerror="alert(1)">'
    Sample.objects.create(deployment=deployment, at=timezone.now(), requests=30, errors=0, p50_ms=1.0, p99_ms=2.0,
                          drift={hostile: {"score": 0.5, "threshold": 0.1, "drifted": True, "measure": "psi"}},
                          quality={hostile: {"metric": "accuracy", "value": 0.5, "count": 40}})
    html = client_for(owner).get(url(deployment), headers={"HX-Request": "true"}).content.decode()
    assert "<img src=x" not in html and 'onerror="alert' not in html
    assert "&lt;img src=x onerror=" in html  # in the summaries and the chart data, escaped
