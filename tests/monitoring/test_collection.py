"""Collecting the runners' figures into samples: real local runners answering real predictions (traffic,
errors, latency since the previous round, over two workers; drift per field once the inputs shift; quality
from feedback; a shadow candidate beside the live model), a runner that is down, retention; and the
arithmetic on its own: deltas across a runner's restart, replicas merged, the runner's answers mapped."""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from acumos_portal.choices import JobStatus
from deployment import runner_client, services
from deployment.choices import DeploymentStatus, TargetKind
from monitoring import alerts
from monitoring import services as monitoring
from monitoring.choices import Variant
from monitoring.models import Sample
from monitoring.services import Reading

from ..deployment.conftest import deployments_dir, onboarded, run  # noqa: F401 (deployments_dir: a fixture)
from ..factories import DeploymentFactory, TargetFactory
from ..images.conftest import free_port

pytestmark = pytest.mark.django_db
IRIS = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


# ---------------------------------------------------------------- real runners

@pytest.fixture
def deploy(owner, example_bundle, inline_jobs):
    """deploy(workers=1): the iris example running on this host, as the portal deploys it."""
    revision = onboarded(owner, example_bundle, inline_jobs)

    def deploy(workers: int = 1):
        target = TargetFactory(name=f"this host ({workers})", kind=TargetKind.LOCAL, options={"workers": workers})
        deployment = services.deploy(revision=revision, target=target, user=owner)
        assert run(deployment.operations.get()).status == JobStatus.SUCCEEDED
        deployment.refresh_from_db()
        return deployment

    return deploy


def predict(deployment, body: dict) -> requests.Response:
    return requests.post(f"{deployment.endpoint_url}/model/methods/classify", json=body, timeout=10)


def live_sample(deployment) -> Sample:
    return Sample.objects.filter(deployment=deployment, variant=Variant.LIVE).latest("at", "pk")


def test_a_round_counts_what_each_runner_answered_since_the_last_one_and_goes_on_past_one_that_is_down(deploy):
    deployment = deploy(workers=2)  # two workers: the runner's counters are merged over them
    down = DeploymentFactory(status=DeploymentStatus.RUNNING, endpoint_url=f"http://127.0.0.1:{free_port()}",
                             target=deployment.target)
    stopped = DeploymentFactory(status=DeploymentStatus.STOPPED, endpoint_url=deployment.endpoint_url,
                                target=deployment.target)
    for _ in range(5):
        assert predict(deployment, IRIS).status_code == 200
    assert predict(deployment, {**IRIS, "sepal_length": "x"}).status_code == 400

    first = monitoring.collect_all()

    assert (first.deployments, first.collected, first.not_answering) == (2, 1, 1)
    assert str(down.pk) in first.failures and not Sample.objects.filter(deployment__in=[down, stopped]).exists()
    sample = live_sample(deployment)
    assert (sample.requests, sample.errors, sample.generation) == (6, 1, 1)
    assert 0 < sample.p50_ms <= sample.p99_ms
    assert sample.counters[deployment.endpoint_url]["requests"] == 6

    for _ in range(3):
        assert predict(deployment, IRIS).status_code == 200
    second = monitoring.collect_all()

    assert second.collected == 1
    sample = live_sample(deployment)
    assert (sample.requests, sample.errors) == (3, 0)  # since the first round only
    assert Sample.objects.filter(deployment=deployment).count() == 2  # no candidate: the live variant only

    third = monitoring.collect(deployment)
    assert [(s.variant, s.requests, s.p50_ms) for s in third] == [(Variant.LIVE, 0, None)]


