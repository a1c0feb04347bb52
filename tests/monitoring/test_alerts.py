"""Alert rules: defaults and saved rules, firing after exactly `windows` counted samples in a row, one alert
while it holds, resolving, who is told, the signal, and two rounds at once. Samples are made directly (the
collector's own tests cover how they are collected)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from acumos_portal.accounts import services as account_services
from acumos_portal.accounts.choices import Role
from marketplace.choices import NotificationKind
from marketplace.models import Notification
from monitoring import alerts
from monitoring.alerts import RuleNotAllowed, RuleRefused, effective_rules, evaluate, reset_rule, set_rule
from monitoring.choices import AlertState, RuleKind, Variant
from monitoring.models import Alert, AlertRule, Sample
from monitoring.signals import alert_fired

from ..concurrency import at_once
from ..factories import DeploymentFactory, UserFactory

pytestmark = pytest.mark.django_db


def drift(score: float, threshold: float = 0.1, measure: str = "wasserstein", drifted: bool | None = ...) -> dict:
    """A field's drift as the collector keeps it; `drifted` is the runner's verdict (score >= threshold)."""
    verdict = score >= threshold if drifted is ... else drifted
    return {"score": score, "threshold": threshold, "drifted": verdict, "measure": measure}


def accuracy(value: float, count: int = 100) -> dict:
    return {"metric": "accuracy", "value": value, "count": count}


# A sample beyond each kind's default threshold, and one within it. Each leaves the other kinds unjudged
# or within theirs, so one rule at a time is at stake.
BEYOND = {
    RuleKind.DRIFT: {"drift": {"classify.petal_length": drift(0.42), "classify.sepal_width": drift(0.02)}},
    RuleKind.QUALITY: {"quality": {"classify.species": accuracy(0.7)}},
    RuleKind.ERROR_RATE: {"requests": 100, "errors": 10},
    RuleKind.P99: {"p99_ms": 1500.0},
}
WITHIN = {
    RuleKind.DRIFT: {"drift": {"classify.petal_length": drift(0.05), "classify.sepal_width": drift(0.02)}},
    RuleKind.QUALITY: {"quality": {"classify.species": accuracy(0.95)}},
    RuleKind.ERROR_RATE: {"requests": 100, "errors": 1},
    RuleKind.P99: {"p99_ms": 40.0},
}
SUMMARIES = {
    RuleKind.DRIFT: "Input drift on classify.petal_length: Wasserstein 0.42 over 0.1 for 3 samples",
    RuleKind.QUALITY: "Accuracy of classify.species 0.7 under 0.8 for 3 samples",
    RuleKind.ERROR_RATE: "Error rate 10% over 5% for 3 samples",
    RuleKind.P99: "p99 latency 1500 ms over 1000 ms for 3 samples",
}


def add(deployment, n: int = 1, **fields) -> list[Sample]:
    """`n` live samples a minute apart after the deployment's latest, healthy unless `fields` say otherwise."""
    latest = deployment.samples.order_by("-at").values_list("at", flat=True).first()
    at = latest or timezone.now() - timedelta(hours=2)
    made = []
    for _ in range(n):
        at += timedelta(minutes=1)
        values = {"variant": Variant.LIVE, "generation": 1, "requests": 100, "errors": 0, "p50_ms": 5.0,
                  "p99_ms": 20.0, **fields}
        made.append(Sample.objects.create(deployment=deployment, at=at, **values))
    return made


def persona(username: str, *roles: Role, **extra):
    user = UserFactory(username=username, **extra)
    for role in roles:
        account_services.grant_role(user, role)
    return user


@pytest.fixture
def deployment(owner):
    return DeploymentFactory(created_by=owner)


# ---------------------------------------------------------------- firing after exactly N samples

@pytest.mark.parametrize("kind", RuleKind.values)
def test_each_default_rule_fires_after_three_samples_in_a_row_and_not_after_two(deployment, kind):
    add(deployment, 2, **BEYOND[kind])
    assert evaluate(deployment) == []
    samples = add(deployment, **BEYOND[kind])
    [alert] = evaluate(deployment)
    assert (alert.rule.kind, alert.state, alert.resolved_at) == (kind, AlertState.FIRING, None)
    assert alert.fired_at is not None
    assert alert.summary == SUMMARIES[kind]
    ids = list(deployment.samples.order_by("at").values_list("pk", flat=True))
    assert [s["id"] for s in alert.evidence["samples"]] == ids
    assert alert.evidence["samples"][-1]["id"] == samples[0].pk
    assert alert.evidence["rule"] == {"kind": kind, "threshold": alerts.DEFAULT_THRESHOLDS[kind], "windows": 3,
                                      "default": True}
    assert Alert.objects.count() == 1


