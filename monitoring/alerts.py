"""Alert rules and the alerts they raise.

Every deployment is judged by a default rule of each kind until whoever manages it changes that rule
(set_rule) or puts it back (reset_rule). After each collection round the collector calls evaluate(): each
enabled rule reads the live variant's latest samples; `windows` counted samples in a row beyond its threshold
fire one alert, which the deployment's creator and the operators are told of and `signals.alert_fired`
announces; `windows` counted samples in a row within it resolve that alert.

Decisions (each says why):
- Drift is judged by the runner's own verdict per field (`drifted` in Sample.drift), not by "score over X".
  The runner picks the measure per field (Wasserstein for numbers; a chi-squared p-value or Jensen-Shannon
  for categories) and will not tell below 30 values; one X cannot serve a distance (drift above it) and a
  p-value (drift below it). So a drift rule's threshold is the share of a method's judged input fields
  drifting at once over which a sample counts as drifted: 0 (the default) is any one field, 0.5 is
  Evidently's "dataset drift".
- Resolving waits for `windows` samples in a row within the threshold, as firing does: a figure hovering at
  its bound would otherwise fire and resolve every few rounds and notify people each time.
- A sample with fewer than MIN_REQUESTS requests counts neither way for error rate, p99 and quality (1 error
  in 2 requests is not a 50 % error rate; an idle deployment's unchanged quality figure is no new evidence);
  a drift field the runner could not judge counts neither way either.
- Quality: accuracy under the threshold (default 0.8). MAE and RMSE have no default (their scale is the
  model's output's): only a rule a person set judges them, as error over its threshold."""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from acumos_portal.accounts.choices import Role
from acumos_portal.api.refusals import Refused
from deployment.selectors import can_manage
from marketplace import services as marketplace_services
from marketplace.choices import NotificationKind
from monitoring.choices import AlertState, RuleKind, Variant
from monitoring.models import Alert, AlertRule, Sample
from monitoring.signals import alert_fired

MIN_REQUESTS = 20  # a sample with fewer requests counts neither way (error rate, p99, quality)
MIN_FEEDBACK = 20  # an output field's quality from fewer joined truths is not judged
DEFAULT_WINDOWS = 3
MAX_WINDOWS = 60  # the runner keeps 60 windows; more samples in a row would span hours of rounds
LOOKBACK = 4  # a rule finds its counted samples among its latest LOOKBACK x windows: older ones are stale
SUMMARY_FIELDS = 3  # fields named in a summary; the rest are counted ("and 2 more")

DEFAULT_THRESHOLDS = {
    RuleKind.DRIFT: 0.0,
    RuleKind.QUALITY: 0.8,
    RuleKind.ERROR_RATE: 0.05,
    RuleKind.P99: 1000.0,
}

# What each kind's threshold may be, said for the person who set another.
_THRESHOLDS = {
    RuleKind.DRIFT: (lambda t: 0 <= t < 1, "a share of a method's input fields, from 0 (any one field drifting) "
                     "up to but not including 1 (0.5: half of them)"),
    RuleKind.QUALITY: (lambda t: t >= 0, "0 or more: accuracy under it fires (e.g. 0.8), and for MAE or RMSE "
                       "outputs an error over it (in the output's unit)"),
    RuleKind.ERROR_RATE: (lambda t: 0 <= t < 1, "a share of requests, from 0 up to but not including 1 "
                          "(0.05 is 5 %)"),
    RuleKind.P99: (lambda t: t > 0, "milliseconds, more than 0 (1000 is a second)"),
}

_MEASURES = {"wasserstein": "Wasserstein", "psi": "PSI", "ks": "Kolmogorov-Smirnov D",
             "jensen_shannon": "Jensen-Shannon", "chi_squared": "chi-squared p", "chi_squared_p": "chi-squared p",
             "p_value": "p-value"}
_P_VALUES = {"chi_squared", "chi_squared_p", "p_value"}  # drift when the score is under the threshold