def test_drift_appears_per_field_once_the_inputs_shift_and_quality_once_feedback_comes(deploy, settings):
    # One-second windows (the site's ACUMOS_RUNNER_STATS_WINDOW_SECONDS, given to every runner it starts), so
    # that the runner's reference (its first full window) and a current window that has shifted take seconds.
    settings.ACUMOS_RUNNER_STATS_WINDOW_SECONDS = 1
    deployment = deploy()
    rng = random.Random(21)
    answered = []
    until = time.monotonic() + 2.5  # the generation's first answer, then a whole window of the usual inputs
    while time.monotonic() < until:
        response = predict(deployment, {**IRIS, "sepal_length": rng.gauss(5.0, 0.3)})
        answered.append((response.headers["x-request-id"], response.json()["species"]))
    time.sleep(2.2)  # the current windows (the last two seconds) hold none of them
    for _ in range(60):
        assert predict(deployment, {**IRIS, "sepal_length": rng.gauss(7.5, 0.3)}).status_code == 200
    feedback = [{"request_id": request_id, "truth": species} for request_id, species in answered[:20]]
    feedback[0]["truth"] = answered[0][1] + 1  # one answer of 20 was wrong

    samples = monitoring.collect(deployment)

    drift = samples[0].drift
    assert drift["classify.sepal_length"]["drifted"] is True
    # Under 1000 values a side: Kolmogorov-Smirnov decides, its threshold the critical gap for these sizes.
    assert drift["classify.sepal_length"]["measure"] == "ks"
    assert 0.1 < drift["classify.sepal_length"]["threshold"] < drift["classify.sepal_length"]["score"] <= 1
    assert drift["classify.sepal_width"]["drifted"] is False  # the same constant as in the reference
    assert samples[0].quality == {}  # no feedback yet

    response = requests.post(f"{deployment.endpoint_url}/model/feedback", json=feedback, timeout=10)
    assert response.json()["joined"] == 20
    quality = monitoring.collect(deployment)[0].quality
    assert quality == {"classify.species": {"metric": "accuracy", "value": pytest.approx(19 / 20), "count": 20}}


def test_a_shadow_candidate_gets_its_own_sample_with_its_agreement_with_the_live_model(deploy, example_bundle):
    deployment = deploy()
    monitoring.collect(deployment)  # the round before the candidate
    with open(example_bundle / "modelpackage.zip", "rb") as package:
        response = requests.put(f"{deployment.endpoint_url}/model/candidate", files={"model": package},
                                data={"mode": "shadow", "weight": "100"},
                                headers={"Authorization": f"Bearer {deployment.admin_token()}"}, timeout=60)
    assert response.status_code == 200, response.text
    for _ in range(4):
        assert predict(deployment, IRIS).status_code == 200
    _until(lambda: runner_client.candidate(deployment.endpoint_url, deployment.admin_token())
           ["metrics"].get("shadow", {}).get("compared") == 4)

    live, shadow = monitoring.collect(deployment)

    assert (live.variant, live.requests, live.generation) == (Variant.LIVE, 4, 1)
    assert (shadow.variant, shadow.requests, shadow.errors, shadow.generation) == (Variant.SHADOW, 4, 0, 2)
    assert shadow.agreement_rate == 1.0 and shadow.p99_ms > 0
    assert shadow.counters == {}  # the live sample keeps the counters


def _until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the runner did not get there in time"
        time.sleep(0.1)


# ---------------------------------------------------------------- rounds, with the runners' answers made up

def reading(requests_: int = 0, errors: int = 0, generation: int = 1, **extra) -> Reading:
    counts = {"requests": requests_, "errors": errors, "buckets": {"0.005": requests_, "inf": requests_},
              "epoch": None, "variants": {}}
    return Reading(counts=counts, live_generation=generation, **extra)


def test_a_failing_alert_evaluation_or_runner_stops_nothing_but_its_own_deployment(monkeypatch):
    answering = DeploymentFactory(status=DeploymentStatus.RUNNING, endpoint_url="http://127.0.0.1:1")
    evaluated_badly = DeploymentFactory(status=DeploymentStatus.DOWN, endpoint_url="http://127.0.0.1:2")
    broken = DeploymentFactory(status=DeploymentStatus.RUNNING, endpoint_url="http://127.0.0.1:3")

    def read_replica(url, token):
        if url.endswith(":3"):
            raise RuntimeError("a bug in reading")
        return reading(7)

    def evaluate(deployment):
        if deployment == evaluated_badly:
            raise ValueError("a rule that cannot be judged")
        return []

    monkeypatch.setattr(monitoring, "read_replica", read_replica)
    monkeypatch.setattr(alerts, "evaluate", evaluate)
    summary = monitoring.collect_all()

    assert (summary.collected, summary.not_answering, summary.samples) == (2, 1, 2)
    assert {s.deployment_id for s in Sample.objects.all()} == {answering.pk, evaluated_badly.pk}
    assert "a bug in reading" in summary.failures[str(broken.pk)]


def test_a_hundred_deployments_are_read_side_by_side(monkeypatch):
    for n in range(100):
        DeploymentFactory(status=DeploymentStatus.RUNNING, endpoint_url=f"http://127.0.0.1:{n + 1}")
    busy, most = set(), [0]
    lock = threading.Lock()

    def read_replica(url, token):  # a runner that takes 50 ms to answer
        with lock:
            busy.add(url)
            most[0] = max(most[0], len(busy))
        time.sleep(0.05)
        with lock:
            busy.discard(url)
        return reading(1)

    monkeypatch.setattr(monitoring, "read_replica", read_replica)
    summary = monitoring.collect_all()

    assert summary.collected == 100 and Sample.objects.count() == 100
    assert 1 < most[0] <= 16  # side by side, and no more at once than the pool's bound
    assert summary.seconds < 2.5  # one after the other: 5 s


