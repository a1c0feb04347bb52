"""Reading the drift statistics back: the statistics summary, the references (a posted set, another
generation's windows, the first full window that runner_image.stats pins), the drift scores against them,
and the Prometheus families. What is kept, and why these scores: runner_image.stats.
"""

from __future__ import annotations

import logging
import time

from runner_image import metrics
from runner_image.errors import BadRequest
from runner_image.sketch import (
    CATEGORY,
    INTEGER,
    NUMBER,
    FieldStats,
    chi_squared,
    histogram_psi,
    jensen_shannon,
    kolmogorov_smirnov,
    ks_critical,
    ks_p_value,
    wasserstein,
)
from runner_image.stats import (
    COLLECTOR_TARGET,
    INPUT,
    Merged,
    copy_field,
    fields_from_json,
    first_window,
    iso,
    merge_fields,
)

MIN_VALUES = 30                 # fewer on either side: no drift is declared (evidently#509: 8 rows)
FEW_VALUES = 5                  # integers with at most this many values are compared as categories (Evidently)
SMALL_REFERENCE = 1000          # up to it, a test decides (chi-squared for categories, KS for numbers)
THRESHOLDS = {"psi": 0.1, "psi_major": 0.25, "wasserstein": 0.1, "ks_p": 0.05, "jensen_shannon": 0.1,
              "chi_squared_p": 0.05, "dataset_share": 0.5}
OTHER = ("other",)              # the "other" bin of categories, a key no category name can be
log = logging.getLogger("runner_image")


def _split(fields: dict, render) -> dict:
    out = {"inputs": {}, "outputs": {}}
    for path in sorted(fields):
        side = "inputs" if path.startswith(INPUT) else "outputs"
        out[side][path.split(".", 1)[1]] = render(path, fields[path])
    return out


# ---------------------------------------------------------------- the statistics summary

def statistics_report(stats, *, select=None, windows: int | None = None) -> dict:
    since = _since(stats, windows) if windows else None
    groups = stats.merged(since, select)
    w = stats.window_seconds
    return {
        "window_seconds": w, "windows_kept": stats.windows_kept,
        "workers_reporting": stats.workers_reporting(), "dropped": stats.dropped_total(),
        "groups": [{
            "method": g.method, "generation": g.generation, "variant": g.variant, "requests": g.requests,
            "first_seen": iso(g.first_seen), "dropped_fields": g.dropped_fields,
            "windows": [{"start": iso(s / 1000), "end": iso(s / 1000 + w), "requests": n}
                        for s, n in sorted(g.windows.items())],
            **_split(g.fields, lambda _p, f: f.summary()),
        } for g in sorted(groups.values(), key=lambda g: g.key)],
    }


def _since(stats, windows: int) -> int:
    current = int(time.time() * 1000) // stats.window_ms * stats.window_ms
    return current - (windows - 1) * stats.window_ms


# ---------------------------------------------------------------- references

def _from_file(stats, data: dict | None) -> dict | None:
    if not data:
        return None
    return {**data, "fields": fields_from_json(data.get("fields", {}), stats.top_k)}


def parse_against(against: str | None) -> tuple[str, int | None]:
    if against in (None, "", "default"):
        return "default", None
    if against in ("first-window", "posted"):
        return against, None
    kind, _, number = against.partition(":")
    if kind == "generation" and number.isdigit() and int(number) >= 1:
        return "generation", int(number)
    raise BadRequest(f"'against' must be first-window, posted or generation:<n>, got {against!r}",
                     {"field": "against", "allowed": ["first-window", "posted", "generation:<n>"]})


def reference_for(stats, key: tuple, against: tuple, merged_windows: dict, cache: dict) -> dict | None:
    kind, number = against
    method = key[0]
    if kind in ("default", "posted"):
        posted = _from_file(stats, stats.read_reference(stats.posted_path(method)))
        if posted or kind == "posted":
            return posted
    if kind == "generation":
        if (method, number) not in cache:
            cache[(method, number)] = generation_reference(stats, method, number, merged_windows)
        return cache[(method, number)]
    pinned = _from_file(stats, stats.read_reference(stats.pinned_path(key)))
    return pinned or first_window(stats, key, merged_windows.get(key))[0]


