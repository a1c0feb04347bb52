"""Prometheus metrics. With several workers, prometheus-client's multiprocess mode aggregates them
(the serve command sets PROMETHEUS_MULTIPROC_DIR before the workers start)."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUESTS = Counter("runner_requests_total", "Requests answered, by route and status", ["route", "status"])
LATENCY = Histogram("runner_request_seconds", "Time to answer a request, by route", ["route"],
                    buckets=_LATENCY_BUCKETS)
PREDICTIONS = Counter("runner_predictions_total", "Method calls answered by the model", ["method"])
SWAPS = Counter("runner_swaps_total", "Swaps attempted, by action and result", ["action", "result"])
SWAP_SECONDS = Histogram("runner_swap_seconds", "Time from swap request to every worker serving the new model",
                         buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
ENTITLEMENT_USED = Gauge("runner_entitlement_used", "Predictions counted against the installed entitlement",
                         multiprocess_mode="livemostrecent")  # one shared count: the latest reading is it
ENTITLEMENT_REFUSED = Counter("runner_entitlement_refused_total", "Predictions the entitlement refused, by code",
                              ["code"])
BATCH_REQUESTS = Histogram("runner_batch_requests", "Requests answered by one model call (runner_image.batching)",
                           buckets=(1, 2, 4, 8, 16, 32, 64, 128))
GENERATION = Gauge("runner_model_generation", "Generation of the model this worker serves",
                   multiprocess_mode="liveall")


def observe(route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(route, str(status)).inc()
    LATENCY.labels(route).observe(seconds)


def prediction(method: str) -> None:
    PREDICTIONS.labels(method).inc()


def swap_done(action: str, seconds: float) -> None:
    SWAPS.labels(action, "ok").inc()
    SWAP_SECONDS.observe(seconds)


def swap_failed(action: str) -> None:
    SWAPS.labels(action, "rejected").inc()


def entitlement_used(used: int) -> None:
    ENTITLEMENT_USED.set(used)


def entitlement_refused(code: str) -> None:
    ENTITLEMENT_REFUSED.labels(code).inc()


def batch(requests: int) -> None:
    BATCH_REQUESTS.observe(requests)


def model_active(slot) -> None:
    GENERATION.set(slot.generation)


# Collectors that merge what every worker shared through the state directory (drift statistics, variants):
# prometheus-client's multiprocess mode covers counters and histograms, not these.
_SHARED_COLLECTORS: list = []


def add_shared_collector(collector) -> None:
    """Register a collector whose collect() already merges every worker (called once per process)."""
    if collector not in _SHARED_COLLECTORS:
        _SHARED_COLLECTORS.append(collector)


def render() -> tuple[bytes, str]:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
        payload = generate_latest(registry)
    else:
        payload = generate_latest()
    for collector in _SHARED_COLLECTORS:
        registry = CollectorRegistry()
        registry.register(collector)
        payload += generate_latest(registry)
    return payload, CONTENT_TYPE_LATEST
