"""Collecting every live deployment's runner figures into Samples (one round per
ACUMOS_MONITORING_INTERVAL_SECONDS, monitoring.tasks), and keeping them no longer than the retention.

A round reads each replica's runner (runner_client: /metrics, /model/candidate, the drift report, quality),
deployments side by side in a small thread pool (the threads only talk HTTP; every database read and write
is in the calling thread), then writes one Sample per variant of each deployment that answered and lets its
alert rules judge it (monitoring.alerts). A runner that does not answer is counted and logged; the round
goes on.

Runners count from the moment they start (Prometheus counters, the candidate's counts since it was set);
a sample holds what was counted since the previous round: the live sample keeps each replica's cumulative
reading (Sample.counters) and the next round subtracts it. A count that went down means the runner
restarted: what it counted since is then its whole count, never a negative or a huge difference.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import JSONField, OuterRef, Subquery
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from deployment import runner_client
from deployment.backends import backend_for
from deployment.backends.base import BackendError
from deployment.choices import LIVE
from deployment.models import Deployment
from deployment.runner_client import RunnerError
from monitoring import alerts, rollouts
from monitoring.choices import Variant
from monitoring.models import Sample

log = logging.getLogger(__name__)

# The runner's routes that answer predictions (runner_image: web.endpoint and grpc_calls name them): REST,
# /transform*Default, the Open Inference Protocol over HTTP and gRPC, the model's own gRPC service.
PREDICTION_ROUTES = frozenset({"predict", "transform", "v2_infer", "grpc_model", "grpc_infer"})
_METRIC_LINES = ("runner_requests_total{", "runner_request_seconds_bucket{")
HELD_STATES = ("active", "promoting")  # a candidate in these states answers (runner_image.variants)
CANDIDATE_VARIANTS = (Variant.CANARY, Variant.SHADOW)
VARIANT_COUNTS = ("requests", "errors", "compared", "agreed")  # a candidate's counts kept between rounds
MAX_FIELDS = 256          # drift or quality entries kept per sample (the runner keeps 256 fields per method)
COUNT_CEILING = 2**31 - 1  # a PositiveIntegerField's bound: a runner's count never overflows the row
PRUNE_BATCH = 5000


class NotAnswering(Exception):
    """No replica of the deployment gave its figures this round: the message says why."""


# ---------------------------------------------------------------- one replica's reading

@dataclass
class Reading:
    """One replica's answers this round, reduced to what the samples need.

    `counts` are cumulative and are what Sample.counters keeps: requests and errors (HTTP 4xx and 5xx: the
    caller got no prediction) on the prediction routes, their latency histogram's buckets ({upper bound:
    cumulative count}, Prometheus `le`), and the candidate's per-variant counts under its id (`epoch`)."""

    counts: dict
    live_generation: int | None = None
    candidate: dict | None = None      # the current (or last) candidate: id, mode, generation, state
    latency: dict = field(default_factory=dict)  # the candidate's variants: {variant: {p50, p99}} (ms)
    drift: dict = field(default_factory=dict)    # {(variant, generation): {"<method>.<field>": entry}}
    quality: dict = field(default_factory=dict)  # the same keys: {"<method>.<field>": {metric, value, count}}


def read_replica(url: str, token: str) -> Reading:
    """Ask one runner for everything a round needs. RunnerError when it does not answer, or answers
    figures the portal cannot read (a runner runs a stranger's code: its answers are checked, not trusted)."""
    described = _unless_absent(runner_client.candidate, url, token)
    text = runner_client.metrics(url)
    drift_report = _unless_absent(runner_client.drift, url, token)
    quality_report = _unless_absent(runner_client.quality, url, token)
    try:
        return reduce_answers(text, described, drift_report, quality_report)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RunnerError(f"the runner at {url} answered figures the portal cannot read ({exc!r:.200})") from exc


def _unless_absent(read, url: str, token: str) -> dict:
    """What the runner has of these figures: nothing from a runner started with RUNNER_STATISTICS=0 (409 for
    drift and quality) or from an image made before it had them (404); its traffic is still counted."""
    try:
        return read(url, token)
    except RunnerError as exc:
        if exc.status in (404, 409):
            return {}
        raise