def test_a_saved_rule_fires_after_its_own_windows(deployment, owner):
    set_rule(deployment, RuleKind.P99, threshold=500, windows=2, enabled=True, user=owner)
    add(deployment, p99_ms=600.0)
    assert evaluate(deployment) == []
    add(deployment, p99_ms=700.0)
    [alert] = evaluate(deployment)
    assert alert.summary == "p99 latency 700 ms over 500 ms for 2 samples"
    assert [s["p99_ms"] for s in alert.evidence["samples"]] == [600.0, 700.0]


def test_a_sample_within_the_threshold_breaks_the_run(deployment):
    add(deployment, 2, **BEYOND[RuleKind.ERROR_RATE])
    add(deployment, **WITHIN[RuleKind.ERROR_RATE])
    add(deployment, 2, **BEYOND[RuleKind.ERROR_RATE])
    assert evaluate(deployment) == []
    add(deployment, **BEYOND[RuleKind.ERROR_RATE])
    assert len(evaluate(deployment)) == 1


def test_only_the_live_variant_is_judged(deployment):
    for variant in (Variant.CANARY, Variant.SHADOW):
        add(deployment, 3, variant=variant, **BEYOND[RuleKind.ERROR_RATE])
    assert evaluate(deployment) == []


# ---------------------------------------------------------------- samples with too few requests

def test_one_error_in_two_requests_is_not_an_error_rate(deployment):
    add(deployment, 5, requests=2, errors=1)
    add(deployment, 5, requests=alerts.MIN_REQUESTS - 1, errors=10, p99_ms=5000.0,
        quality={"classify.species": accuracy(0.1)})
    assert evaluate(deployment) == []


def test_samples_with_too_few_requests_neither_break_nor_extend_a_run(deployment):
    add(deployment, **BEYOND[RuleKind.ERROR_RATE])
    add(deployment, requests=3, errors=0)
    add(deployment, **BEYOND[RuleKind.ERROR_RATE])
    add(deployment, requests=3, errors=0)
    assert evaluate(deployment) == []  # two counted samples, not four
    add(deployment, **BEYOND[RuleKind.ERROR_RATE])
    [alert] = evaluate(deployment)
    assert [s["requests"] for s in alert.evidence["samples"]] == [100, 100, 100]
    assert alert.evidence["min_requests"] == alerts.MIN_REQUESTS


def test_samples_older_than_the_lookback_are_stale(deployment):
    add(deployment, 2, **BEYOND[RuleKind.P99])
    add(deployment, 3 * alerts.LOOKBACK - 2, requests=0, p99_ms=None)  # idle rounds
    add(deployment, **BEYOND[RuleKind.P99])
    assert evaluate(deployment) == []


# ---------------------------------------------------------------- one alert while it holds, then resolved

def test_one_alert_while_it_holds_resolved_after_as_many_samples_within(deployment, owner):
    add(deployment, 3, **BEYOND[RuleKind.P99])
    [first] = evaluate(deployment)
    add(deployment, 2, **BEYOND[RuleKind.P99])
    assert evaluate(deployment) == []
    add(deployment, 2, **WITHIN[RuleKind.P99])
    assert evaluate(deployment) == []
    first.refresh_from_db()
    assert first.state == AlertState.FIRING  # two samples within are not yet three
    clearing = add(deployment, **WITHIN[RuleKind.P99])
    assert evaluate(deployment) == []
    first.refresh_from_db()
    assert (first.state, first.resolved_at is not None) == (AlertState.RESOLVED, True)
    assert first.evidence["resolved"]["samples"][-1]["id"] == clearing[0].pk
    assert first.evidence["samples"][-1]["p99_ms"] == 1500.0  # what fired it is kept
    evaluate(deployment)
    assert Alert.objects.filter(state=AlertState.RESOLVED).count() == 1

    add(deployment, 3, **BEYOND[RuleKind.P99])
    [second] = evaluate(deployment)
    assert second.pk != first.pk
    assert Alert.objects.count() == 2


def test_a_hovering_figure_neither_fires_again_nor_resolves(deployment):
    add(deployment, 3, **BEYOND[RuleKind.ERROR_RATE])
    [alert] = evaluate(deployment)
    for _ in range(3):
        add(deployment, **WITHIN[RuleKind.ERROR_RATE])
        add(deployment, **BEYOND[RuleKind.ERROR_RATE])
        assert evaluate(deployment) == []
    alert.refresh_from_db()
    assert alert.state == AlertState.FIRING
    assert Alert.objects.count() == 1


