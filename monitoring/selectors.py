"""Reads of monitoring: a deployment's figures over a time range, shaped for the charts on its page.

`chart_data` answers one JSON-ready dict (static/js/monitoring.js draws it, templates/monitoring/_panel.html
says it in words): one shared time axis (uPlot's aligned data: every series has a value, or null, at each
time), per variant the traffic, error rate and latency, the drift score of each input field against its
threshold, quality per output field, the alert rules' bounds, the swaps (as marks) and the alerts (as bands).

A day of samples a minute apart is 1440 points per line: more than a chart has pixels, and a p99 that moves
every minute then fills its chart with a solid band. So the rounds are folded into buckets of a whole number
of rounds (at most MOST_POINTS of them, 5 minutes each for a day): requests and errors add up, p99 keeps the
bucket's worst, p50 its mean, drift its highest score, quality its latest value.

Who may see it is decided where the deployment's page decides it (deployment.selectors.visible_deployments);
the view asks that before calling anything here."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from acumos_portal.choices import JobStatus
from deployment.choices import SERVING_CHANGES
from monitoring.alerts import effective_rules
from monitoring.choices import AlertState, RuleKind, Variant
from monitoring.models import Alert, Sample

DEFAULT_RANGE = timedelta(hours=24)
DEFAULT_INTERVAL_SECONDS = 60.0
# Points per line at most: about one per pixel or two of a chart half a page wide.
MOST_POINTS = 300
# Samples of one round are collected one variant after the other: within this, they are the same round.
SAME_ROUND = timedelta(seconds=10)
# No point for longer than this many buckets (collection stopped, the runner was down): the lines break
# there instead of drawing a straight line through the time nobody measured.
GAP_BUCKETS = 3
# More drift lines than this is a tangle nobody reads at a glance: the fields furthest past their threshold
# are drawn, the panel says how many others there are and whether any of them drifted.
MOST_DRIFT_FIELDS = 8
MOST_ALERTS = 20
VARIANT_ORDER = [Variant.LIVE, Variant.CANARY, Variant.SHADOW]
# drift and quality come as their JSON text: only the main variant's are drawn, and decoding the others' (half
# the rows with a canary) was a third of the panel's time.
SAMPLE_COLUMNS = ("at", "variant", "requests", "errors", "p50_ms", "p99_ms", "drift_text", "quality_text",
                  "agreement_rate")
AT, VARIANT, REQUESTS, ERRORS, P50, P99, DRIFT, QUALITY, AGREEMENT = range(len(SAMPLE_COLUMNS))


def collection_interval() -> float:
    """Seconds between collection rounds (the schedule's monitoring-collect entry runs at this interval)."""
    return float(getattr(settings, "ACUMOS_MONITORING_INTERVAL_SECONDS", DEFAULT_INTERVAL_SECONDS))


def chart_data(deployment, *, since: datetime | None = None, until: datetime | None = None,
               points: int = MOST_POINTS) -> dict:
    """The deployment's figures from `since` (default: 24 h ago) to `until` (default: now), at most `points`
    per line. Four queries whatever the number of samples: the samples (only the columns drawn), the rules'
    bounds, the swaps, the alerts."""
    until = until or timezone.now()
    since = since or until - DEFAULT_RANGE
    interval = collection_interval()
    rows = list(Sample.objects.filter(deployment=deployment, at__gte=since, at__lte=until)
                .annotate(drift_text=Cast("drift", TextField()), quality_text=Cast("quality", TextField()))
                .order_by("at").values_list(*SAMPLE_COLUMNS))
    rounds = _rounds(rows, interval)
    step = _bucket_seconds(rounds, interval, points)
    buckets = _buckets(rounds, step)
    times, slots = _time_axis(buckets, step)
    variants = [v.value for v in VARIANT_ORDER if any(v in by_variant for _, by_variant in rounds)]
    main = Variant.LIVE.value if Variant.LIVE in variants else (variants[0] if variants else Variant.LIVE.value)
    return {
        "since": since.timestamp(), "until": until.timestamp(), "interval": interval, "step": step,
        "time_zone": settings.TIME_ZONE, "samples": len(rows), "t": times, "variants": variants,
        "traffic": {v: _traffic(buckets, slots, v) for v in variants},
        "drift": _drift(buckets, slots, main),
        "quality": _quality(buckets, slots, main),
        "rules": _rule_bounds(deployment),
        "swaps": _swaps(deployment, since, until),
        "alerts": _alerts(deployment, since),
        "latest": _latest(buckets, variants, main),
    }


# ---------------------------------------------------------------- rounds, buckets, the time axis


def _rounds(rows, interval: float) -> list[tuple[datetime, dict]]:
    """[(when, {variant: (row, seconds)})]: the samples of one collection round together, whatever second
    each variant's was taken in (a second sample of a variant starts a new round), each with the seconds
    its counts cover (since the variant's sample before; the interval for its first)."""
    rounds: list[tuple[datetime, dict]] = []
    previous: dict[str, datetime] = {}
    for row in rows:
        at, variant = row[AT], row[VARIANT]
        seconds = max((at - previous[variant]).total_seconds(), 1.0) if variant in previous else interval
        previous[variant] = at
        if rounds and at - rounds[-1][0] <= SAME_ROUND and variant not in rounds[-1][1]:
            rounds[-1][1][variant] = (row, seconds)
        else:
            rounds.append((at, {variant: (row, seconds)}))
    return rounds


def _bucket_seconds(rounds, interval: float, points: int) -> float:
    """A whole number of intervals, so that the range's rounds make at most `points` buckets."""
    if len(rounds) < 2:
        return interval
    span = (rounds[-1][0] - rounds[0][0]).total_seconds()
    return interval * max(1, math.ceil((span / interval + 1) / points))


def _buckets(rounds, step: float) -> list[tuple[float, dict]]:
    """[(time, {variant: [(row, seconds), ...]})]: the rounds in the same `step` of time since the epoch
    (the same buckets at every refresh), at the time of their latest round."""
    buckets: list[tuple[float, dict]] = []
    current = None
    for at, by_variant in rounds:
        seconds = at.timestamp()
        key = math.floor(seconds / step)
        if key != current:
            buckets.append((seconds, defaultdict(list)))
            current = key
        buckets[-1] = (seconds, buckets[-1][1])
        for variant, item in by_variant.items():
            buckets[-1][1][variant].append(item)
    return buckets


def _time_axis(buckets, step: float) -> tuple[list[float], list[int | None]]:
    """The x values (epoch seconds) and, for each, the bucket it shows (None: a break in the lines, one
    step after the last bucket before a gap)."""
    times: list[float] = []
    slots: list[int | None] = []
    previous = None
    for index, (seconds, _) in enumerate(buckets):
        if previous is not None and seconds - previous > GAP_BUCKETS * step:
            times.append(previous + step)
            slots.append(None)
        times.append(seconds)
        slots.append(index)
        previous = seconds
    return times, slots


def _series(buckets, slots, variant: str, fold) -> list:
    """One value per x: fold(the variant's (row, seconds) in that bucket), or None (a break, or none)."""
    values = []
    for slot in slots:
        items = None if slot is None else buckets[slot][1].get(variant)
        values.append(fold(items) if items else None)
    return values


def _round(value, digits: int):
    return None if value is None else round(value, digits)


def _mean(values):
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def _most(values):
    return max((value for value in values if value is not None), default=None)


# ---------------------------------------------------------------- traffic, errors, latency


def _traffic(buckets, slots, variant: str) -> dict:
    """Requests per second, error rate (0..1; None without requests), p50 (mean) and p99 (worst) in ms,
    and for a shadow its agreement with the live model (0..1)."""
    def per_second(items):
        return _round(sum(row[REQUESTS] for row, _ in items) / sum(seconds for _, seconds in items), 3)

    def error_rate(items):
        requests = sum(row[REQUESTS] for row, _ in items)
        return _round(sum(row[ERRORS] for row, _ in items) / requests, 5) if requests else None

    series = {
        "rps": _series(buckets, slots, variant, per_second),
        "error_rate": _series(buckets, slots, variant, error_rate),
        "p50": _series(buckets, slots, variant, lambda items: _round(_mean(row[P50] for row, _ in items), 2)),
        "p99": _series(buckets, slots, variant, lambda items: _round(_most(row[P99] for row, _ in items), 2)),
    }
    if variant == Variant.SHADOW:
        series["agreement"] = _series(buckets, slots, variant,
                                      lambda items: _round(_mean(row[AGREEMENT] for row, _ in items), 4))
    return series


# ---------------------------------------------------------------- drift and quality


def _per_field(buckets, slots, variant: str, column: int, *, figure: str, fold) -> tuple[dict, dict]:
    """({field: [value per x]}, {field: its latest figures}) of a JSON column (drift or quality): each
    bucket's values of a field folded into one (fold: max, or the latest)."""
    values: dict[str, list] = {}
    latest: dict[str, dict] = {}
    for x, slot in enumerate(slots):
        if slot is None:
            continue
        for row, _ in buckets[slot][1].get(variant, ()):
            for name, figures in _decoded(row[column]).items():
                if not isinstance(figures, dict) or figures.get(figure) is None:
                    continue
                line = values.setdefault(name, [None] * len(slots))
                value = float(figures[figure])
                line[x] = value if line[x] is None else fold(line[x], value)
                latest[name] = figures
    return values, latest


def _decoded(text: str | None) -> dict:
    value = json.loads(text) if text else None
    return value if isinstance(value, dict) else {}


def _drift(buckets, slots, variant: str) -> dict:
    """Each field's drift score over time (a bucket's highest) with its threshold and measure (the latest
    the runner gave); the fields that got furthest past their threshold first, MOST_DRIFT_FIELDS drawn."""
    scores, latest = _per_field(buckets, slots, variant, DRIFT, figure="score", fold=max)
    fields = []
    for name, values in scores.items():
        threshold = latest[name].get("threshold")
        worst = max(value for value in values if value is not None)
        fields.append({
            "name": name, "measure": latest[name].get("measure") or "", "threshold": threshold,
            "drifted": bool(latest[name].get("drifted")),
            "latest": _round(next(v for v in reversed(values) if v is not None), 4),  # the last point's
            "worst_ratio": worst / threshold if threshold else worst,
            "values": [_round(value, 4) for value in values],
        })
    fields.sort(key=lambda field: (-field["worst_ratio"], field["name"]))
    shown, hidden = fields[:MOST_DRIFT_FIELDS], fields[MOST_DRIFT_FIELDS:]
    return {"variant": variant, "fields": shown, "more": len(hidden),
            "more_drifted": sum(1 for field in hidden if field["drifted"]),
            "measures": sorted({field["measure"] for field in fields if field["measure"]})}


def _quality(buckets, slots, variant: str) -> dict:
    """Each output field's quality from feedback (its metric's latest value in each bucket, and on how many
    answers with feedback)."""
    values, latest = _per_field(buckets, slots, variant, QUALITY, figure="value",
                                fold=lambda earlier, later: later)
    fields = [{"name": name, "metric": latest[name].get("metric") or "", "count": latest[name].get("count"),
               "latest": round(float(latest[name]["value"]), 4), "values": [_round(v, 4) for v in line]}
              for name, line in sorted(values.items())]
    return {"variant": variant, "fields": fields, "metrics": sorted({f["metric"] for f in fields if f["metric"]})}


# ---------------------------------------------------------------- rules, swaps, alerts, latest


def _rule_bounds(deployment) -> dict:
    """{kind: threshold} of the rules that judge it (saved or default, enabled): the line a figure must not
    cross. Drift's rule is a share of fields, not a score: the drift chart draws each field's own threshold."""
    return {rule.kind: rule.threshold for rule in effective_rules(deployment)
            if rule.enabled and rule.kind != RuleKind.DRIFT}


def _swaps(deployment, since, until) -> list[dict]:
    """The changes of what it serves that finished in the range (deploy, swap, rollback), oldest first."""
    changes = (deployment.operations.filter(kind__in=SERVING_CHANGES, status=JobStatus.SUCCEEDED,
                                            finished__gte=since, finished__lte=until)
               .order_by("finished")
               .values_list("finished", "kind", "revision__solution__name", "revision__version",
                            "requested_by__username", "trigger"))
    marks = []
    for finished, kind, solution, version, username, trigger in changes:
        served = f"{solution} {version}" if version else "another revision"
        marks.append({"at": finished.timestamp(), "kind": kind, "version": version or "",
                      "label": f"{_KIND_WORDS.get(kind, kind)} {served}", "by": username or trigger})
    return marks


_KIND_WORDS = {"deploy": "Deployed", "swap": "Swapped to", "rollback": "Rolled back to"}


def _alerts(deployment, since) -> list[dict]:
    """Alerts firing now, and those that fired or resolved in the range: newest first."""
    alerts = (Alert.objects.filter(deployment=deployment)
              .filter(Q(state=AlertState.FIRING) | Q(fired_at__gte=since) | Q(resolved_at__gte=since))
              .order_by("-fired_at")
              .values_list("state", "fired_at", "resolved_at", "summary", "rule__kind")[:MOST_ALERTS])
    return [{"state": state, "firing": state == AlertState.FIRING, "fired_at": fired.timestamp(),
             "resolved_at": resolved.timestamp() if resolved else None, "summary": summary, "kind": kind,
             "kind_label": RuleKind(kind).label if kind in RuleKind.values else kind}
            for state, fired, resolved, summary, kind in alerts]


def _latest(buckets, variants, main) -> dict:
    """The last point's figures per variant, folded as the lines fold them (what the legend shows when the
    pointer is elsewhere, and the text beside each chart says), and the time its rounds span."""
    if not buckets:
        return {}
    at, by_variant = buckets[-1]
    figures, first = {}, at
    for variant in variants:
        items = by_variant.get(variant)
        if not items:
            continue
        requests, errors = sum(row[REQUESTS] for row, _ in items), sum(row[ERRORS] for row, _ in items)
        figures[variant] = {"requests": requests, "errors": errors,
                            "rps": requests / sum(seconds for _, seconds in items),
                            "error_rate": errors / requests if requests else None,
                            "p50": _mean(row[P50] for row, _ in items), "p99": _most(row[P99] for row, _ in items),
                            "agreement": _mean(row[AGREEMENT] for row, _ in items)}
        first = min(first, *(row[AT].timestamp() for row, _ in items))
    return {"at": at, "from": first, "variants": figures, "main": main}


# ---------------------------------------------------------------- in words


def summaries(data: dict) -> dict[str, str]:
    """What each chart shows now, in a sentence or two: beside the chart for everyone, and what a screen
    reader reads instead of it."""
    latest = data["latest"]
    if not latest:
        return {}
    at = _span(latest["from"], latest["at"], data["time_zone"])
    traffic, errors = [], []
    for variant, figures in latest["variants"].items():
        name = Variant(variant).label
        traffic.append(f"{name}: {_number(figures['rps'])} requests/s, "
                       f"p50 {_ms(figures['p50'])}, p99 {_ms(figures['p99'])}")
        if figures["requests"]:
            errors.append(f"{name}: {_percent(figures['error_rate'])} errors "
                          f"({figures['errors']} of {figures['requests']} requests)")
        else:
            errors.append(f"{name}: no requests")
        if figures.get("agreement") is not None:
            traffic[-1] += f", agrees with the live model on {_percent(figures['agreement'])} of answers"
    return {"traffic": f"{at}: " + "; ".join(traffic) + ".",
            "errors": f"{at}: " + "; ".join(errors) + ".",
            "drift": _drift_words(data["drift"]), "quality": _quality_words(data["quality"])}


def _span(first: float, last: float, zone: str) -> str:
    """When the last point's rounds were: 'At 14:05 UTC', or 'From 14:00 to 14:04 UTC' for several."""
    first_at, last_at = (timezone.localtime(datetime.fromtimestamp(t, tz=UTC)) for t in (first, last))
    if f"{first_at:%H:%M}" == f"{last_at:%H:%M}":
        return f"At {last_at:%H:%M} {zone}"
    return f"From {first_at:%H:%M} to {last_at:%H:%M} {zone}"


def _drift_words(drift: dict) -> str:
    fields = drift["fields"]
    if not fields:
        return "No drift scores yet: the runner compares inputs with its reference once it has enough of them."
    over = [f for f in fields if f["threshold"] is not None and f["latest"] > f["threshold"]]
    under = [f for f in fields if f not in over]
    words = []
    if over:
        words.append("Past the threshold now: " + "; ".join(
            f"{f['name']} {_number(f['latest'])} (threshold {_number(f['threshold'])}"
            + (f", {f['measure']})" if f["measure"] else ")") for f in over) + ".")
    if under:
        top = max(under, key=lambda f: f["latest"])
        words.append(f"{'The other' if over else 'All'} {len(under)} field{'s' if len(under) != 1 else ''} "
                     f"below {'their thresholds' if len(under) != 1 else 'its threshold'} "
                     f"(highest: {top['name']} {_number(top['latest'])}).")
    if drift["more"]:
        words.append(f"{drift['more']} more field{'s' if drift['more'] != 1 else ''} not drawn"
                     + (f", {drift['more_drifted']} of them drifted." if drift["more_drifted"] else ", none drifted."))
    return " ".join(words)


def _quality_words(quality: dict) -> str:
    fields = quality["fields"]
    if not fields:
        return ("No quality figures yet: they come from feedback, the true values clients send for answers "
                "(POST /model/feedback).")
    return "; ".join(f"{f['name']}: {f['metric'] or 'value'} {_number(f['latest'])}"
                     + (f" on {f['count']} answers with feedback" if f.get("count") is not None else "")
                     for f in fields) + "."


def _number(value) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _ms(value) -> str:
    return "—" if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _percent(value) -> str:
    return "—" if value is None else f"{value * 100:.2g} %" if value < 0.1 else f"{value * 100:.1f} %"


# ---------------------------------------------------------------- the panel


def panel(deployment, *, since: datetime | None = None) -> dict:
    """What templates/monitoring/_panel.html shows: the chart data, the sentences beside the charts, the
    alerts, and when there is nothing to draw, why and when there will be."""
    data = chart_data(deployment, since=since)
    interval = data["interval"]
    return {"deployment": deployment, "chart_data": data, "chart_json": json.dumps(data, separators=(",", ":")),
            "summaries": summaries(data),
            "firing": [_dated(a, "fired_at", "resolved_at") for a in data["alerts"] if a["firing"]],
            "resolved": [_dated(a, "fired_at", "resolved_at") for a in data["alerts"] if not a["firing"]],
            "swaps": [_dated(swap, "at") for swap in reversed(data["swaps"])],
            "interval_words": _every(interval),
            "point_words": _duration(data["step"]) if data["step"] > interval else "",
            "range_words": _duration(data["until"] - data["since"]),
            "empty": None if data["samples"] else _why_empty(deployment, interval, since=data["since"])}


def _dated(item: dict, *keys: str) -> dict:
    """The item with its epoch seconds also as datetimes (`fired_at` -> `fired_at_dt`), for the template."""
    return {**item, **{f"{key}_dt": datetime.fromtimestamp(item[key], tz=UTC) if item[key] else None
                       for key in keys}}


def _why_empty(deployment, interval: float, *, since: float) -> str:
    if not deployment.is_live:
        return (f"No figures: they are collected while the deployment runs, and it is "
                f"{deployment.get_status_display().lower()}.")
    older = Sample.objects.filter(deployment=deployment).order_by("-at").values_list("at", flat=True).first()
    if older is not None:
        return (f"No figures in this range: the latest are from {_when(older)}. "
                f"Collection rounds run {_every(interval)}; the next one should bring new ones.")
    # Every live deployment is collected in the same round: the last round anywhere tells when the next is.
    last_round = Sample.objects.order_by("-at").values_list("at", flat=True).first()
    now = timezone.now()
    if last_round is not None and last_round + timedelta(seconds=2 * interval) > now:
        due = last_round + timedelta(seconds=interval)
        return (f"No figures yet. The first collection round for it is due at about {_when(max(due, now))} "
                f"(rounds run {_every(interval)}); the charts appear then.")
    return (f"No figures yet. The portal's scheduler collects them {_every(interval)}: the first round comes "
            f"within {'a minute' if round(interval) == 60 else _duration(interval)} of it running.")


def _when(moment: datetime) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M} {settings.TIME_ZONE}"