def test_prune_deletes_the_samples_older_than_the_retention_only(settings, monkeypatch):
    settings.ACUMOS_MONITORING_RETENTION_DAYS = 14
    monkeypatch.setattr(monitoring, "PRUNE_BATCH", 1)  # batches of one: the loop goes on until none is left
    deployments = DeploymentFactory(), DeploymentFactory()
    now = timezone.now()
    for deployment in deployments:
        for days in (30, 15, 13, 0):
            Sample.objects.create(deployment=deployment, at=now - timedelta(days=days))

    assert monitoring.prune(now) == 4

    left = sorted((now - at).days for at in Sample.objects.values_list("at", flat=True))
    assert left == [0, 0, 13, 13]
    assert monitoring.prune(now) == 0


# ---------------------------------------------------------------- the arithmetic

def test_the_delta_is_the_difference_and_a_restart_counts_from_zero_not_negative():
    before = {"requests": 100, "errors": 4, "buckets": {"0.005": 90, "inf": 100}, "epoch": None, "variants": {}}
    later = {"requests": 130, "errors": 5, "buckets": {"0.005": 110, "inf": 130}, "epoch": None, "variants": {}}
    restarted = {"requests": 12, "errors": 0, "buckets": {"0.005": 12, "inf": 12}, "epoch": None, "variants": {}}

    assert monitoring.counter_delta(before, later) == {"requests": 30, "errors": 1,
                                                       "buckets": {"0.005": 20, "inf": 30}, "variants": {}}
    assert monitoring.counter_delta(later, restarted) == {"requests": 12, "errors": 0,
                                                          "buckets": {"0.005": 12, "inf": 12}, "variants": {}}
    # Fewer errors alone is a restart too (a restarted runner that already answered more than before).
    more = {**later, "requests": 140, "errors": 0, "buckets": {"0.005": 140, "inf": 140}}
    assert monitoring.counter_delta(later, more)["requests"] == 140
    assert monitoring.counter_delta(None, later)["requests"] == 130  # the first round: since the runner started


def test_a_candidates_counts_belong_to_it_and_a_new_one_starts_at_zero():
    def counts(epoch, requests_):
        return {"requests": 0, "errors": 0, "buckets": {}, "epoch": epoch,
                "variants": {"canary": {"requests": requests_, "errors": 0, "compared": 0, "agreed": 0}}}

    assert monitoring.counter_delta(counts("a", 10), counts("a", 25))["variants"]["canary"]["requests"] == 15
    assert monitoring.counter_delta(counts("a", 10), counts("b", 3))["variants"]["canary"]["requests"] == 3
    assert monitoring.counter_delta(counts("a", 10), counts("a", 4))["variants"]["canary"]["requests"] == 4


def test_replicas_are_summed_a_restart_is_counted_from_zero_and_one_that_is_silent_keeps_its_counters():
    previous = {"http://a": reading(100, 10).counts, "http://b": reading(50, 0).counts,
                "http://c": reading(9, 9).counts, "http://gone": reading(1).counts}
    drift_a = {("live", 1): {"m.x": {"score": 0.3, "threshold": 0.1, "drifted": True, "measure": "wasserstein"},
                             "m.y": {"score": 0.2, "threshold": 0.05, "drifted": False, "measure": "chi_squared_p"}}}
    drift_b = {("live", 1): {"m.x": {"score": 0.05, "threshold": 0.1, "drifted": False, "measure": "wasserstein"},
                             "m.y": {"score": 0.01, "threshold": 0.05, "drifted": True, "measure": "chi_squared_p"}}}
    quality_a = {("live", 1): {"m.label": {"metric": "accuracy", "value": 1.0, "count": 30}}}
    quality_b = {("live", 1): {"m.label": {"metric": "accuracy", "value": 0.5, "count": 10}}}
    replicas = {"http://a": reading(130, 12, drift=drift_a, quality=quality_a),
                "http://b": reading(20, 1, drift=drift_b, quality=quality_b),  # restarted: 20 since
                "http://c": None}

    [live], counters = monitoring.samples_from(replicas, previous)

    assert (live["requests"], live["errors"], live["generation"]) == (30 + 20, 2 + 1, 1)
    assert live["drift"]["m.x"]["score"] == 0.3 and live["drift"]["m.y"]["score"] == 0.01  # the worst of each
    assert live["quality"] == {"m.label": {"metric": "accuracy", "value": pytest.approx(35 / 40), "count": 40}}
    assert counters == {"http://a": replicas["http://a"].counts, "http://b": replicas["http://b"].counts,
                        "http://c": previous["http://c"]}  # c did not answer; "gone" is no replica any more