def generation_reference(stats, method: str, generation: int, merged_windows: dict) -> dict | None:
    """Every kept window of that generation for this method (all variants); when they aged out, its pinned
    first window."""
    fields: dict[str, FieldStats] = {}
    requests, starts = 0, []
    for (m, g, _v), by_start in merged_windows.items():
        if (m, g) != (method, generation):
            continue
        for start, part in by_start.items():
            requests += part.requests
            starts.append(start)
            merge_fields(fields, {p: copy_field(f, stats.top_k) for p, f in part.fields.items()})
    if starts:
        return {"kind": "generation", "generation": generation, "from": iso(min(starts) / 1000),
                "to": iso(max(starts) / 1000 + stats.window_seconds), "requests": requests, "fields": fields}
    pinned = [_from_file(stats, data) for data in stats.pinned_for_generation(method, generation)]
    if not pinned:
        return None
    for data in pinned:
        merge_fields(fields, data["fields"])
    return {"kind": "generation", "generation": generation, "from": pinned[0]["from"], "to": pinned[0]["to"],
            "requests": sum(d["requests"] for d in pinned), "fields": fields, "note": "its first window (the "
            "other windows aged out)"}


# ---------------------------------------------------------------- scores

def score_field(reference: FieldStats | None, current: FieldStats) -> dict:
    out: dict = {"kind": current.kind, "n_current": current.count,
                 "n_reference": reference.count if reference else 0}
    if reference is None:
        return {**out, "drifted": None, "note": "the reference has no values for this field"}
    if reference.kind != current.kind:
        return {**out, "drifted": None, "note": f"the field was {reference.kind}, it is {current.kind} now"}
    if _as_categories(reference, current):
        out.update(_category_scores(reference.categories, current.categories))
    elif current.kind != CATEGORY:
        out.update(_number_scores(reference, current))
    few = min(_compared(reference), _compared(current)) < MIN_VALUES
    if few:
        out["drifted"] = None
        out["note"] = f"too few values to tell (under {MIN_VALUES} on one side)"
    if current.kind == NUMBER:
        out["nan_share"] = {"reference": _share(reference.nan, reference.count),
                            "current": _share(current.nan, current.count)}
    return out


def _compared(stats: FieldStats) -> int:
    return stats.moments.n if stats.moments is not None else stats.categories.total


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _as_categories(reference: FieldStats, current: FieldStats) -> bool:
    if current.kind == CATEGORY:
        return True
    if current.kind != INTEGER:
        return False
    ref, cur = reference.categories, current.categories
    distinct = set(ref.counts) | set(cur.counts)
    return not ref.other and not cur.other and len(distinct) <= FEW_VALUES


def _with_other(categories) -> dict:
    counts = dict(categories.counts)
    if categories.other:
        counts[OTHER] = categories.other
    return counts


def _category_scores(reference, current) -> dict:
    ref, cur = _with_other(reference), _with_other(current)
    statistic, df, p_value = chi_squared(ref, cur)
    js = jensen_shannon(ref, cur)
    chi = {"statistic": statistic, "df": df, "p_value": p_value, "threshold": THRESHOLDS["chi_squared_p"],
           "drifted": p_value < THRESHOLDS["chi_squared_p"]}
    jsd = {"value": js, "threshold": THRESHOLDS["jensen_shannon"], "drifted": js >= THRESHOLDS["jensen_shannon"]}
    small = reference.total <= SMALL_REFERENCE
    return {"compared_as": "categories", "chi_squared": chi, "jensen_shannon": jsd,
            "decided_by": "chi_squared" if small else "jensen_shannon",
            "drifted": chi["drifted"] if small else jsd["drifted"]}


