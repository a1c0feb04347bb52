"""Our runner against `mlflow models serve`, on the same fitted iris RandomForest, in one run.

    .venv/bin/python bench/runner_vs_mlflow.py      (or: make bench-runner)

Each server is started, checked for a correct answer, warmed up, loaded with
`wrk -t2 -c16 -d20s --latency` (single-row JSON POSTs) and stopped before the next one starts.
An in-process loop (parse JSON -> row -> predict -> JSON) gives the floor: the cost of one request on one core
with no server at all.
Target: runner req/s >= 3x MLflow's and runner p99 < MLflow's p99, both measured in this run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import harness
from harness import FEATURES, SAMPLE_BODY, SAMPLE_ROW, Server, WrkResult

# Recorded on this machine with MLflow 3.17.2; printed beside this run's figures for context only.
ANCHOR = {"mlflow_version": "3.17.2", "mlflow_rps": 172.0, "mlflow_p50_ms": 88.0, "mlflow_p99_ms": 192.0,
          "floor_ms_per_request_per_core": 1.8}
TARGET_RPS_RATIO = 3.0
MLFLOW_WORKERS = 2
BENCH = "runner_vs_mlflow"
TREE_TYPE = "sklearn.tree._tree.Tree"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of measured load per server")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load before it")
    parser.add_argument("--floor-seconds", type=float, default=5.0, help="time budget of the in-process loop")
    parser.add_argument("--floor-iterations", type=int, default=5000, help="most iterations of that loop")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- the model, two ways

def save_for_mlflow(estimator, out: Path) -> Path:
    import mlflow.sklearn
    import pandas as pd
    import sklearn
    from mlflow.models import infer_signature

    example = pd.DataFrame([SAMPLE_ROW], columns=list(FEATURES))
    signature = infer_signature(example, estimator.predict(example.to_numpy()))
    # Explicit requirements: MLflow would otherwise infer them by importing the model in a subprocess.
    requirements = [f"mlflow=={mlflow.__version__}", f"scikit-learn=={sklearn.__version__}"]
    # MLflow's default format (skops) refuses tree internals unless told they are trusted; we made this file.
    mlflow.sklearn.save_model(estimator, str(out), signature=signature, input_example=example,
                              pip_requirements=requirements, skops_trusted_types=[TREE_TYPE])
    return out


def expected_species(estimator) -> int:
    return int(estimator.predict([list(SAMPLE_ROW)])[0])


# ---------------------------------------------------------------- in-process floor

def measure_floor(estimator, seconds: float, most: int) -> dict:
    """What one request costs with no server at all: the same work a server must do, in a loop."""
    import numpy as np

    body = SAMPLE_BODY.encode()

    def one_request() -> bytes:
        fields = json.loads(body)
        row = np.array([[fields[name] for name in FEATURES]], dtype=float)
        return json.dumps({"species": int(estimator.predict(row)[0])}).encode()

    busy = harness.check_quiet("the in-process floor")
    for _ in range(20):  # first calls pay for imports and caches
        one_request()
    timings = []
    deadline = time.perf_counter() + seconds
    while len(timings) < most and time.perf_counter() < deadline:
        started = time.perf_counter()
        one_request()
        timings.append(time.perf_counter() - started)
    mean_ms = statistics.fmean(timings) * 1000
    return {"iterations": len(timings), "mean_ms": mean_ms, "median_ms": statistics.median(timings) * 1000,
            "rps_per_core": 1000 / mean_ms, "background_cpu_pct": round(busy, 1)}


# ---------------------------------------------------------------- serving and loading

def check_answer(client, server: Server, url: str, *, body: str, read_species, expected: int) -> None:
    """A server that answers wrongly must not be benchmarked: the figures would mean nothing."""
    response = client.post(url, content=body, headers={"Content-Type": "application/json"})
    if response.status_code != 200:
        raise RuntimeError(f"{server.name} answered {response.status_code}: {response.text[:500]}")
    got = read_species(response.json())
    if got != expected:
        raise RuntimeError(f"{server.name} answered {response.text[:200]}; expected species {expected}")
    print(f"  {server.name}: answer checked ({response.text.strip()[:80]})")


def load(server: Server, url: str, script: Path, args: argparse.Namespace) -> WrkResult:
    print(f"  {server.name}: warm-up {args.warmup:.0f} s, then wrk -t2 -c16 -d{args.duration:.0f}s --latency")
    harness.run_wrk(url, script, args.warmup)
    result = harness.run_wrk(url, script, args.duration)
    if server.process.poll() is not None:
        raise RuntimeError(f"{server.name} exited during the load; log:\n{harness.tail(server.log)}")
    return result


def mlflow_command(model_dir: Path, port: int) -> list[str]:
    return [str(harness.VENV_BIN / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager", "local",
            "-w", str(MLFLOW_WORKERS), "-h", harness.HOST, "-p", str(port)]


def bench_mlflow(model_dir: Path, work: Path, expected: int, args) -> dict:
    port = harness.free_port()
    env = harness.offline_env(MLFLOW_TRACKING_URI=(work / "mlruns").as_uri())
    log = work / "mlflow.log"
    body = json.dumps({"dataframe_split": {"columns": list(FEATURES), "data": [list(SAMPLE_ROW)]}})
    mlflow_script = harness.write_post_script(work / "mlflow.lua", body)
    cmd = mlflow_command(model_dir, port)
    busy = harness.check_quiet("mlflow")
    with harness.serving("mlflow", cmd, env=env, port=port, log=log, keep_as=f"{BENCH}-mlflow") as server, \
            harness.http_client() as client:
        startup = harness.wait_until(lambda: client.get(f"{server.base_url}/ping").status_code == 200,
                                     server, "healthy on /ping")
        url = f"{server.base_url}/invocations"
        check_answer(client, server, url, body=body, read_species=lambda doc: int(doc["predictions"][0]),
                     expected=expected)
        result = load(server, url, mlflow_script, args)
    return finish("mlflow", result, startup=startup, busy=busy, log=log, detail=f"{MLFLOW_WORKERS} workers (uvicorn)")


def bench_runner(bundle: Path, work: Path, script: Path, *, expected: int, workers: int, args) -> dict:
    port = harness.free_port()
    name = f"runner-w{workers}"
    log = work / f"{name}.log"
    cmd = harness.runner_command(bundle, port, workers, work / f"state-{name}")
    env = harness.offline_env(RUNNER_ADMIN_TOKEN="bench-admin-token-runner-vs-mlflow")
    busy = harness.check_quiet(name)
    with harness.serving(name, cmd, env=env, port=port, log=log, keep_as=f"{BENCH}-{name}") as server, \
            harness.http_client() as client:
        startup = harness.wait_until(harness.runner_ready(client, server, workers), server,
                                     f"ready with {workers} worker(s)")
        url = f"{server.base_url}{harness.PREDICT_PATH}"
        check_answer(client, server, url, body=SAMPLE_BODY, read_species=lambda doc: int(doc["species"]),
                     expected=expected)
        result = load(server, url, script, args)
    return finish(name, result, startup=startup, busy=busy, log=log, detail=f"{workers} worker(s)")


def finish(name: str, result: WrkResult, *, startup: float, busy: float, log: Path, detail: str) -> dict:
    kept = harness.kept_log(f"{BENCH}-{name}")
    notable = harness.notable_log_lines(log)
    for line in notable:
        print(f"  {name} log: {line}")
    return {"system": name, "detail": detail, "startup_s": round(startup, 2), "background_cpu_pct": round(busy, 1),
            **result.to_dict(),
            "log": str(kept.relative_to(harness.REPO)), "log_notable": notable}


# ---------------------------------------------------------------- verdict and report

def verdict(runner: dict, mlflow: dict) -> dict:
    rps_ratio = runner["rps"] / mlflow["rps"] if mlflow["rps"] else float("inf")
    reasons = []
    if rps_ratio < TARGET_RPS_RATIO:
        reasons.append(f"req/s ratio {rps_ratio:.2f} < {TARGET_RPS_RATIO:.0f}")
    if runner["p99_ms"] >= mlflow["p99_ms"]:
        reasons.append(f"p99 {runner['p99_ms']:.1f} ms >= MLflow's {mlflow['p99_ms']:.1f} ms")
    if runner["errors"]:
        reasons.append(f"{runner['errors']} failed requests")
    return {"system": runner["system"], "rps_ratio": rps_ratio, "p99_ratio": runner["p99_ms"] / mlflow["p99_ms"],
            "pass": not reasons, "reasons": reasons}


def error_text(row: dict) -> str:
    sockets = row["socket_errors"]
    return (f"{row['errors']} (non-2xx {row['non_2xx']}, connect {sockets['connect']}, read {sockets['read']}, "
            f"write {sockets['write']}, timeout {sockets['timeout']})")


def print_report(rows: list[dict], floor: dict, headline: dict, verdicts: list[dict]) -> None:
    mlflow = rows[0]
    print("\n== runner vs MLflow: iris RandomForest (10 trees), single-row JSON, wrk -t2 -c16 ==")
    print(harness.table(
        ["system", "req/s", "p50 ms", "p99 ms", "max ms", "requests", "errors", "other cpu %"],
        [[r["system"], f"{r['rps']:.1f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['max_ms']:.1f}",
          str(r["requests"]), error_text(r), f"{r['background_cpu_pct']:.0f}"] for r in rows]))
    print("(other cpu %: the machine's load from other work, sampled for 1 s just before each server started)")
    print(f"\nin-process floor: {floor['mean_ms']:.3f} ms/request (median {floor['median_ms']:.3f}), "
          f"{floor['rps_per_core']:.0f} req/s per core over {floor['iterations']} iterations")
    print("\nanchor (recorded on this machine) vs this run:")
    print(harness.table(
        ["figure", "anchor", "this run"],
        [["MLflow req/s", f"{ANCHOR['mlflow_rps']:.0f}", f"{mlflow['rps']:.1f}"],
         ["MLflow p50 ms", f"{ANCHOR['mlflow_p50_ms']:.0f}", f"{mlflow['p50_ms']:.1f}"],
         ["MLflow p99 ms", f"{ANCHOR['mlflow_p99_ms']:.0f}", f"{mlflow['p99_ms']:.1f}"],
         ["floor ms/request/core", f"{ANCHOR['floor_ms_per_request_per_core']:.1f}", f"{floor['mean_ms']:.3f}"]]))
    print("\nratios runner/MLflow (same run):")
    for v in verdicts:
        state = "PASS" if v["pass"] else "FAIL: " + "; ".join(v["reasons"])
        print(f"  {v['system']}: req/s x{v['rps_ratio']:.2f}, p99 x{v['p99_ratio']:.2f} -> {state}")
    busiest = max([floor["background_cpu_pct"]] + [r["background_cpu_pct"] for r in rows])
    if busiest > harness.QUIET_CPU_PCT:
        print(f"\nCAUTION: other work used up to {busiest:.0f}% of the CPU around these runs; "
              "the figures are not comparable with an idle machine: run again when it is idle")
    print(f"\nheadline: {headline['system']} (the runner setting with the higher req/s)")
    print(f"target: runner req/s >= {TARGET_RPS_RATIO:.0f}x MLflow req/s AND runner p99 < MLflow p99")
    chosen = next(v for v in verdicts if v["system"] == headline["system"])
    print(f"RESULT: {'PASS' if chosen['pass'] else 'FAIL'}"
          + ("" if chosen["pass"] else f" ({'; '.join(chosen['reasons'])})"))


def run(args: argparse.Namespace) -> int:
    harness.go_offline()
    example = harness.load_example()
    with contextlib.ExitStack() as stack:
        work = harness.scratch_dir(stack, "bench-runner-vs-mlflow-")
        print("training the iris RandomForest (10 trees, random_state=0) once")
        estimator = example.train(10, 0)
        expected = expected_species(estimator)
        bundle = harness.pack_estimator(example, estimator, work / "runner-bundle")
        model_dir = save_for_mlflow(estimator, work / "mlflow-model")
        script = harness.write_post_script(work / "runner.lua", SAMPLE_BODY)

        print(f"in-process floor ({args.floor_seconds:.0f} s at most)")
        floor = measure_floor(estimator, args.floor_seconds, args.floor_iterations)
        print("serving MLflow")
        rows = [bench_mlflow(model_dir, work, expected, args)]
        for workers in (1, 2):
            print(f"serving the runner with --workers {workers}")
            rows.append(bench_runner(bundle, work, script, expected=expected, workers=workers, args=args))

    mlflow, runners = rows[0], rows[1:]
    headline = max(runners, key=lambda r: r["rps"])
    verdicts = [verdict(r, mlflow) for r in runners]
    print_report(rows, floor, headline, verdicts)
    chosen = next(v for v in verdicts if v["system"] == headline["system"])
    path = harness.write_results(BENCH, {
        "machine": harness.machine(), "load": {"tool": "wrk", "threads": 2, "connections": 16,
                                               "seconds": args.duration, "warmup_s": args.warmup},
        "anchor": ANCHOR, "floor": floor, "results": rows, "verdicts": verdicts,
        "headline": headline["system"], "pass": chosen["pass"]})
    print(f"wrote {path.relative_to(harness.REPO)}")
    return 0  # a FAIL is a figure, not a crash: the exit status only says whether the benchmark ran


if __name__ == "__main__":
    sys.exit(harness.run_main(run, parse_args(sys.argv[1:])))