def test_a_round_that_changes_nothing_costs_three_queries(deployment, django_assert_num_queries):
    add(deployment, 3, **BEYOND[RuleKind.P99])
    evaluate(deployment)
    add(deployment, **BEYOND[RuleKind.P99])
    with django_assert_num_queries(3):  # rules, samples, open alerts
        assert evaluate(deployment) == []


# ---------------------------------------------------------------- drift, per field

def test_drift_names_every_drifted_field_and_leaves_out_those_it_could_not_judge(deployment):
    fields = {"classify.petal_length": drift(0.42),
              "classify.color": drift(0.003, 0.05, "chi_squared", drifted=True),
              "classify.sepal_width": drift(0.02),
              "classify.rare": {"score": None, "threshold": 0.1, "drifted": None, "measure": "wasserstein"}}
    add(deployment, 3, drift=fields)
    [alert] = evaluate(deployment)
    assert alert.summary == ("Input drift on classify.color (chi-squared p 0.003 under 0.05), "
                             "classify.petal_length (Wasserstein 0.42 over 0.1) for 3 samples")
    latest = alert.evidence["samples"][-1]
    assert set(latest["drifted"]) == {"classify.color", "classify.petal_length"}
    assert latest["judged"] == 3
    assert latest["drifted"]["classify.petal_length"] == {"measure": "wasserstein", "score": 0.42, "threshold": 0.1}


def test_drift_the_runner_could_not_judge_counts_neither_way(deployment):
    unjudged = {"classify.petal_length": {"score": 0.9, "threshold": 0.1, "drifted": None, "measure": "wasserstein"}}
    add(deployment, 2, **BEYOND[RuleKind.DRIFT])
    add(deployment, 4, drift=unjudged)
    assert evaluate(deployment) == []
    add(deployment, **BEYOND[RuleKind.DRIFT])
    assert len(evaluate(deployment)) == 1


def test_a_drift_threshold_is_the_share_of_a_methods_fields(deployment, owner):
    set_rule(deployment, RuleKind.DRIFT, threshold=0.5, windows=3, enabled=True, user=owner)
    one_of_three = {"m.a": drift(0.5), "m.b": drift(0.01), "m.c": drift(0.01), "other.x": drift(0.9)}
    add(deployment, 3, drift={k: v for k, v in one_of_three.items() if k != "other.x"})
    assert evaluate(deployment) == []
    add(deployment, 3, drift={**one_of_three, "m.b": drift(0.3)})
    [alert] = evaluate(deployment)
    # m: 2 of 3 fields (over half); other: 1 of 1.
    assert alert.summary.startswith("Input drift on m.a (Wasserstein 0.5 over 0.1), m.b (Wasserstein 0.3 over 0.1), "
                                    "other.x (Wasserstein 0.9 over 0.1)")


def test_a_summary_names_three_fields_and_counts_the_rest(deployment):
    add(deployment, 3, drift={f"m.f{i}": drift(0.2 + i / 100) for i in range(5)})
    [alert] = evaluate(deployment)
    assert alert.summary.endswith("m.f2 (Wasserstein 0.22 over 0.1) and 2 more fields for 3 samples")


# ---------------------------------------------------------------- quality

def test_an_error_measure_is_judged_only_by_a_rule_someone_set(deployment, owner):
    mae = {"predict.price": {"metric": "mae", "value": 10.0, "count": 100}}
    add(deployment, 3, quality=mae)
    assert evaluate(deployment) == []  # no universal bound on an error in the output's unit
    set_rule(deployment, RuleKind.QUALITY, threshold=2.5, windows=3, enabled=True, user=owner)
    [alert] = evaluate(deployment)
    assert alert.summary == "MAE of predict.price 10 over 2.5 for 3 samples"


def test_accuracy_from_too_little_feedback_is_not_judged(deployment):
    add(deployment, 3, quality={"classify.species": accuracy(0.1, count=alerts.MIN_FEEDBACK - 1)})
    assert evaluate(deployment) == []


# ---------------------------------------------------------------- who is told