def _every(seconds: float) -> str:
    return "every minute" if round(seconds) == 60 else f"every {_duration(seconds)}"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


# ---------------------------------------------------------------- a running rollout's figures

@dataclass
class Figures:
    """The candidate's and the live model's figures over a rollout's running step: what its gates judge
    (monitoring.rollouts) and what its section on the page shows beside each other."""

    requests: int = 0
    errors: int = 0
    rounds: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    agreement: float | None = None
    quality: tuple[str, float, int] | None = None  # the worst accuracy: (field, value, feedback count)
    live_requests: int = 0
    live_errors: int = 0
    live_p50_ms: float | None = None
    live_p99_ms: float | None = None
    live_quality: tuple[str, float, int] | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def live_error_rate(self) -> float:
        return self.live_errors / self.live_requests if self.live_requests else 0.0


def rollout_figures(rollout) -> Figures:
    """The samples since the rollout's step began: the candidate's (its variant, of its own generation) summed,
    with its latest latency and quality (quantiles and running accuracies do not add up) and its agreement
    weighted by requests; the live model's requests and errors summed, with its latest latency."""
    samples = Sample.objects.filter(deployment_id=rollout.deployment_id, at__gte=rollout.step_started_at)
    candidate = samples.filter(variant=Variant(rollout.mode))
    if rollout.candidate_generation is not None:
        candidate = candidate.filter(generation=rollout.candidate_generation)
    rows = list(candidate.order_by("at", "pk"))
    figures = Figures(requests=sum(s.requests for s in rows), errors=sum(s.errors for s in rows), rounds=len(rows))
    if rows:
        figures.p50_ms, figures.p99_ms = rows[-1].p50_ms, rows[-1].p99_ms
        figures.quality = _worst_accuracy(rows[-1].quality)
    compared = [(s.agreement_rate, s.requests) for s in rows if s.agreement_rate is not None and s.requests]
    if compared:
        figures.agreement = sum(rate * n for rate, n in compared) / sum(n for _, n in compared)
    live = list(samples.filter(variant=Variant.LIVE).order_by("at", "pk")
                .values_list("requests", "errors", "p50_ms", "p99_ms", "quality"))
    figures.live_requests = sum(row[0] for row in live)
    figures.live_errors = sum(row[1] for row in live)
    if live:
        figures.live_p50_ms, figures.live_p99_ms = live[-1][2], live[-1][3]
        figures.live_quality = _worst_accuracy(live[-1][4])
    return figures


def _worst_accuracy(quality: dict) -> tuple[str, float, int] | None:
    accuracies = [(name, entry["value"], entry["count"]) for name, entry in (quality or {}).items()
                  if entry.get("metric") == "accuracy" and entry.get("value") is not None]
    return min(accuracies, key=lambda found: found[1]) if accuracies else None