def _number_scores(reference: FieldStats, current: FieldStats) -> dict:
    if not reference.moments.n or not current.moments.n:
        return {"compared_as": "numbers", "drifted": None}
    psi_value = histogram_psi(reference.histogram, current.histogram)
    norm = max(reference.moments.std or 0.0, 0.001)  # Evidently's floor for a constant reference
    distance = wasserstein(reference.histogram, current.histogram) / norm
    psi = {"value": psi_value, "threshold": THRESHOLDS["psi"], "major_threshold": THRESHOLDS["psi_major"],
           "drifted": psi_value >= THRESHOLDS["psi"], "major": psi_value >= THRESHOLDS["psi_major"]}
    w1 = {"value": distance, "threshold": THRESHOLDS["wasserstein"], "drifted": distance >= THRESHOLDS["wasserstein"],
          "normalised_by": "reference std"}
    n_reference, n_current = reference.histogram.total, current.histogram.total
    statistic = kolmogorov_smirnov(reference.histogram, current.histogram)
    critical = ks_critical(n_reference, n_current, THRESHOLDS["ks_p"])
    ks = {"value": statistic, "threshold": critical, "p_value": ks_p_value(statistic, n_reference, n_current),
          "alpha": THRESHOLDS["ks_p"], "drifted": statistic > critical}
    decided = "ks" if min(n_reference, n_current) <= SMALL_REFERENCE else "wasserstein"
    scores = {"psi": psi, "wasserstein": w1, "ks": ks}
    return {"compared_as": "numbers", **scores, "decided_by": decided, "drifted": scores[decided]["drifted"]}


def score_group(current: Merged, reference: dict | None) -> dict:
    out = {"method": current.method, "generation": current.generation, "variant": current.variant,
           "current": {"requests": current.requests, "windows": len(current.windows),
                       "from": iso(min(current.windows) / 1000) if current.windows else None}}
    if reference is None:
        out["note"] = ("no reference yet: the first full window of this generation has not closed, no reference "
                       "set was posted, or the generation asked for has no statistics")
    ref_fields = reference["fields"] if reference else {}
    out["reference"] = {k: v for k, v in reference.items() if k != "fields"} if reference else None
    scored = _split(current.fields, lambda path, f: score_field(ref_fields.get(path), f))
    decided = [s["drifted"] for s in scored["inputs"].values() if s.get("drifted") is not None]
    drifted = sum(decided)
    share = drifted / len(decided) if decided else None
    out["dataset_drift"] = {"fields_compared": len(decided), "fields_drifted": drifted, "share": share,
                            "threshold": THRESHOLDS["dataset_share"],
                            "drifted": None if share is None else share >= THRESHOLDS["dataset_share"]}
    return {**out, **scored}


def drift_report(stats, *, select=None, against: str | None = None, windows: int = 2) -> dict:
    target = parse_against(against)
    since = _since(stats, windows)
    per_window = stats.merged_windows()
    current = _current(per_window, since, select, stats.top_k)
    cache: dict = {}
    groups = [score_group(current[key], reference_for(stats, key, target, per_window, cache))
              for key in sorted(current)]
    return {"against": against or "default", "windows": windows, "window_seconds": stats.window_seconds,
            "current_from": iso(since / 1000), "thresholds": THRESHOLDS, "groups": groups}


def _current(per_window: dict, since: int, select, top_k: int) -> dict[tuple, Merged]:
    out: dict[tuple, Merged] = {}
    for key, by_start in per_window.items():
        if select is not None and not select(key):
            continue
        for start, part in sorted(by_start.items()):
            if start < since:
                continue
            total = out.get(key) or out.setdefault(key, Merged(*key))
            total.requests += part.requests
            total.windows[start] = part.requests
            merge_fields(total.fields, {p: copy_field(f, top_k) for p, f in part.fields.items()})
    return out


# ---------------------------------------------------------------- Prometheus