class RuleRefused(Refused):
    """A rule setting that cannot be: the message names the field and what it may be."""


class RuleNotAllowed(RuleRefused):
    status = 403
    code = "permission_denied"


# ---------------------------------------------------------------- rules

def default_rule(deployment, kind: str) -> AlertRule:
    """The rule a deployment has of `kind` until someone sets one (unsaved)."""
    return AlertRule(deployment=deployment, kind=kind, threshold=DEFAULT_THRESHOLDS[kind], windows=DEFAULT_WINDOWS,
                     enabled=True)


def is_default(rule: AlertRule) -> bool:
    """Set by nobody: unsaved, or saved only because it fired (or was reset) and its alerts need a row."""
    return rule.created_by_id is None


def effective_rules(deployment) -> list[AlertRule]:
    """One rule per kind, in RuleKind's order: the saved row, or the unsaved default."""
    saved = {rule.kind: rule for rule in AlertRule.objects.filter(deployment=deployment)}
    return [saved.get(kind) or default_rule(deployment, kind) for kind in RuleKind.values]


@transaction.atomic
def set_rule(deployment, kind: str, *, threshold, windows, enabled, user) -> AlertRule:
    """Save the deployment's rule of `kind` (whoever may manage the deployment). Turning it off resolves its
    open alert at once: the page should not show a rule nobody applies as firing."""
    _require_manager(user, deployment)
    kind = _clean_kind(kind)
    values = {"threshold": _clean_threshold(kind, threshold), "windows": _clean_windows(windows),
              "enabled": _clean_enabled(enabled), "created_by": user}
    rule, _ = AlertRule.objects.update_or_create(deployment=deployment, kind=kind, defaults=values)
    if not rule.enabled and (alert := _open_alert(rule)) is not None:
        _resolve(alert, rule, deployment, {"reason": f"the rule was turned off by {user.username}"}, tell=False)
    return rule


@transaction.atomic
def reset_rule(deployment, kind: str, *, user) -> AlertRule:
    """Back to the default. A rule that raised alerts keeps its row (they refer to it) with the default's
    values and nobody's name; any other is deleted."""
    _require_manager(user, deployment)
    kind = _clean_kind(kind)
    default = default_rule(deployment, kind)
    rule = AlertRule.objects.select_for_update().filter(deployment=deployment, kind=kind).first()
    if rule is None:
        return default
    if not rule.alerts.exists():
        rule.delete()
        return default
    rule.threshold, rule.windows, rule.enabled, rule.created_by = (default.threshold, default.windows, True, None)
    rule.save(update_fields=["threshold", "windows", "enabled", "created_by", "modified"])
    return rule


def _require_manager(user, deployment) -> None:
    if not can_manage(user, deployment):
        raise RuleNotAllowed("only whoever created this deployment, an operator or an admin changes its alert rules")


def _clean_kind(kind) -> str:
    if kind not in RuleKind.values:
        raise RuleRefused(f"{kind!r} is not a kind of alert rule; the kinds are {', '.join(RuleKind.values)}", "kind")
    return kind


def _clean_threshold(kind: str, value) -> float:
    allowed, says = _THRESHOLDS[kind]
    number = _finite(value)
    if number is None or not allowed(number):
        raise RuleRefused(f"threshold of the {RuleKind(kind).label.lower()} rule must be {says}; got {value!r}",
                          "threshold")
    return number