def test_the_creator_and_every_operator_are_told_once_and_nobody_else(deployment, owner):
    account_services.grant_role(owner, Role.OPERATOR)  # creator and operator: told once
    operator = persona("op", Role.OPERATOR)
    both = persona("op-admin", Role.OPERATOR, Role.ADMIN)
    admin = persona("admin-only", Role.ADMIN)
    persona("gone", Role.OPERATOR, is_active=False)
    outsider = persona("outsider")
    add(deployment, 3, **BEYOND[RuleKind.ERROR_RATE])
    [alert] = evaluate(deployment)

    notes = Notification.objects.filter(kind=NotificationKind.DEPLOYMENT)
    assert sorted(notes.values_list("user__username", flat=True)) == sorted([owner.username, operator.username,
                                                                            both.username])
    assert not notes.filter(user__in=[admin, outsider]).exists()
    note = notes.get(user=owner)
    assert (note.title, note.message, note.url, note.count) == (
        f"{deployment}: Error rate alert", alert.summary, f"/deployments/{deployment.pk}/", 1)

    add(deployment, 3, **WITHIN[RuleKind.ERROR_RATE])
    evaluate(deployment)
    resolved = Notification.objects.filter(title=f"{deployment}: Error rate alert resolved")
    assert sorted(resolved.values_list("user__username", flat=True)) == sorted([owner.username, operator.username,
                                                                               both.username])
    assert alert.summary in resolved.first().message


def test_firing_again_before_it_is_read_adds_to_the_notification(deployment, owner):
    for _ in range(2):
        add(deployment, 3, **BEYOND[RuleKind.P99])
        evaluate(deployment)
        add(deployment, 3, **WITHIN[RuleKind.P99])
        evaluate(deployment)
    assert Alert.objects.count() == 2
    fired = Notification.objects.get(user=owner, title=f"{deployment}: p99 latency alert")
    assert fired.count == 2


# ---------------------------------------------------------------- setting rules

@pytest.mark.parametrize(("kind", "threshold", "windows", "enabled", "field", "says"), [
    ("latency", 1, 3, True, "kind", "the kinds are drift, quality, error_rate, p99"),
    (RuleKind.ERROR_RATE, 5, 3, True, "threshold", "a share of requests, from 0 up to but not including 1"),
    (RuleKind.ERROR_RATE, -0.1, 3, True, "threshold", "(0.05 is 5 %)"),
    (RuleKind.DRIFT, 1, 3, True, "threshold", "a share of a method's input fields"),
    (RuleKind.P99, 0, 3, True, "threshold", "milliseconds, more than 0"),
    (RuleKind.P99, "fast", 3, True, "threshold", "got 'fast'"),
    (RuleKind.P99, float("nan"), 3, True, "threshold", "milliseconds"),
    (RuleKind.P99, True, 3, True, "threshold", "got True"),
    (RuleKind.QUALITY, -1, 3, True, "threshold", "0 or more"),
    (RuleKind.P99, 500, 0, True, "windows", "a whole number from 1 to 60; got 0"),
    (RuleKind.P99, 500, 61, True, "windows", "from 1 to 60"),
    (RuleKind.P99, 500, 2.5, True, "windows", "got 2.5"),
    (RuleKind.P99, 500, "three", True, "windows", "from 1 to 60"),
    (RuleKind.P99, 500, 3, "yes", "enabled", "true or false; got 'yes'"),
])
def test_set_rule_refuses_what_cannot_be(deployment, owner, kind, threshold, windows, enabled, field, says):
    with pytest.raises(RuleRefused) as refused:
        set_rule(deployment, kind, threshold=threshold, windows=windows, enabled=enabled, user=owner)
    assert refused.value.field == field
    assert says in refused.value.message
    assert refused.value.status == 400
    assert not AlertRule.objects.exists()


def test_only_who_manages_the_deployment_sets_its_rules(deployment, other_user, operator):
    for change in (lambda: set_rule(deployment, RuleKind.P99, threshold=500, windows=3, enabled=True,
                                    user=other_user),
                   lambda: reset_rule(deployment, RuleKind.P99, user=other_user)):
        with pytest.raises(RuleNotAllowed) as refused:
            change()
        assert (refused.value.status, refused.value.code) == (403, "permission_denied")
    rule = set_rule(deployment, RuleKind.P99, threshold="750", windows="4", enabled=True, user=operator)
    assert (rule.threshold, rule.windows, rule.created_by) == (750.0, 4, operator)


