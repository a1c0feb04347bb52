"""Batch inference (batch.services, the portal's job) against one HTTP request per row, on the same runner in the
same run; and the job's peak memory as its input grows (target: at least 20x the per-row rate; memory flat).

    .venv/bin/python bench/batch_vs_per_row.py                          (100,000 and 1,000,000 rows)
    .venv/bin/python bench/batch_vs_per_row.py --rows 20000,100000 --per-row 2000

1. A real runner (python -m runner_image serve, 1 worker) of the iris example whose fields are repeated (one
   message is many rows: the request shape batch jobs use for it, OIP tensors of n values), and a throwaway
   portal (SQLite, local storage) with a running Deployment row pointing at it.
2. Per row: --per-row rows, each its own POST /model/methods/classify on a kept-alive connection, one after
   another (what a client looping over a file does). Rows per second.
3. Batch: for each --rows size, a CSV of that many rows (written to disk as it is made) is uploaded to the
   portal's storage and a batch job runs it, in a process of its own (so that its peak RSS, ru_maxrss, is the
   job's alone). Rows per second (the job's own figure) and peak RSS.
Prints the figures and saves them to bench/out/batch_vs_per_row.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

import harness

sys.path.insert(0, str(harness.REPO))

BENCH = "batch_vs_per_row"
TOKEN = "bench-batch-token-" + "x" * 24
TARGET_SPEEDUP = 20.0


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000,1000000", help="input sizes for the batch job, comma-separated")
    parser.add_argument("--per-row", type=int, default=3000, help="rows sent one request each")
    parser.add_argument("--shard-rows", type=int, default=50_000)
    parser.add_argument("--child-job", help=argparse.SUPPRESS)  # the job's own process
    return parser.parse_args(argv)


def start_portal(scratch: Path, *, migrate: bool) -> None:
    os.environ.update({"DJANGO_SETTINGS_MODULE": "acumos_portal.settings",
                       "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-" + uuid.uuid4().hex),
                       "ACUMOS_DATA_DIR": str(scratch / "data"), "ACUMOS_STORAGE": "local",
                       "DATABASE_URL": f"sqlite:///{scratch / 'db.sqlite3'}"})
    for name in ("CELERY_BROKER_URL", "ACUMOS_CACHE_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)


def write_csv(path: Path, rows: int) -> int:
    rng = random.Random(rows)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", *harness.FEATURES])
        for i in range(rows):
            writer.writerow([f"r{i}", round(rng.uniform(4.3, 7.9), 1), round(rng.uniform(2.0, 4.4), 1),
                             round(rng.uniform(1.0, 6.9), 1), round(rng.uniform(0.1, 2.5), 1)])
    return path.stat().st_size


def per_row(base_url: str, rows: int) -> dict:
    import requests

    rng = random.Random(0)
    with requests.Session() as session:
        started = time.perf_counter()
        for _ in range(rows):
            body = {name: [round(rng.uniform(1, 7), 1)] for name in harness.FEATURES}
            answer = session.post(f"{base_url}{harness.PREDICT_PATH}", json=body, timeout=10)
            answer.raise_for_status()
        seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_second": round(rows / seconds, 1)}


def batch(scratch: Path, deployment, owner, rows: int, shard_rows: int) -> dict:
    from django.core.files import File
    from django.core.files.storage import default_storage

    from batch import services
    from batch.models import BatchJob, BatchUpload
    from marketplace.storage import file_sha256

    path = scratch / f"input-{rows}.csv"
    size = write_csv(path, rows)
    sha256, _ = file_sha256(path)
    with open(path, "rb") as handle:
        key = default_storage.save(f"batch/uploads/bench/{path.name}", File(handle))
    upload = BatchUpload.objects.create(owner=owner, name=path.name, storage_key=key, size=size, sha256=sha256)
    job = services.start_job(user=owner, deployment=deployment, method="classify", id_column="id",
                             input={"kind": "upload", "upload": str(upload.pk), "sha256": sha256},
                             shard_rows=shard_rows)
    started = time.perf_counter()
    child = subprocess.run([str(harness.PYTHON), __file__, "--child-job", str(job.pk)], env=os.environ.copy(),
                           capture_output=True, text=True, check=False, timeout=3600)
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(f"the job's process failed:\n{child.stderr[-3000:]}")
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    job = BatchJob.objects.get(pk=job.pk)
    if job.status != "succeeded" or job.rows_predicted != rows:
        raise RuntimeError(f"the job did not predict every row: {job.status} {job.rows_predicted} {job.error}")
    path.unlink()
    return {"rows": rows, "input_bytes": size, "seconds_with_process_start": round(seconds, 2),
            "job_seconds": figures["seconds"], "rows_per_second": round(rows / figures["seconds"], 1),
            "peak_rss_mib": figures["peak_rss_mib"], "requests": figures["requests"],
            "request_shape": job.request_shape}


def child_job(job_id: str) -> None:
    from batch import runner, services

    sent = []
    original = runner.Predictor.__exit__

    def count(self, *exc):  # the number of requests the job sent, for the record
        sent.append(self.requests)
        return original(self, *exc)

    runner.Predictor.__exit__ = count
    started = time.perf_counter()
    services.run_job(job_id)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mib": round(peak, 1), "requests": sum(sent)}))


def run(args) -> int:
    import contextlib

    results = {"machine": harness.machine(), "target_speedup": TARGET_SPEEDUP}
    with contextlib.ExitStack() as stack:
        scratch = harness.scratch_dir(stack, "acumos-bench-batch-")
        os.environ["ACUMOS_BENCH_SCRATCH"] = str(scratch)
        start_portal(scratch, migrate=True)
        from acumos_portal import jobs

        jobs.send = lambda *args, **kwargs: None  # the job runs in a process of its own (batch), not here
        bundle = harness.load_example().make_bundle(scratch / "bundle", repeated=True)
        port = harness.free_port()
        env = harness.offline_env(RUNNER_ADMIN_TOKEN=TOKEN)
        cmd = harness.runner_command(bundle, port, 1, scratch / "state") + ["--grpc-port", "0"]
        server, _, _ = stack.enter_context(harness.ready_server(
            "runner", cmd, env=env, port=port, log=scratch / "runner.log", keep_as=f"{BENCH}-runner",
            ready=lambda c, s: harness.runner_ready(c, s, 1)))
        from deployment.choices import DeploymentStatus, TargetKind
        from tests.factories import DeploymentFactory, TargetFactory, UserFactory

        owner = UserFactory(username="bench")
        deployment = DeploymentFactory(created_by=owner, status=DeploymentStatus.RUNNING,
                                       target=TargetFactory(kind=TargetKind.LOCAL), endpoint_url=server.base_url)
        results["per_row"] = per_row(server.base_url, args.per_row)
        print(f"per row:  {results['per_row']['rows_per_second']:>10,.0f} rows/s  ({args.per_row} requests)")
        results["batch"] = []
        for rows in [int(n) for n in args.rows.split(",")]:
            figures = batch(scratch, deployment, owner, rows, args.shard_rows)
            results["batch"].append(figures)
            print(f"batch {rows:>9,} rows: {figures['rows_per_second']:>10,.0f} rows/s, "
                  f"{figures['requests']} requests, peak RSS {figures['peak_rss_mib']} MiB, {figures['job_seconds']} s")
    best = max(b["rows_per_second"] for b in results["batch"])
    results["speedup"] = round(best / results["per_row"]["rows_per_second"], 1)
    rss = [b["peak_rss_mib"] for b in results["batch"]]
    results["rss_growth"] = round(rss[-1] / rss[0], 2)
    print(f"speed-up: {results['speedup']}x (target {TARGET_SPEEDUP}x: "
          f"{'PASS' if results['speedup'] >= TARGET_SPEEDUP else 'FAIL'}); peak RSS {rss[0]} -> {rss[-1]} MiB "
          f"({results['rss_growth']}x over {results['batch'][0]['rows']:,} -> {results['batch'][-1]['rows']:,} rows)")
    harness.OUT_DIR.mkdir(parents=True, exist_ok=True)
    (harness.OUT_DIR / f"{BENCH}.json").write_text(json.dumps(results, indent=2))
    return 0


def main(argv=None) -> int:
    args = parse(argv if argv is not None else sys.argv[1:])
    if args.child_job:
        start_portal(Path(os.environ["ACUMOS_BENCH_SCRATCH"]), migrate=False)
        child_job(args.child_job)
        return 0
    return harness.run_main(run, args)


if __name__ == "__main__":
    sys.exit(main())