def reduce_answers(metrics_text: str, described: dict, drift_report: dict, quality_report: dict) -> Reading:
    counts = route_counts(metrics_text)
    found = described.get("candidate")
    description = {"id": str(found["id"]), "mode": str(found["mode"]), "state": str(found["state"]),
                   "generation": _generation(found["generation"])} if found else None
    figures = {variant: described["metrics"][variant] for variant in CANDIDATE_VARIANTS
               if variant in (described.get("metrics") or {})}
    counts["epoch"] = description["id"] if description else None
    counts["variants"] = {variant: {name: _count(f.get(name, 0)) for name in VARIANT_COUNTS}
                          for variant, f in figures.items()}
    latency = {variant: {q: _finite((f.get("latency_ms") or {}).get(q)) for q in ("p50", "p99")}
               for variant, f in figures.items()}
    live = described.get("live") or {}
    return Reading(counts=counts, live_generation=_generation(live.get("generation")), candidate=description,
                   latency=latency, drift=drift_entries(drift_report), quality=quality_entries(quality_report))


def route_counts(metrics_text: str) -> dict:
    """Requests, errors and latency buckets of the prediction routes, all workers (the runner merges its
    workers' counters: prometheus-client's multiprocess mode), from the /metrics text."""
    wanted = "\n".join(line for line in metrics_text.splitlines() if line.startswith(_METRIC_LINES))
    requests = errors = 0
    buckets: dict[str, int] = {}
    for family in text_string_to_metric_families(wanted):
        for sample in family.samples:
            if sample.labels.get("route") not in PREDICTION_ROUTES:
                continue
            if sample.name == "runner_requests_total":
                n = _count(sample.value)
                requests += n
                errors += n if int(sample.labels.get("status", "0")) >= 400 else 0
            elif sample.name == "runner_request_seconds_bucket":
                bound = str(float(sample.labels["le"]))  # "1.0" and "1" are one bucket; "+Inf" is "inf"
                buckets[bound] = buckets.get(bound, 0) + _count(sample.value)
    return {"requests": requests, "errors": errors, "buckets": buckets}


def drift_entries(report: dict) -> dict:
    """The drift report's input fields, per (variant, generation): {"<method>.<field>": {score, threshold,
    drifted, measure}}, with the score that decided (the runner's `decided_by`): "wasserstein" or
    "jensen_shannon" (a distance: drifted at or above the threshold) or "chi_squared_p" (a p-value: drifted
    below it). A field the runner could not judge (no reference yet, under 30 values) is left out."""
    out: dict = {}
    for group in report.get("groups") or []:
        key = (group["variant"], _generation(group["generation"]))
        entries = out.setdefault(key, {})
        for name, score in (group.get("inputs") or {}).items():
            entry = _drift_entry(score)
            if entry is not None and len(entries) < MAX_FIELDS:
                entries[f"{group['method']}.{name}"] = entry
    return out


def _drift_entry(score: dict) -> dict | None:
    decided, drifted = score.get("decided_by"), score.get("drifted")
    if decided not in score or not isinstance(drifted, bool):
        return None
    part = score[decided]
    measure, value = ("chi_squared_p", part["p_value"]) if decided == "chi_squared" else (decided, part["value"])
    return {"score": _finite(value), "threshold": float(part["threshold"]), "drifted": drifted, "measure": measure}


def quality_entries(report: dict) -> dict:
    """Quality from feedback per (variant, generation): {"<method>.<field>": {metric, value, count}}, the
    metric the runner computes for the field's type (accuracy, or mae for numbers), over all feedback joined."""
    out: dict = {}
    for group in report.get("groups") or []:
        entries = out.setdefault((group["variant"], _generation(group["generation"])), {})
        for name, figures in (group.get("fields") or {}).items():
            metric = figures.get("metric")
            value = _finite(figures.get(metric)) if metric else None
            if value is not None and len(entries) < MAX_FIELDS:
                entries[f"{group['method']}.{name}"] = {"metric": str(metric), "value": value,
                                                         "count": _count(figures.get("count", 0))}
    return out


def _count(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"a count must be a number of at least 0, not {value!r:.40}")
    return int(value)


def _generation(value) -> int | None:
    return None if value is None else _count(value)


