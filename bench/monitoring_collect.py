"""One monitoring round over 100 live deployments (monitoring.services.collect_all): target under 5 s.

    .venv/bin/python bench/monitoring_collect.py                     (100 deployments, 5 timed rounds)
    .venv/bin/python bench/monitoring_collect.py --deployments 300 --rounds 3

1. Recording: a real runner (the iris example, 2 workers, one-second statistics windows) with a shadow
   candidate (the same model, 100 %) answers predictions for about 3 s, the last second's inputs shifted
   (so the drift report has scores, some drifted), and feedback for 20 of them. Its four read answers are
   recorded: /metrics, /model/candidate, /model/statistics/drift, /model/quality. It is stopped.
2. "A recorded load": a threaded HTTP server (http.server.ThreadingHTTPServer, in a process of its own, as the
   runners are) answers those recordings under http://127.0.0.1:<port>/r/<n>/..., checking the admin token as
   the runner does; each /metrics read of a deployment adds 60 answered predictions to its counters, so each
   round has traffic to count. <deployments> Deployment rows (status running, a local target) in a throwaway
   SQLite database (migrated) point at /r/0 ... /r/<n-1>.
3. collect_all() runs once untimed (the first round has no counters to subtract), then --rounds times, timed:
   median and max, the samples written, and the time spent in monitoring.alerts.evaluate (the alert rules of
   each deployment, part of the round). PASS when the slowest round is under 5 s.
   Saved to bench/out/monitoring_collect.json.

Exits 0 when it ran, whatever the verdict; 1 when a round did not collect every deployment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import statistics
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import harness

sys.path.insert(0, str(harness.REPO))  # the portal's packages (bench/ is first on the path)

BENCH = "monitoring_collect"
TARGET_S = 5.0
TOKEN = "bench-monitoring-token-" + "x" * 24
RECORDED = {"/metrics": "metrics.txt", "/model/candidate": "candidate.json",
            "/model/statistics/drift": "drift.json", "/model/quality": "quality.json"}
ADMIN_PATHS = set(RECORDED) - {"/metrics"}
PREDICTIONS_PER_READ = 60


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deployments", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (after one untimed)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the recorded load's own process
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------- 1. recording a real runner

def record(scratch: Path, recordings: Path) -> dict:
    example = harness.load_example()
    bundle = example.make_bundle(scratch / "bundle")
    port = harness.free_port()
    env = harness.offline_env(RUNNER_ADMIN_TOKEN=TOKEN, RUNNER_STATS_WINDOW_SECONDS="1")
    cmd = harness.runner_command(bundle, port, 2, scratch / "state") + ["--grpc-port", "0"]
    with harness.ready_server("runner", cmd, env=env, port=port, log=scratch / "runner.log",
                              keep_as=f"{BENCH}-runner", ready=lambda c, s: harness.runner_ready(c, s, 2)) \
            as (server, client, _):
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with open(bundle / "modelpackage.zip", "rb") as package:
            put = client.put(f"{server.base_url}/model/candidate", files={"model": package},
                             data={"mode": "shadow", "weight": "100"}, headers=auth, timeout=120)
        if put.status_code != 200:
            raise RuntimeError(f"the shadow candidate was refused: {put.text[:500]}")
        ids = _traffic(client, server.base_url)
        feedback = [{"request_id": request_id, "truth": 0} for request_id in ids[:20]]
        client.post(f"{server.base_url}/model/feedback", json=feedback).raise_for_status()
        sizes = {}
        for path, name in RECORDED.items():
            answer = client.get(f"{server.base_url}{path}", headers=auth)
            answer.raise_for_status()
            (recordings / name).write_bytes(answer.content)
            sizes[path] = len(answer.content)
    drift = json.loads((recordings / "drift.json").read_text())
    fields = sum(len(group.get("inputs", {})) for group in drift["groups"])
    print(f"  recorded {', '.join(f'{p} {n:,} B' for p, n in sizes.items())}; drift: {len(drift['groups'])} groups, "
          f"{fields} input fields scored", flush=True)
    return sizes


def _traffic(client, base_url: str) -> list[str]:
    rng = random.Random(21)
    row = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    ids, started = [], time.monotonic()
    while (elapsed := time.monotonic() - started) < 3.0:
        length = rng.gauss(7.5 if elapsed > 2.2 else 5.0, 0.3)
        answer = client.post(f"{base_url}{harness.PREDICT_PATH}", json={**row, "sepal_length": length})
        answer.raise_for_status()
        ids.append(answer.headers["x-request-id"])
    client.post(f"{base_url}{harness.PREDICT_PATH}", json={**row, "sepal_length": "x"})  # one error (400)
    return ids


# ---------------------------------------------------------------- 2. the recorded load (its own process)

def serve(recordings: Path, port: int) -> int:
    answers = {path: (recordings / name).read_bytes() for path, name in RECORDED.items()}
    metrics = answers["/metrics"].decode()
    reads: dict[str, int] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            found = re.fullmatch(r"/r/(\d+)(/[^?]*)(\?.*)?", self.path)
            path = found.group(2) if found else ""
            if path not in answers:
                return self._answer(404, b'{"error": {"message": "not found"}}')
            if path in ADMIN_PATHS and self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._answer(401, b'{"error": {"message": "admin token required"}}')
            if path != "/metrics":
                return self._answer(200, answers[path])
            with lock:
                reads[found.group(1)] = reads.get(found.group(1), 0) + 1
                more = PREDICTIONS_PER_READ * reads[found.group(1)]
            return self._answer(200, _more_predictions(metrics, more).encode(), "text/plain; version=0.0.4")

        def _answer(self, status: int, body: bytes, kind: str = "application/json"):
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # a line per request would bury everything else
            pass

    ThreadingHTTPServer.request_queue_size = 128  # a round opens many connections at once
    with ThreadingHTTPServer((harness.HOST, port), Handler) as server:
        server.daemon_threads = True
        server.serve_forever()
    return 0


_PREDICT = re.compile(r'^(runner_requests_total\{route="predict",status="200"\}|'
                      r'runner_request_seconds_bucket\{.*route="predict".*\}) ([0-9.e+]+)$', re.M)


def _more_predictions(metrics: str, more: int) -> str:
    """`more` answers added to the predict route (all in its fastest bucket: every cumulative bucket grows)."""
    return _PREDICT.sub(lambda m: f"{m.group(1)} {float(m.group(2)) + more}", metrics)


# ---------------------------------------------------------------- 3. the rounds

def start_portal(scratch: Path) -> None:
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "acumos_portal.settings",
        "DJANGO_SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "ACUMOS_DATA_DIR": str(scratch / "data"),
        "DATABASE_URL": f"sqlite:///{scratch / 'db.sqlite3'}",
    })
    for name in ("CELERY_BROKER_URL", "ACUMOS_CACHE_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def make_deployments(count: int, port: int) -> None:
    from deployment.choices import DeploymentStatus, TargetKind
    from tests.factories import DeploymentFactory, RevisionFactory, TargetFactory

    target = TargetFactory(name="this host", kind=TargetKind.LOCAL)
    revision = RevisionFactory()
    for n in range(count):
        DeploymentFactory(target=target, revision=revision, status=DeploymentStatus.RUNNING,
                          endpoint_url=f"http://{harness.HOST}:{port}/r/{n}", admin_token=TOKEN)


def rounds(count: int, deployments: int) -> dict:
    from monitoring import alerts, services
    from monitoring.models import Sample

    spent = [0.0]
    evaluate = alerts.evaluate

    def timed_evaluate(deployment):
        started = time.perf_counter()
        try:
            return evaluate(deployment)
        finally:
            spent[0] += time.perf_counter() - started

    alerts.evaluate = timed_evaluate
    try:
        warmup = services.collect_all()
        print(f"  untimed first round: {warmup}", flush=True)
        timed = []
        for number in range(1, count + 1):
            spent[0] = 0.0
            summary = services.collect_all()
            timed.append({"seconds": summary.seconds, "collected": summary.collected, "samples": summary.samples,
                          "not_answering": summary.not_answering, "alerts_seconds": spent[0]})
            print(f"  round {number}: {summary.seconds:.3f} s, {summary.collected}/{summary.deployments} collected, "
                  f"{summary.samples} samples, alert rules {spent[0]:.3f} s", flush=True)
            if summary.collected != deployments:
                raise RuntimeError(f"round {number} did not collect every deployment: {summary.failures}")
    finally:
        alerts.evaluate = evaluate
    latest = Sample.objects.filter(variant="live").latest("at", "pk")
    return {"rounds": timed, "warmup_seconds": warmup.seconds,
            "a_live_sample": {"requests": latest.requests, "errors": latest.errors, "p50_ms": latest.p50_ms,
                              "p99_ms": latest.p99_ms, "drift_fields": len(latest.drift),
                              "quality_fields": len(latest.quality)}}


def run(args) -> int:
    if args.serve:
        return serve(args.serve, args.port)
    results = {"machine": harness.machine(), "deployments": args.deployments, "target_s": TARGET_S}
    with contextlib.ExitStack() as stack:
        scratch = harness.scratch_dir(stack, "acumos-bench-monitoring-")
        recordings = scratch / "recorded"
        recordings.mkdir()
        print("1. recording a real runner's answers", flush=True)
        results["recorded_bytes"] = record(scratch, recordings)
        port = harness.free_port()
        cmd = [str(harness.PYTHON), __file__, "--serve", str(recordings), "--port", str(port)]
        stack.enter_context(harness.ready_server(
            "recorded load", cmd, env=harness.offline_env(), port=port, log=scratch / "load.log",
            keep_as=f"{BENCH}-load", ready=harness.answers_200("/r/0/metrics")))
        print(f"2. the recorded load on port {port}; {args.deployments} deployments in SQLite", flush=True)
        start_portal(scratch)
        make_deployments(args.deployments, port)
        results["background_cpu_pct"] = harness.check_quiet("the rounds")
        print(f"3. {args.rounds} timed rounds", flush=True)
        results.update(rounds(args.rounds, args.deployments))
    times = [r["seconds"] for r in results["rounds"]]
    results["median_s"], results["max_s"] = statistics.median(times), max(times)
    results["verdict"] = "PASS" if results["max_s"] < TARGET_S else "FAIL"
    path = harness.write_results(BENCH, results)
    print(f"\n{args.deployments} deployments: median {results['median_s']:.3f} s, max {results['max_s']:.3f} s "
          f"per round (target < {TARGET_S:.0f} s): {results['verdict']}\n"
          f"  a live sample: {results['a_live_sample']}\n"
          f"  saved to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(harness.run_main(run, parse_args(sys.argv[1:])))