def test_a_canarys_share_is_its_own_sample_not_the_live_ones():
    def canary_reading(total, canary, compared=0, state="active"):
        found = reading(total)
        found.counts.update(epoch="c1", variants={"canary": {"requests": canary, "errors": 1, "compared": compared,
                                                            "agreed": 0}})
        found.candidate = {"id": "c1", "mode": "canary", "state": state, "generation": 2}
        found.latency = {"canary": {"p50": 2.0, "p99": 9.0}}
        return found

    before = canary_reading(100, 10)
    samples, _ = monitoring.samples_from({"u": canary_reading(160, 30)}, {"u": before.counts})
    assert [(s["variant"], s["requests"], s["errors"], s["generation"]) for s in samples] == [
        ("live", 40, 0, 1), ("canary", 20, 0, 2)]
    assert samples[1]["p99_ms"] == 9.0 and samples[1]["agreement_rate"] is None

    # Ended since the previous round (promoted): its last answers still get their sample, once.
    ended, _ = monitoring.samples_from({"u": canary_reading(170, 35, state="promoted")}, {"u": before.counts})
    assert [s["variant"] for s in ended] == ["live", "canary"]
    quiet, _ = monitoring.samples_from({"u": canary_reading(170, 10, state="promoted")}, {"u": before.counts})
    assert [s["variant"] for s in quiet] == ["live"]


def test_latency_quantiles_come_from_the_histogram_of_the_interval():
    buckets = {"0.001": 0, "0.005": 50, "0.01": 90, "0.1": 100, "inf": 100}
    assert monitoring.histogram_quantile(0.5, buckets) == pytest.approx(0.005)
    assert monitoring.histogram_quantile(0.9, buckets) == pytest.approx(0.01)
    assert monitoring.histogram_quantile(0.99, buckets) == pytest.approx(0.01 + 0.09 * 9 / 10)
    assert monitoring.histogram_quantile(0.5, {"0.1": 0, "inf": 0}) is None
    assert monitoring.histogram_quantile(0.99, {"0.1": 1, "inf": 10}) == 0.1  # beyond the last bound: that bound


METRICS = """# HELP runner_requests_total Requests answered, by route and status
# TYPE runner_requests_total counter
runner_requests_total{route="predict",status="200"} 5.0
runner_requests_total{route="predict",status="400"} 1.0
runner_requests_total{route="v2_infer",status="500"} 2.0
runner_requests_total{route="model",status="200"} 40.0
runner_requests_total{route="candidate",status="401"} 3.0
# TYPE runner_request_seconds histogram
runner_request_seconds_bucket{le="0.005",route="predict"} 4.0
runner_request_seconds_bucket{le="1.0",route="predict"} 6.0
runner_request_seconds_bucket{le="+Inf",route="predict"} 6.0
runner_request_seconds_bucket{le="0.005",route="v2_infer"} 0.0
runner_request_seconds_bucket{le="1",route="v2_infer"} 2.0
runner_request_seconds_bucket{le="+Inf",route="v2_infer"} 2.0
runner_request_seconds_bucket{le="0.005",route="model"} 40.0
runner_request_seconds_count{route="predict"} 6.0
runner_swaps_total{action="swap",result="ok"} 1.0
"""


def test_the_metrics_text_gives_the_prediction_routes_counts_only():
    assert monitoring.route_counts(METRICS) == {"requests": 8, "errors": 3,
                                                "buckets": {"0.005": 4, "1.0": 8, "inf": 8}}


DRIFT = {"against": "default", "windows": 2, "groups": [
    {"method": "classify", "generation": 1, "variant": "live", "inputs": {
        "sepal_length": {"kind": "number", "compared_as": "numbers", "decided_by": "wasserstein", "drifted": True,
                         "psi": {"value": 8.9, "threshold": 0.1, "drifted": True},
                         "wasserstein": {"value": 5.4, "threshold": 0.1, "drifted": True}},
        "colour": {"kind": "category", "compared_as": "categories", "decided_by": "chi_squared", "drifted": False,
                   "chi_squared": {"statistic": 1.2, "df": 2, "p_value": 0.4, "threshold": 0.05, "drifted": False},
                   "jensen_shannon": {"value": 0.05, "threshold": 0.1, "drifted": False}},
        "few": {"kind": "number", "compared_as": "numbers", "decided_by": "wasserstein", "drifted": None,
                "wasserstein": {"value": 0.3, "threshold": 0.1, "drifted": True}, "note": "too few values to tell"},
        "wild": {"kind": "number", "decided_by": "wasserstein", "drifted": True,
                 "wasserstein": {"value": "Infinity", "threshold": 0.1, "drifted": True}}},
     "outputs": {"species": {"decided_by": "chi_squared", "drifted": True,
                             "chi_squared": {"p_value": 0.0, "threshold": 0.05}}}},
    {"method": "classify", "generation": 2, "variant": "canary", "note": "no reference yet", "reference": None,
     "inputs": {"sepal_length": {"kind": "number", "drifted": None, "note": "the reference has no values"}}}]}