def _finite(value) -> float | None:
    """JSON numbers for the database: the runner writes NaN and infinities as strings, kept here as null."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


# ---------------------------------------------------------------- since the previous round

def counter_delta(previous: dict | None, current: dict) -> dict:
    """What one replica counted since `previous` (both cumulative readings). Without a previous reading:
    everything since the runner started. A restarted runner (a count went down) counted from zero again, so
    what it counted since is its current count. The candidate's counts belong to its id: a new candidate
    starts at zero."""
    base = previous if previous and not _restarted(previous, current) else {}
    buckets = {bound: n - base.get("buckets", {}).get(bound, 0) for bound, n in current["buckets"].items()}
    same_candidate = previous is not None and previous.get("epoch") == current.get("epoch")
    variants = {}
    for variant, counts in current.get("variants", {}).items():
        before = (previous.get("variants") or {}).get(variant, {}) if same_candidate else {}
        if any(n < before.get(name, 0) for name, n in counts.items()):
            before = {}  # the candidate's counts went down: its runner lost them (a new state directory)
        variants[variant] = {name: n - before.get(name, 0) for name, n in counts.items()}
    return {"requests": current["requests"] - base.get("requests", 0),
            "errors": current["errors"] - base.get("errors", 0), "buckets": buckets, "variants": variants}


def _restarted(previous: dict, current: dict) -> bool:
    if current["requests"] < previous.get("requests", 0) or current["errors"] < previous.get("errors", 0):
        return True
    before = previous.get("buckets", {})
    return any(n < before.get(bound, 0) for bound, n in current["buckets"].items())


def histogram_quantile(q: float, buckets: dict) -> float | None:
    """The q-quantile of a Prometheus histogram's cumulative buckets ({upper bound: count}), interpolated
    linearly inside its bucket as Prometheus' histogram_quantile does; in the +Inf bucket, the highest finite
    bound. None without observations."""
    ordered = sorted((float(bound), n) for bound, n in buckets.items())
    total = ordered[-1][1] if ordered else 0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0
    for bound, n in ordered:
        if n >= rank:  # here `below` < rank <= n: the bucket is not empty
            return lower if math.isinf(bound) else lower + (bound - lower) * (rank - below) / (n - below)
        lower, below = bound, n
    return lower  # the counts are not cumulative after all (a runner's own mistake): its highest bound


# ---------------------------------------------------------------- a deployment's samples

def samples_from(replicas: dict[str, Reading | None], previous: dict) -> tuple[list[dict], dict]:
    """The samples (as field values) of one deployment this round, and the counters the live one keeps.

    `replicas`: each replica's reading by admin URL (None: it did not answer; at least one did);
    `previous`: the last live sample's counters. Several replicas are merged so:
    - counts and latency buckets are summed (the deployment's traffic is theirs together);
    - the candidate's latency is the worst replica's (the runner gives quantiles, which do not add up);
    - a field's drift is the worst replica's (drifted first, then the furthest past its threshold): one
      replica seeing drift is drift;
    - quality is the replicas' mean weighted by their feedback counts (accuracy and MAE are means: exact);
    - a shadow's agreement is the agreed over the compared, both summed."""
    readings = {url: reading for url, reading in replicas.items() if reading is not None}
    deltas = {url: counter_delta(previous.get(url), reading.counts) for url, reading in readings.items()}
    # A replica that did not answer keeps its last reading (its next answer is counted from there); one the
    # target no longer lists is forgotten.
    counters = {url: previous[url] for url in replicas if url not in readings and url in previous}
    counters.update({url: reading.counts for url, reading in readings.items()})
    first = readings[min(readings)]
    live = _live_sample(readings, deltas, first.live_generation)
    return [live, *_candidate_samples(readings, deltas, previous)], counters


def _live_sample(readings: dict, deltas: dict, generation: int | None) -> dict:
    buckets: dict[str, int] = {}
    for delta in deltas.values():
        for bound, n in delta["buckets"].items():
            buckets[bound] = buckets.get(bound, 0) + n
    # A canary answers part of the traffic the prediction routes count: its share is its own sample's.
    canary = {name: sum(d["variants"].get(Variant.CANARY, {}).get(name, 0) for d in deltas.values())
              for name in ("requests", "errors")}
    requests = sum(d["requests"] for d in deltas.values()) - canary["requests"]
    errors = sum(d["errors"] for d in deltas.values()) - canary["errors"]
    return {"variant": Variant.LIVE, "generation": generation, "requests": _bounded(requests),
            "errors": _bounded(min(errors, requests)), "p50_ms": _ms(histogram_quantile(0.5, buckets)),
            "p99_ms": _ms(histogram_quantile(0.99, buckets)),
            **_fields(readings, (Variant.LIVE, generation))}


def _candidate_samples(readings: dict, deltas: dict, previous: dict) -> list[dict]:
    """A sample for the candidate while it is set; and one more in the round after it ended, when the
    previous round saw it and it answered since (its last figures are not lost)."""
    description = next((r.candidate for r in readings.values() if r.candidate), None)
    if not description or description.get("mode") not in CANDIDATE_VARIANTS:
        return []
    variant, generation = description["mode"], description["generation"]
    counted = {name: sum(d["variants"].get(variant, {}).get(name, 0) for d in deltas.values())
               for name in VARIANT_COUNTS}
    seen_before = any(counts.get("epoch") == description["id"] for counts in previous.values())
    if description.get("state") not in HELD_STATES and not (seen_before and counted["requests"]):
        return []
    latency = [r.latency.get(variant, {}) for r in readings.values()]
    return [{"variant": variant, "generation": generation, "requests": _bounded(counted["requests"]),
             "errors": _bounded(min(counted["errors"], counted["requests"])),
             "p50_ms": _worst(part.get("p50") for part in latency),
             "p99_ms": _worst(part.get("p99") for part in latency),
             "agreement_rate": counted["agreed"] / counted["compared"] if counted["compared"] else None,
             **_fields(readings, (variant, generation))}]


def _fields(readings: dict, key: tuple) -> dict:
    drift: dict = {}
    quality: dict = {}
    for reading in readings.values():
        for name, entry in reading.drift.get(key, {}).items():
            drift[name] = max(drift[name], entry, key=_severity) if name in drift else entry
        for name, entry in reading.quality.get(key, {}).items():
            quality[name] = _pooled(quality[name], entry) if name in quality else entry
    return {"drift": drift, "quality": quality}


def _severity(entry: dict) -> tuple:
    """How far past its threshold a drift score is (above it for a distance, below it for a p-value)."""
    score, threshold = entry["score"], entry["threshold"]
    if score is None:
        return entry["drifted"], math.inf if entry["drifted"] else 0.0
    if entry["measure"] == "chi_squared_p":
        return entry["drifted"], threshold / score if score > 0 else math.inf
    return entry["drifted"], score / threshold if threshold > 0 else score


def _pooled(a: dict, b: dict) -> dict:
    count = a["count"] + b["count"]
    value = (a["value"] * a["count"] + b["value"] * b["count"]) / count if count else a["value"]
    return {"metric": a["metric"], "value": value, "count": count}


def _worst(values) -> float | None:
    found = [v for v in values if v is not None]
    return max(found) if found else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _bounded(n: int) -> int:
    return max(0, min(int(n), COUNT_CEILING))


# ---------------------------------------------------------------- rounds

@dataclass
class Round:
    """What a collection round did: logged, and returned to whoever asked for it."""

    deployments: int = 0
    collected: int = 0
    not_answering: int = 0
    samples: int = 0
    seconds: float = 0.0
    failures: dict = field(default_factory=dict)  # deployment id -> why

    def __str__(self) -> str:
        return (f"{self.collected} of {self.deployments} live deployments collected ({self.samples} samples), "
                f"{self.not_answering} not answering, in {self.seconds:.2f} s")


@dataclass
class _Job:
    deployment: Deployment
    backend: object
    token: str
    previous: dict


def collect_all() -> Round:
    """One round: every live deployment's runners read side by side, their samples written here."""
    started, at = time.monotonic(), timezone.now()
    jobs, summary = _jobs(), Round()
    summary.deployments = len(jobs)
    workers = max(1, min(settings.ACUMOS_MONITORING_CONCURRENCY, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="acumos-monitoring") as pool:
        pending = {pool.submit(_read_deployment, job): job for job in jobs}
        for future in as_completed(pending):  # each written as soon as read, while the others are read
            job = pending[future]
            try:
                readings = future.result()
            except Exception as exc:  # anything one deployment does must not stop the round
                _not_answering(summary, job.deployment, exc)
                continue
            summary.samples += len(_record(job, readings, at))
            summary.collected += 1
    summary.seconds = time.monotonic() - started
    log.info("monitoring round: %s", summary)
    return summary


def collect(deployment: Deployment) -> list[Sample]:
    """One deployment's samples now (what a round does for each). NotAnswering when no replica answers."""
    job = _job(deployment, _previous_counters(deployment))
    try:
        readings = _read_deployment(job)
    except (BackendError, RunnerError) as exc:
        raise NotAnswering(str(exc)) from exc
    return _record(job, readings, timezone.now())


def _jobs() -> list[_Job]:
    latest = Sample.objects.filter(deployment=OuterRef("pk"), variant=Variant.LIVE).order_by("-at", "-pk")
    # The revision's solution: a Kubernetes target names its objects after it (admin_urls, in the threads).
    deployments = (Deployment.objects.filter(status__in=LIVE).select_related("target", "revision__solution")
                   .annotate(last_counters=Subquery(latest.values("counters")[:1], output_field=JSONField())))
    jobs = []
    for deployment in deployments:
        try:
            jobs.append(_job(deployment, deployment.last_counters or {}))
        except Exception:  # a target that cannot be used (its kind unknown here, a secret that does not decrypt)
            log.exception("monitoring: deployment %s cannot be read", deployment.pk)
    return jobs


def _job(deployment: Deployment, previous: dict) -> _Job:
    # The backend and the token are made here: decrypting reads settings, and the threads touch no database.
    return _Job(deployment, backend_for(deployment.target), deployment.admin_token(), previous)


def _previous_counters(deployment: Deployment) -> dict:
    last = (Sample.objects.filter(deployment=deployment, variant=Variant.LIVE).order_by("-at", "-pk")
            .values_list("counters", flat=True).first())
    return last or {}


def _read_deployment(job: _Job) -> dict[str, Reading | None]:
    """Every replica's reading (in a pool thread: HTTP only); None for one that did not answer (logged).
    When none answers, the first one's error is raised."""
    urls = job.backend.admin_urls(job.deployment)
    readings, errors = {}, []
    for url in urls:
        try:
            readings[url] = read_replica(url, job.token)
        except RunnerError as exc:
            readings[url] = None
            errors.append(exc)
    if not any(readings.values()):
        raise errors[0] if errors else BackendError("the target gave no address of a replica")
    if errors:
        log.warning("monitoring: %d of %d replicas of deployment %s did not answer: %s", len(errors), len(urls),
                    job.deployment.pk, errors[0])
    return readings


def _record(job: _Job, readings: dict[str, Reading | None], at) -> list[Sample]:
    values, counters = samples_from(readings, job.previous)
    samples = [Sample(deployment=job.deployment, at=at, **fields) for fields in values]
    samples[0].counters = counters  # the live sample: the next round counts from here
    Sample.objects.bulk_create(samples)
    try:
        alerts.evaluate(job.deployment)
    except Exception:  # a rule that cannot be judged must not lose the other deployments' round
        log.exception("monitoring: the alert rules of deployment %s could not be evaluated", job.deployment.pk)
    try:
        rollouts.advance(job.deployment)  # its gates read the samples just written
    except Exception:  # likewise: a rollout that cannot be judged waits for the next round
        log.exception("monitoring: the rollout of deployment %s could not be judged", job.deployment.pk)
    return samples


def _not_answering(summary: Round, deployment: Deployment, exc: Exception) -> None:
    summary.not_answering += 1
    summary.failures[str(deployment.pk)] = str(exc)[:300]
    if isinstance(exc, RunnerError | BackendError):
        log.warning("monitoring: deployment %s did not answer: %s", deployment.pk, exc)
    else:
        log.error("monitoring: deployment %s could not be read", deployment.pk, exc_info=exc)


# ---------------------------------------------------------------- retention

def prune(now=None) -> int:
    """Delete the samples older than ACUMOS_MONITORING_RETENTION_DAYS, in batches (short transactions, no
    long lock on a table the rounds write to), deployment by deployment (the (deployment, at) index finds
    them). Returns how many went."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.ACUMOS_MONITORING_RETENTION_DAYS)
    deleted = 0
    for deployment_id in list(Deployment.objects.values_list("pk", flat=True)):
        old = Sample.objects.filter(deployment_id=deployment_id, at__lt=cutoff)
        while ids := list(old.values_list("pk", flat=True)[:PRUNE_BATCH]):
            deleted += Sample.objects.filter(pk__in=ids).delete()[0]
    if deleted:
        log.info("monitoring: %d samples older than %s deleted", deleted, cutoff)
    return deleted