def _finite(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _clean_windows(value) -> int:
    number = _whole(value)
    if number is None or not 1 <= number <= MAX_WINDOWS:
        raise RuleRefused(f"windows (samples in a row) must be a whole number from 1 to {MAX_WINDOWS}; got {value!r}",
                          "windows")
    return number


def _whole(value) -> int | None:
    if isinstance(value, bool | float):  # 2.5 windows is no count; True is no number a person typed
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _clean_enabled(value) -> bool:
    if not isinstance(value, bool):
        raise RuleRefused(f"enabled must be true or false; got {value!r}", "enabled")
    return value


# ---------------------------------------------------------------- reading samples

@dataclass
class Reading:
    """One counted sample as a rule reads it: beyond the threshold or not, its figures (for the evidence),
    and what is beyond, said for the summary (empty when nothing is)."""

    sample: Sample
    beyond: bool
    figures: dict
    said: str = ""


def _read_error_rate(rule: AlertRule, sample: Sample) -> Reading | None:
    if sample.requests < MIN_REQUESTS:
        return None
    rate = sample.errors / sample.requests
    beyond = rate > rule.threshold
    said = f"Error rate {_percent(rate)} over {_percent(rule.threshold)}" if beyond else ""
    return Reading(sample, beyond, {"requests": sample.requests, "errors": sample.errors, "error_rate": rate}, said)


def _read_p99(rule: AlertRule, sample: Sample) -> Reading | None:
    if sample.requests < MIN_REQUESTS or sample.p99_ms is None:
        return None
    beyond = sample.p99_ms > rule.threshold
    said = f"p99 latency {_ms(sample.p99_ms)} over {_ms(rule.threshold)}" if beyond else ""
    return Reading(sample, beyond, {"requests": sample.requests, "p99_ms": sample.p99_ms}, said)


def _read_quality(rule: AlertRule, sample: Sample) -> Reading | None:
    if sample.requests < MIN_REQUESTS:
        return None
    judged = {}
    for name, figure in sorted(sample.quality.items()):
        beyond = _quality_beyond(rule, figure)
        if beyond is not None:
            judged[name] = {**figure, "beyond": beyond}
    if not judged:
        return None
    phrases = [_quality_phrase(name, figure, rule.threshold) for name, figure in judged.items() if figure["beyond"]]
    return Reading(sample, bool(phrases), {"requests": sample.requests, "fields": judged}, _listed(phrases, ", "))


def _quality_beyond(rule: AlertRule, figure) -> bool | None:
    """None: not judged (too little feedback, no figure, or an error measure with no rule a person set)."""
    if not isinstance(figure, dict) or figure.get("value") is None or (figure.get("count") or 0) < MIN_FEEDBACK:
        return None
    if figure.get("metric") == "accuracy":
        return figure["value"] < rule.threshold
    if is_default(rule):
        return None
    return figure["value"] > rule.threshold


def _quality_phrase(name: str, figure: dict, threshold: float) -> str:
    if figure.get("metric") == "accuracy":
        return f"Accuracy of {name} {_number(figure['value'])} under {_number(threshold)}"
    measure = str(figure.get("metric") or "error").upper()
    return f"{measure} of {name} {_number(figure['value'])} over {_number(threshold)}"


def _read_drift(rule: AlertRule, sample: Sample) -> Reading | None:
    """Per method: the share of its judged input fields the runner says drifted, against the threshold."""
    judged: dict[str, list[str]] = {}
    drifted: dict[str, list[str]] = {}
    for name, figure in sorted(sample.drift.items()):
        verdict = figure.get("drifted") if isinstance(figure, dict) else None
        if verdict is None:
            continue
        method = name.split(".", 1)[0]
        judged.setdefault(method, []).append(name)
        if verdict:
            drifted.setdefault(method, []).append(name)
    if not judged:
        return None
    beyond = [name for method, names in drifted.items() if len(names) / len(judged[method]) > rule.threshold
              for name in names]
    figures = {"judged": sum(map(len, judged.values())),
               "drifted": {name: _drift_figures(sample.drift[name]) for names in drifted.values() for name in names}}
    return Reading(sample, bool(beyond), figures, _drift_said(sample, beyond))


def _drift_figures(figure: dict) -> dict:
    return {key: figure.get(key) for key in ("measure", "score", "threshold")}


def _drift_said(sample: Sample, names: list[str]) -> str:
    if not names:
        return ""
    if len(names) == 1:
        return f"Input drift on {names[0]}: {_drift_phrase(sample.drift[names[0]])}"
    return f"Input drift on {_listed([f'{name} ({_drift_phrase(sample.drift[name])})' for name in names], ', ')}"


def _drift_phrase(figure: dict) -> str:
    """"Wasserstein 0.42 over 0.1"; a p-value drifts under its threshold ("chi-squared p 0.003 under 0.05")."""
    measure, score, threshold = figure.get("measure") or "score", figure.get("score"), figure.get("threshold")
    if score is None or threshold is None:
        return f"{_MEASURES.get(measure, measure)} drifted"
    side = "under" if measure in _P_VALUES else "over"
    return f"{_MEASURES.get(measure, measure)} {_number(score)} {side} {_number(threshold)}"


_READERS = {RuleKind.DRIFT: _read_drift, RuleKind.QUALITY: _read_quality, RuleKind.ERROR_RATE: _read_error_rate,
            RuleKind.P99: _read_p99}


def _listed(phrases: list[str], sep: str) -> str:
    shown = sep.join(phrases[:SUMMARY_FIELDS])
    more = len(phrases) - SUMMARY_FIELDS
    return f"{shown} and {more} more field{'s' if more > 1 else ''}" if more > 0 else shown


def _number(value: float) -> str:
    return f"{value:.3g}"


def _percent(share: float) -> str:
    return f"{share * 100:.3g}%"


def _ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 1 else f"{value:.3g} ms"


# ---------------------------------------------------------------- evaluation

def evaluate(deployment) -> list[Alert]:
    """Judge the deployment's latest live samples by its rules, after a collection round: the alerts that
    fired this round (those still firing from before are not fired again; those that cleared resolve)."""
    rules = effective_rules(deployment)
    span = max(rule.windows for rule in rules) * LOOKBACK
    # Newest first; the index (deployment, at) serves it backwards.
    samples = list(Sample.objects.filter(deployment=deployment, variant=Variant.LIVE).order_by("-at", "-id")[:span])
    open_alerts = {alert.rule_id: alert for alert in Alert.objects.filter(deployment=deployment,
                                                                        state=AlertState.FIRING)}
    fired = [_apply(deployment, rule, samples, open_alerts.get(rule.pk)) for rule in rules]
    return [alert for alert in fired if alert is not None]


def _apply(deployment, rule: AlertRule, samples: list[Sample], open_alert: Alert | None) -> Alert | None:
    if not rule.enabled:
        if open_alert is not None:
            _resolve(open_alert, rule, deployment, {"reason": "the rule is turned off"}, tell=False)
        return None
    readings = _readings(rule, samples)
    if readings is None:
        return None  # not enough counted samples yet: nothing changes
    if open_alert is None and all(reading.beyond for reading in readings):
        return _fire(deployment, rule, readings)
    if open_alert is not None and not any(reading.beyond for reading in readings):
        _resolve(open_alert, rule, deployment, {"reason": f"within its threshold for {_samples(rule.windows)}",
                                                "samples": _samples_evidence(readings)}, tell=True)
    return None


def _readings(rule: AlertRule, samples: list[Sample]) -> list[Reading] | None:
    """The rule's latest `windows` counted samples, newest first; None when its recent samples hold fewer."""
    read, readings = _READERS[rule.kind], []
    for sample in samples[: rule.windows * LOOKBACK]:
        reading = read(rule, sample)
        if reading is not None:
            readings.append(reading)
            if len(readings) == rule.windows:
                return readings
    return None


def _fire(deployment, rule: AlertRule, readings: list[Reading]) -> Alert | None:
    with transaction.atomic():
        locked = _locked(rule)
        if not locked.enabled or _open_alert(locked) is not None:
            return None  # another round fired it first (or someone turned it off meanwhile)
        alert = Alert.objects.create(rule=locked, deployment=deployment, state=AlertState.FIRING,
                                     fired_at=timezone.now(), summary=_summary(rule, readings)[:300],
                                     evidence=_evidence(rule, readings))
    _tell(alert, locked, deployment, fired=True)
    alert_fired.send(sender=Alert, alert=alert)
    return alert


def _locked(rule: AlertRule) -> AlertRule:
    """The rule's row, locked until the transaction ends: of two rounds at once, the second waits here and then
    finds the first one's alert. A default gets its row now (an alert needs one); get_or_create copes with
    two rounds creating it at once (the unique constraint, then a get)."""
    if rule.pk is None:
        rule, _ = AlertRule.objects.get_or_create(deployment_id=rule.deployment_id, kind=rule.kind, defaults={
            "threshold": rule.threshold, "windows": rule.windows, "enabled": rule.enabled})
    return AlertRule.objects.select_for_update().get(pk=rule.pk)


def _open_alert(rule: AlertRule) -> Alert | None:
    return rule.alerts.filter(state=AlertState.FIRING).first()


def _resolve(alert: Alert, rule: AlertRule, deployment, how: dict, *, tell: bool) -> bool:
    """A conditional update: of two rounds resolving it at once, one does (and tells)."""
    resolved_at, evidence = timezone.now(), {**alert.evidence, "resolved": how}
    if not Alert.objects.filter(pk=alert.pk, state=AlertState.FIRING).update(
            state=AlertState.RESOLVED, resolved_at=resolved_at, evidence=evidence):
        return False
    alert.state, alert.resolved_at, alert.evidence = AlertState.RESOLVED, resolved_at, evidence
    if tell:
        _tell(alert, rule, deployment, fired=False)
    return True


def _summary(rule: AlertRule, readings: list[Reading]) -> str:
    """"Input drift on classify.petal_length: Wasserstein 0.42 over 0.1 for 3 samples": the latest sample's
    figures, and how many samples in a row were beyond."""
    return f"{readings[0].said} for {_samples(rule.windows)}"


def _samples(count: int) -> str:
    return f"{count} sample{'s' if count != 1 else ''}"


def _evidence(rule: AlertRule, readings: list[Reading]) -> dict:
    return {"rule": {"kind": rule.kind, "threshold": rule.threshold, "windows": rule.windows,
                     "default": is_default(rule)},
            "min_requests": None if rule.kind == RuleKind.DRIFT else MIN_REQUESTS,
            "samples": _samples_evidence(readings)}


def _samples_evidence(readings: list[Reading]) -> list[dict]:
    """Oldest first, as a person reads a series."""
    return [{"id": reading.sample.pk, "at": reading.sample.at.isoformat(), "generation": reading.sample.generation,
             "beyond": reading.beyond, **reading.figures} for reading in reversed(readings)]


# ---------------------------------------------------------------- telling people

def told_of_alerts(deployment) -> list:
    """The deployment's creator and every active operator, each once (the issue: its owner and the
    operators; admins who are not operators run the site, not the deployments)."""
    people = get_user_model().objects.filter(Q(pk=deployment.created_by_id) | Q(groups__name=Role.OPERATOR),
                                             is_active=True)
    return list(people.distinct().order_by("pk"))


def _tell(alert: Alert, rule: AlertRule, deployment, *, fired: bool) -> None:
    kind = RuleKind(rule.kind).label
    if fired:
        title, message = f"{deployment}: {kind} alert", alert.summary
    else:
        title = f"{deployment}: {kind} alert resolved"
        message = f"Back within its threshold. It fired at {alert.fired_at:%Y-%m-%d %H:%M} UTC: {alert.summary}"
    for person in told_of_alerts(deployment):
        # One row per deployment and rule kind: firing again before it is read counts ×2, not a new row.
        marketplace_services.notify(person, NotificationKind.DEPLOYMENT, title, url=f"/deployments/{deployment.pk}/",
                                    message=message, target=f"deployment-alert:{deployment.pk}:{rule.kind}")