class Collector:
    """Aggregate drift scores and feedback quality for /metrics, merged from every worker's files. Only
    scores and counts: the distributions themselves (quantiles, categories) stay behind the admin token.
    Computed at most every CACHE_SECONDS (a scrape reads every worker's windows)."""

    CACHE_SECONDS = 5.0

    def __init__(self):
        self._cached: tuple[float, object, list] = (0.0, None, [])

    def describe(self):
        return []  # else registering (once per scrape) would collect a first time, for nothing

    def collect(self):
        stats = COLLECTOR_TARGET.get()
        if stats is None or not stats.enabled:
            return []
        at, owner, families = self._cached
        if owner is not stats or time.monotonic() - at > self.CACHE_SECONDS:
            try:
                stats.flush(force=True)  # this worker's latest; the others' are at most a write interval old
                families = prometheus_families(stats)
            except Exception:  # a scrape must still answer the other metrics
                log.exception("drift metrics could not be computed")
                families = []
            self._cached = (time.monotonic(), stats, families)
        return families


def prometheus_families(stats) -> list:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    labels = ["method", "field", "side", "generation", "variant"]
    families = {name: GaugeMetricFamily(f"runner_{name}", text, labels=labels) for name, text in (
        ("drift_psi", "PSI of a numeric field, current windows against the default reference"),
        ("drift_wasserstein", "Wasserstein-1 distance over the reference std, current windows against the reference"),
        ("drift_js", "Jensen-Shannon distance of a categorical field against the reference"),
        ("drift_chi2_p_value", "Chi-squared p-value of a categorical field against the reference"),
        ("drift_drifted", "1 when the field's deciding score is over its threshold"),
        ("feature_count", "Values of the field in the current windows"),
    )}
    for group in drift_report(stats)["groups"]:
        for side in ("inputs", "outputs"):
            for name, score in group[side].items():
                values = [group["method"], name, side[:-1], str(group["generation"]), group["variant"]]
                families["feature_count"].add_metric(values, score["n_current"])
                _add_scores(families, values, score)
    quality = stats.answers.quality() if stats.answers else {"groups": [], "feedback": {}}
    out = list(families.values()) + _quality_families(quality, GaugeMetricFamily)
    total = CounterMetricFamily("runner_feedback", "Feedback items by result", labels=["result"])
    for result in ("joined", "duplicate", "unknown"):
        total.add_metric([result], quality["feedback"].get(result, 0))
    return [*out, total]


def _add_scores(families: dict, values: list, score: dict) -> None:
    for family, path in (("drift_psi", ("psi", "value")), ("drift_wasserstein", ("wasserstein", "value")),
                         ("drift_js", ("jensen_shannon", "value")), ("drift_chi2_p_value", ("chi_squared", "p_value"))):
        part = score.get(path[0])
        if part is not None:
            families[family].add_metric(values, part[path[1]])
    if score.get("drifted") is not None:
        families["drift_drifted"].add_metric(values, 1.0 if score["drifted"] else 0.0)


def _quality_families(quality: dict, gauge) -> list:
    labels = ["method", "field", "generation", "variant"]
    families = {name: gauge(f"runner_quality_{name}", text, labels=labels) for name, text in (
        ("accuracy", "Share of joined feedback whose truth equals the answer (categorical outputs)"),
        ("mae", "Mean absolute error of the answers against the joined truth (float outputs)"),
        ("rmse", "Root mean squared error of the answers against the joined truth (float outputs)"),
        ("count", "Values with joined feedback"),
    )}
    for group in quality["groups"]:
        for name, field in group["fields"].items():
            values = [group["method"], name, str(group["generation"]), group["variant"]]
            families["count"].add_metric(values, field["count"])
            for metric in ("accuracy", "mae", "rmse"):
                if field.get(metric) is not None:
                    families[metric].add_metric(values, field[metric])
    return list(families.values())


metrics.add_shared_collector(Collector())