def test_defaults_until_a_rule_is_saved_and_after_it_is_reset(deployment, owner):
    rules = effective_rules(deployment)
    assert [(r.kind, r.pk, r.threshold, r.windows, r.enabled) for r in rules] == [
        (RuleKind.DRIFT, None, 0.0, 3, True), (RuleKind.QUALITY, None, 0.8, 3, True),
        (RuleKind.ERROR_RATE, None, 0.05, 3, True), (RuleKind.P99, None, 1000.0, 3, True)]

    set_rule(deployment, RuleKind.P99, threshold=250, windows=5, enabled=True, user=owner)
    by_kind = {r.kind: r for r in effective_rules(deployment)}
    assert (by_kind[RuleKind.P99].threshold, by_kind[RuleKind.P99].windows) == (250.0, 5)
    assert by_kind[RuleKind.P99].pk is not None and not alerts.is_default(by_kind[RuleKind.P99])
    assert all(by_kind[k].pk is None for k in (RuleKind.DRIFT, RuleKind.QUALITY, RuleKind.ERROR_RATE))

    set_rule(deployment, RuleKind.P99, threshold=300, windows=2, enabled=False, user=owner)  # changes the same row
    assert AlertRule.objects.get().threshold == 300.0
    reset = reset_rule(deployment, RuleKind.P99, user=owner)
    assert (reset.pk, reset.threshold, reset.windows, reset.enabled) == (None, 1000.0, 3, True)
    assert not AlertRule.objects.exists()


def test_a_rule_that_raised_alerts_keeps_its_row_when_reset(deployment, owner):
    add(deployment, 3, **BEYOND[RuleKind.ERROR_RATE])
    [alert] = evaluate(deployment)
    assert alerts.is_default(alert.rule)  # a default got its row when it fired
    set_rule(deployment, RuleKind.ERROR_RATE, threshold=0.2, windows=4, enabled=True, user=owner)
    rule = reset_rule(deployment, RuleKind.ERROR_RATE, user=owner)
    assert (rule.pk, rule.threshold, rule.windows, rule.created_by) == (alert.rule_id, 0.05, 3, None)
    assert Alert.objects.filter(pk=alert.pk).exists()


def test_a_disabled_rule_never_fires_and_disabling_resolves_its_alert(deployment, owner):
    set_rule(deployment, RuleKind.P99, threshold=1000, windows=3, enabled=False, user=owner)
    add(deployment, 6, **BEYOND[RuleKind.P99])
    assert evaluate(deployment) == []
    assert not Alert.objects.exists()

    add(deployment, 3, **BEYOND[RuleKind.ERROR_RATE])
    [alert] = evaluate(deployment)
    told = Notification.objects.count()
    set_rule(deployment, RuleKind.ERROR_RATE, threshold=0.05, windows=3, enabled=False, user=owner)
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED
    assert alert.evidence["resolved"] == {"reason": f"the rule was turned off by {owner.username}"}
    assert Notification.objects.count() == told  # whoever turned it off knows


# ---------------------------------------------------------------- the signal

def test_the_signal_is_sent_once_per_firing(deployment):
    heard = []

    def listener(sender, alert, **kwargs):
        heard.append(alert.pk)

    alert_fired.connect(listener)
    try:
        add(deployment, 3, **BEYOND[RuleKind.P99])
        [first] = evaluate(deployment)
        add(deployment, 3, **BEYOND[RuleKind.P99])
        evaluate(deployment)
        assert heard == [first.pk]
        add(deployment, 3, **WITHIN[RuleKind.P99])
        evaluate(deployment)
        add(deployment, 3, **BEYOND[RuleKind.P99])
        [second] = evaluate(deployment)
        assert heard == [first.pk, second.pk]
    finally:
        alert_fired.disconnect(listener)


# ---------------------------------------------------------------- two rounds at once

@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("saved", [True, False], ids=["saved rule", "default rule"])
def test_two_rounds_at_once_fire_one_alert(owner, monkeypatch, saved):
    """Both rounds see no open alert and judge the rule beyond; the rule's row is locked while one looks
    again and fires, so the other, waiting, finds that alert. Without the lock both would fire (the wrapper
    holds each round between its look and its new alert). A default rule gets its row in that moment: the
    second round's insert waits for the first's, then takes the row the first made."""
    deployment = DeploymentFactory(created_by=owner)
    if saved:
        set_rule(deployment, RuleKind.ERROR_RATE, threshold=0.05, windows=3, enabled=True, user=owner)
    add(deployment, 3, **BEYOND[RuleKind.ERROR_RATE])
    looked = alerts._open_alert

    def slow_look(rule):
        found = looked(rule)
        time.sleep(0.5)
        return found

    monkeypatch.setattr(alerts, "_open_alert", slow_look)
    heard = []

    def listener(sender, alert, **kwargs):
        heard.append(alert.pk)

    alert_fired.connect(listener)
    try:
        results = at_once(lambda: evaluate(deployment), lambda: evaluate(deployment), timeout=30)
    finally:
        alert_fired.disconnect(listener)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(len(r) for r in results) == [0, 1]
    assert Alert.objects.count() == 1
    assert AlertRule.objects.count() == 1
    assert len(heard) == 1
    assert Notification.objects.get(user=owner).count == 1