def test_the_drift_report_is_kept_per_input_field_with_the_score_that_decided():
    assert monitoring.drift_entries(DRIFT) == {
        ("live", 1): {
            "classify.sepal_length": {"score": 5.4, "threshold": 0.1, "drifted": True, "measure": "wasserstein"},
            "classify.colour": {"score": 0.4, "threshold": 0.05, "drifted": False, "measure": "chi_squared_p"},
            "classify.wild": {"score": None, "threshold": 0.1, "drifted": True, "measure": "wasserstein"}},
        ("canary", 2): {}}


def test_quality_is_kept_per_output_field_with_its_metric():
    report = {"feedback": {"joined": 3}, "groups": [{"method": "m", "generation": 1, "variant": "live", "fields": {
        "label": {"kind": "integer", "metric": "accuracy", "count": 3, "correct": 2, "accuracy": 2 / 3},
        "price": {"kind": "number", "metric": "mae", "count": 3, "mae": 1.5, "rmse": 2.0},
        "empty": {"kind": "number", "metric": "mae", "count": 0, "mae": None, "rmse": None}}}]}
    assert monitoring.quality_entries(report) == {("live", 1): {
        "m.label": {"metric": "accuracy", "value": pytest.approx(2 / 3), "count": 3},
        "m.price": {"metric": "mae", "value": 1.5, "count": 3}}}


@pytest.mark.parametrize("described", [
    {"candidate": None, "live": {"generation": "one"}, "metrics": {}},
    {"candidate": {"id": "x"}, "live": {"generation": 1}, "metrics": {}},
    {"candidate": None, "live": {"generation": 1}, "metrics": {"canary": {"requests": -5}}},
    {"candidate": None, "live": {"generation": 1}, "metrics": {"shadow": []}},
])
def test_answers_the_portal_cannot_read_are_a_runner_error_not_a_crash(monkeypatch, described):
    monkeypatch.setattr(runner_client, "candidate", lambda url, token: described)
    monkeypatch.setattr(runner_client, "metrics", lambda url: METRICS)
    monkeypatch.setattr(runner_client, "drift", lambda url, token: {"groups": []})
    monkeypatch.setattr(runner_client, "quality", lambda url, token: {"groups": []})
    with pytest.raises(runner_client.RunnerError, match="cannot read"):
        monitoring.read_replica("http://runner", "token")


def test_a_runner_without_candidates_or_statistics_still_has_its_traffic_counted(monkeypatch):
    def absent(status):
        def read(url, token):
            raise runner_client.RunnerError("the runner refused", status)
        return read

    monkeypatch.setattr(runner_client, "candidate", absent(404))  # an image made before canaries
    monkeypatch.setattr(runner_client, "metrics", lambda url: METRICS)
    monkeypatch.setattr(runner_client, "drift", absent(409))  # RUNNER_STATISTICS=0
    monkeypatch.setattr(runner_client, "quality", absent(409))
    found = monitoring.read_replica("http://runner", "token")
    assert (found.counts["requests"], found.candidate, found.drift, found.quality) == (8, None, {}, {})

    monkeypatch.setattr(runner_client, "drift", absent(401))  # a wrong token is no answer
    with pytest.raises(runner_client.RunnerError):
        monitoring.read_replica("http://runner", "token")


def test_the_admin_shows_samples_and_alerts_and_edits_rules_only(client_for, admin_user):
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    deployment = DeploymentFactory()
    sample = Sample.objects.create(deployment=deployment, at=timezone.now(), requests=3)
    client = client_for(admin_user)

    for model in ("sample", "alertrule", "alert"):
        assert client.get(f"/admin/monitoring/{model}/").status_code == 200
    assert client.get("/admin/monitoring/alertrule/add/").status_code == 200
    assert client.get("/admin/monitoring/sample/add/").status_code == 403
    assert client.post(f"/admin/monitoring/sample/{sample.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Sample.objects.filter(pk=sample.pk).exists()
