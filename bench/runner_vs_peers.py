"""Our runner against MLServer, BentoML and MLflow on the same fitted iris RandomForest, in one run.

    .venv/bin/python bench/runner_vs_peers.py      (or: make bench-peers; ARGS="--rounds 1 --duration 5")

Every server gets 2 workers and single-row JSON requests; one server runs at a time.

1. Throughput and latency. Rounds interleave runner, MLServer, BentoML, MLflow, runner, ... (--rounds, default
   3). Each server is started, its answer checked (the same predicted class), warmed up, loaded with
   `wrk -t2 -c16 -d10s --latency` and stopped. The runner is loaded twice per start: on the Open Inference
   Protocol (`POST /v2/models/{name}/infer`, the same JSON body MLServer and BentoML get) and on its own REST
   (`POST /model/methods/classify`). MLServer 1.7.1: sklearn runtime, `parallel_workers: 2`, its /v2 infer.
   BentoML 1.4.40: a service with `workers=2` around the same model, taking the OIP body. MLflow: as
   runner_vs_mlflow.py serves it. Medians of the rounds: req/s, p50, p99, and the runner/peer ratios.
   Targets: runner OIP req/s >= 3x MLServer's, and runner OIP p99 < MLServer's p99.
2. Swaps under load: 20 swaps each under `wrk -t2 -c16` on the OIP door: the runner's `PUT /model` (the
   swaps of swap_under_load.py, A/B/A...) against MLServer's `POST /v2/repository/models/{name}/load` after the
   model file is replaced. After each swap the probe (a flower A and B disagree on) is asked 4 times on fresh
   connections. Median and p95 swap ms, failed requests (non-2xx and socket errors from wrk).
   Target: runner median < MLServer median, with 0 failed requests.
3. gRPC against REST on the runner (when it serves gRPC on --grpc-port): the OIP `ModelInfer` and the model's
   own `Model/classify` (a stub generated from the served model.proto) against the two REST doors, with the
   same load generator shape: N client processes (--clients), each one request in flight on one connection
   (grpc's sync stub; a raw-socket HTTP/1.1 keep-alive client for REST). p50, p99 and req/s.
4. What statistics and shadowing cost: runner req/s (OIP door) with statistics on and off
   (RUNNER_STATISTICS=0; one server each, the order alternating by round), and with a shadow candidate taking
   100% of requests (`PUT /model/candidate`, mode=shadow, weight=100; another 10-tree forest) against none, on
   one server (removed with `DELETE /model/candidate` on even rounds, which measure it first). A feature the
   runner does not have yet is reported as skipped, with the reason.

The peers never enter the project's venv: each has a venv of its own under ~/.cache/acumos-bench/
(<peer>-<version>/, or $ACUMOS_BENCH_CACHE), made on first use with `python -m venv` and `pip install` of
pinned versions (minutes, once), reused afterwards. No peer code is kept in the repository: the MLServer
settings and the BentoML service are written into the run's temporary directory.
Writes bench/out/runner_vs_peers.json and the servers' logs to bench/out/logs/runner_vs_peers-*.log.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.metadata
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import harness
import httpx
import runner_vs_mlflow
import swap_under_load
from harness import FEATURES, SAMPLE_BODY, SAMPLE_ROW, Server, WrkResult

BENCH = "runner_vs_peers"
WORKERS = 2
TOKEN = swap_under_load.TOKEN  # its swap code sends this token
TARGET_RPS_RATIO = 3.0
MLSERVER_MODEL = "iris"
OIP_TENSOR = "input-0"  # not a field name: the runner reads one [1, 4] tensor as the four fields in order
SKLEARN = importlib.metadata.version("scikit-learn")  # the peers load the pickle the project's venv wrote


@dataclass(frozen=True)
class Peer:
    name: str
    version: str
    requirements: tuple[str, ...]

    def bin_dir(self) -> Path:
        return harness.peer_venv(self.name, self.version, list(self.requirements))


# The newest uvloop breaks MLServer 1.7.1's worker pool (shared/environment.md): 0.21.0 is pinned.
MLSERVER = Peer("mlserver", "1.7.1", ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0",
                                      f"scikit-learn=={SKLEARN}"))
BENTOML = Peer("bentoml", "1.4.40", ("bentoml==1.4.40", f"scikit-learn=={SKLEARN}"))


def oip_body(row) -> str:
    return json.dumps({"inputs": [{"name": OIP_TENSOR, "shape": [1, len(row)], "datatype": "FP64",
                                   "data": list(row)}]}, separators=(",", ":"))


OIP_BODY = oip_body(SAMPLE_ROW)
MLFLOW_BODY = json.dumps({"dataframe_split": {"columns": list(FEATURES), "data": [list(SAMPLE_ROW)]}})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of parts 1, 3 and 4 (interleaved)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of measured load per server")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load before it")
    parser.add_argument("--swaps", type=int, default=20, help="swaps per server in part 2")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between one swap's answer and the next")
    parser.add_argument("--swap-timeout", type=float, default=30.0, help="seconds one swap may take")
    parser.add_argument("--max-load", type=float, default=300.0, help="longest a loaded swap phase may run")
    parser.add_argument("--clients", type=int, default=4, help="client processes of part 3's load generator")
    parser.add_argument("--parts", default="1234", help="which parts to run, e.g. 13")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- the models

@dataclass
class Models:
    """Model A (part 1, and where swaps start) and B, in each server's form."""
    packages: tuple[swap_under_load.Package, swap_under_load.Package]  # the runner's (modelpackage.zip)
    joblibs: dict[str, Path]  # label -> joblib file (MLServer, BentoML)
    mlflow_dir: Path
    probe_row: list[float]
    probe_body: str  # the runner's REST body for the probe
    candidate: Path  # part 4's shadow: another forest of A's size (10 trees, seed 2), modelpackage.zip
    expected: int  # A's answer on SAMPLE_ROW
    model_name: str  # the runner's, in /v2/models/{name}

    @property
    def bundle(self) -> Path:
        return self.packages[0].path.parent


def build_models(work: Path) -> Models:
    """swap_under_load's two packages (A is runner_vs_mlflow's model: 10 trees, seed 0); the same two
    fitted forests (seeded, so trained again identically) saved for the peers."""
    example = harness.load_example()
    package_a, package_b, probe_body = swap_under_load.build_packages(work)
    forests = {"A": example.train(10, 0), "B": example.train(swap_under_load.MODEL_B["n_estimators"],
                                                            swap_under_load.MODEL_B["seed"])}
    probe_row = [float(json.loads(probe_body)[name]) for name in FEATURES]
    for package in (package_a, package_b):
        got = int(forests[package.label].predict([probe_row])[0])
        if got != package.probe_species:
            raise RuntimeError(f"forest {package.label} trained again answers {got} on the probe, its package "
                               f"{package.probe_species}: training is not deterministic here")
    joblibs = {}
    import joblib

    for label, forest in forests.items():
        joblibs[label] = work / f"model-{label}.joblib"
        joblib.dump(forest, joblibs[label])
    mlflow_dir = runner_vs_mlflow.save_for_mlflow(forests["A"], work / "mlflow-model")
    name = json.loads((package_a.path.parent / "metadata.json").read_text())["name"]
    candidate = harness.pack_estimator(example, example.train(10, 2), work / "bundle-C") / "modelpackage.zip"
    return Models((package_a, package_b), joblibs, mlflow_dir, probe_row, probe_body, candidate,
                  runner_vs_mlflow.expected_species(forests["A"]), name)


# ---------------------------------------------------------------- servers

@dataclass(frozen=True)
class Door:
    """One way in to a server: what wrk loads, with the body it sends and how to read the class."""
    label: str
    path: str
    body: str
    read_species: Callable[[dict], int]


def oip_species(doc: dict) -> int:
    return int(doc["outputs"][0]["data"][0])


@dataclass
class Launch:
    """A server to start: its command line, environment, readiness check and doors."""
    system: str
    cmd: list[str]
    env: dict[str, str]
    port: int
    ready: harness.ReadyCheck
    doors: list[Door]
    cwd: Path | None = None
    extra: dict = field(default_factory=dict)


def runner_doors(models: Models) -> list[Door]:
    return [Door("runner OIP", f"/v2/models/{models.model_name}/infer", OIP_BODY, oip_species),
            Door("runner REST", harness.PREDICT_PATH, SAMPLE_BODY, lambda doc: int(doc["species"]))]


@functools.cache
def runner_grpc_flag() -> bool:
    """Whether this runner's serve command takes --grpc-port (being built beside this benchmark)."""
    done = subprocess.run([str(harness.PYTHON), "-m", "runner_image", "serve", "--help"], capture_output=True,
                          text=True, cwd=harness.REPO, env=harness.offline_env(), timeout=60, check=False)
    return "--grpc-port" in done.stdout


def runner_launch(models: Models, work: Path, label: str, **env: str) -> Launch:
    """The runner as it is started by default (gRPC too, where it has it), on model A."""
    port = harness.free_port()
    cmd = harness.runner_command(models.bundle, port, WORKERS, work / f"state-{label}")
    extra = {}
    if runner_grpc_flag():  # a free port, never the default 3331 that other runners on this machine may hold
        extra["grpc_port"] = harness.free_port()
        cmd += ["--grpc-port", str(extra["grpc_port"])]
    return Launch("runner", cmd, harness.offline_env(RUNNER_ADMIN_TOKEN=TOKEN, **env), port,
                  lambda client, server: harness.runner_ready(client, server, WORKERS), runner_doors(models),
                  extra=extra)


def mlserver_launch(models: Models, work: Path, label: str) -> Launch:
    """`mlserver start <dir>`: settings.json (2 parallel workers) and one model, the sklearn runtime."""
    home = work / label
    model_dir = home / MLSERVER_MODEL
    model_dir.mkdir(parents=True)
    shutil.copyfile(models.joblibs["A"], model_dir / "model.joblib")
    port = harness.free_port()
    settings = {"debug": False, "host": harness.HOST, "http_port": port, "grpc_port": harness.free_port(),
                "metrics_port": harness.free_port(), "parallel_workers": WORKERS, "load_models_at_startup": True}
    (home / "settings.json").write_text(json.dumps(settings, indent=2))
    (model_dir / "model-settings.json").write_text(json.dumps({
        "name": MLSERVER_MODEL, "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1"}}, indent=2))
    bin_dir = MLSERVER.bin_dir()
    door = Door(f"MLServer {MLSERVER.version}", f"/v2/models/{MLSERVER_MODEL}/infer", OIP_BODY, oip_species)
    return Launch("mlserver", [str(bin_dir / "mlserver"), "start", str(home)], harness.peer_env(bin_dir), port,
                  harness.answers_200(f"/v2/models/{MLSERVER_MODEL}/ready"), [door], cwd=home,
                  extra={"model_dir": model_dir})


BENTO_SERVICE = '''"""Written by bench/runner_vs_peers.py for one run: the iris forest behind BentoML (OIP body)."""
import os

import bentoml
import joblib
import numpy as np


@bentoml.service(workers={workers})
class IrisService:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL_FILE"])

    @bentoml.api
    def infer(self, inputs: list[dict]) -> dict:
        tensor = inputs[0]
        rows = np.asarray(tensor["data"], dtype=float).reshape(tensor["shape"])
        predicted = self.model.predict(rows)
        return {{"model_name": "iris", "outputs": [{{"name": "predict", "datatype": "INT64",
                                                   "shape": [len(predicted)], "data": predicted.tolist()}}]}}
'''


def bentoml_launch(models: Models, work: Path, label: str) -> Launch:
    home = work / label
    home.mkdir()
    (home / "service.py").write_text(BENTO_SERVICE.format(workers=WORKERS))
    port = harness.free_port()
    bin_dir = BENTOML.bin_dir()
    cmd = [str(bin_dir / "bentoml"), "serve", "service:IrisService", "--host", harness.HOST, "--port", str(port),
           "--working-dir", str(home)]
    env = harness.peer_env(bin_dir, BENCH_MODEL_FILE=str(models.joblibs["A"]), BENTOML_DO_NOT_TRACK="true",
                           BENTOML_HOME=str(home / "bentoml-home"))
    door = Door(f"BentoML {BENTOML.version}", "/infer", OIP_BODY, oip_species)
    return Launch("bentoml", cmd, env, port, harness.answers_200("/readyz"), [door], cwd=home)


def mlflow_launch(models: Models, work: Path, label: str) -> Launch:
    port = harness.free_port()
    import mlflow

    env = harness.offline_env(MLFLOW_TRACKING_URI=(work / "mlruns").as_uri())
    door = Door(f"MLflow {mlflow.__version__}", "/invocations", MLFLOW_BODY,
                lambda doc: int(doc["predictions"][0]))
    return Launch("mlflow", runner_vs_mlflow.mlflow_command(models.mlflow_dir, port), env, port,
                  harness.answers_200("/ping"), [door])


LAUNCHERS = {"runner": runner_launch, "mlserver": mlserver_launch, "bentoml": bentoml_launch,
             "mlflow": mlflow_launch}


@contextlib.contextmanager
def started(launch: Launch, work: Path, label: str, expected: int) -> Iterator[tuple[Server, httpx.Client]]:
    """The server ready and every door's answer checked; stopped (its log kept and its warnings printed)
    when the `with` ends."""
    log = work / f"{label}.log"
    with harness.ready_server(launch.system, launch.cmd, env=launch.env, port=launch.port, log=log,
                              keep_as=f"{BENCH}-{label}", ready=launch.ready, cwd=launch.cwd) as (server, client, up):
        print(f"  {label}: ready in {up:.1f} s", flush=True)
        for door in launch.doors:
            runner_vs_mlflow.check_answer(client, server, server.base_url + door.path, body=door.body,
                                          read_species=door.read_species, expected=expected)
        yield server, client
    for line in harness.notable_log_lines(log, limit=8):
        print(f"  {label} log: {line}")


def wrk_row(server: Server, door: Door, work: Path, args, *, busy: float) -> dict:
    """Warm-up, then the measured wrk run on one door."""
    script = harness.write_post_script(work / (re.sub(r"\W+", "-", door.label) + ".lua"), door.body)
    url = server.base_url + door.path
    harness.run_wrk(url, script, args.warmup)
    result = harness.run_wrk(url, script, args.duration)
    if server.process.poll() is not None:
        raise RuntimeError(f"{server.name} exited during the load; log:\n{harness.tail(server.log)}")
    print(f"    {door.label}: {result.rps:.0f} req/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
          f"errors {result.errors}", flush=True)
    return {"door": door.label, "background_cpu_pct": round(busy, 1), **result.to_dict()}


def summarize(rows: list[dict]) -> dict:
    """Medians of the rounds' figures (each figure on its own), errors added up."""
    return {"rounds": len(rows), "rps": statistics.median(r["rps"] for r in rows),
            "p50_ms": statistics.median(r["p50_ms"] for r in rows),
            "p99_ms": statistics.median(r["p99_ms"] for r in rows),
            "errors": sum(r["errors"] for r in rows), "requests": sum(r["requests"] for r in rows),
            "background_cpu_pct_max": max(r["background_cpu_pct"] for r in rows)}


# ---------------------------------------------------------------- 1. throughput and latency

def part_throughput(models: Models, work: Path, args) -> dict:
    print(f"\n== 1. throughput and latency: {args.rounds} round(s), wrk -t2 -c16 -d{args.duration:.0f}s ==",
          flush=True)
    rows: dict[str, list[dict]] = {}
    for number in range(1, args.rounds + 1):
        for system, make in LAUNCHERS.items():
            label = f"{system}-r{number}"
            busy = harness.check_quiet(label)
            launch = make(models, work, label)
            doors = launch.doors if number % 2 else launch.doors[::-1]  # the runner's two doors take turns first
            with started(launch, work, label, models.expected) as (server, _client):
                for door in doors:
                    rows.setdefault(door.label, []).append(wrk_row(server, door, work, args, busy=busy))
    summary = {label: summarize(found) for label, found in rows.items()}
    return {"rounds": rows, "medians": summary, "verdict": throughput_verdict(summary)}


def throughput_verdict(summary: dict) -> dict:
    runner = summary["runner OIP"]
    mlserver = summary[f"MLServer {MLSERVER.version}"]
    ratios = {label: {"rps": runner["rps"] / s["rps"] if s["rps"] else math.inf,
                      "p99": runner["p99_ms"] / s["p99_ms"] if s["p99_ms"] else math.inf}
              for label, s in summary.items() if not label.startswith("runner")}
    rps_ratio = runner["rps"] / mlserver["rps"] if mlserver["rps"] else math.inf
    checks = {f"runner OIP req/s >= {TARGET_RPS_RATIO:.0f}x MLServer": rps_ratio >= TARGET_RPS_RATIO,
              "runner OIP p99 < MLServer p99": runner["p99_ms"] < mlserver["p99_ms"],
              "runner OIP 0 failed requests": runner["errors"] == 0}
    return {"ratios_runner_oip_over": ratios, "checks": checks, "pass": all(checks.values())}


# ---------------------------------------------------------------- 2. swaps under load

def percentile(values: list[float], pct: float) -> float:
    """Nearest rank: with 20 swaps, p95 is the 19th fastest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)] if ordered else math.nan


def oip_probe(client: httpx.Client, url: str, body: str) -> list[int | None]:
    """The probe on fresh connections (Connection: close) so that any worker may answer."""
    answers = []
    for _ in range(swap_under_load.PROBES_PER_SWAP):
        try:
            response = client.post(url, content=body, headers={"Content-Type": "application/json",
                                                               "Connection": "close"})
            answers.append(oip_species(response.json()) if response.status_code == 200 else None)
        except (httpx.HTTPError, ValueError, KeyError, IndexError):
            answers.append(None)
    return answers


def mlserver_swap_once(client: httpx.Client, server: Server, *, number: int, package, models: Models,
                       model_dir: Path, timeout: float) -> swap_under_load.Swap:
    """Replace model.joblib (atomically, outside the timing), then time the repository's load call."""
    staged = model_dir / "model.joblib.new"
    shutil.copyfile(models.joblibs[package.label], staged)
    os.replace(staged, model_dir / "model.joblib")
    swap = functools.partial(swap_under_load.Swap, number=number, package=package.label, generation=None,
                             runner_ms=None, probes=swap_under_load.PROBES_PER_SWAP)
    started_at = time.perf_counter()
    try:
        response = client.post(f"{server.base_url}/v2/repository/models/{MLSERVER_MODEL}/load", timeout=timeout)
    except httpx.HTTPError as exc:
        return swap(status=None, wall_ms=(time.perf_counter() - started_at) * 1000, probes_new=0,
                    error=f"{type(exc).__name__}: {exc}")
    wall_ms = (time.perf_counter() - started_at) * 1000
    answers = oip_probe(client, f"{server.base_url}/v2/models/{MLSERVER_MODEL}/infer", oip_body(models.probe_row))
    return swap(status=response.status_code, wall_ms=wall_ms,
                probes_new=sum(a == package.probe_species for a in answers),
                error="" if response.status_code == 200 else response.text[:300])


def mlserver_swaps(client, server: Server, models: Models, model_dir: Path, args) -> list[swap_under_load.Swap]:
    swaps = []
    for number in range(1, args.swaps + 1):
        package = models.packages[number % 2]  # B, A, B, ... as swap_under_load does
        swap = mlserver_swap_once(client, server, number=number, package=package, models=models,
                                  model_dir=model_dir, timeout=args.swap_timeout)
        swaps.append(swap)
        print(f"  swap {number:2d} -> {package.label}: {swap.status} wall {swap.wall_ms:7.1f} ms, probe new model "
              f"{swap.probes_new}/{swap.probes}{' ERROR ' + swap.error if swap.error else ''}", flush=True)
        time.sleep(args.pause)
    return swaps


def loaded_swaps(server: Server, door: Door, work: Path, *, label: str, swap_all: Callable[[], list], args) -> dict:
    """wrk on `door` for the whole phase: a second of load, the swaps, a second more, then wrk is stopped."""
    script = harness.write_post_script(work / f"{label}-swaps.lua", door.body)
    out = work / f"wrk-{label}-swaps.txt"
    url = server.base_url + door.path
    harness.run_wrk(url, script, args.warmup)
    with harness.wrk_in_background(url, script, args.max_load, out) as wrk:
        time.sleep(1.0)
        swaps = swap_all()
        time.sleep(1.0)
        covered = wrk.poll() is None
        during = harness.stop_wrk(wrk, out)
    return swap_summary(swaps, during, covered)


def kept_generations(swaps: list[dict], models: Models) -> list[tuple[int, swap_under_load.Package]]:
    """The last two generations the PUT swaps made (one of each model), with their packages."""
    by_label = {package.label: package for package in models.packages}
    last = [s for s in swaps if s["ok"]][-2:]
    return [(s["generation"], by_label[s["package"]]) for s in last]


def rollback_swaps(client: httpx.Client, server: Server, kept: list, probe_body: str, args) -> list:
    """Alternate between two kept generations with POST /model/rollback {"generation": n}, probing after each."""
    swaps = []
    for number in range(1, args.swaps + 1):
        generation, package = kept[(number - 1) % 2]  # the older one first: the newer one is serving
        started = time.perf_counter()
        try:
            response = client.post(f"{server.base_url}/model/rollback", json={"generation": generation},
                                   headers={"Authorization": f"Bearer {TOKEN}"}, timeout=args.swap_timeout)
        except httpx.HTTPError as exc:
            swaps.append(swap_under_load.Swap(number, package.label, None, None, (time.perf_counter() - started) * 1000,
                                              None, 0, swap_under_load.PROBES_PER_SWAP, f"{type(exc).__name__}: {exc}"))
            continue
        wall_ms = (time.perf_counter() - started) * 1000
        doc = response.json() if response.status_code == 200 else {}
        answers = swap_under_load.probe_answers(client, f"{server.base_url}{harness.PREDICT_PATH}", probe_body)
        swap = swap_under_load.Swap(number, package.label, response.status_code, doc.get("generation"), wall_ms,
                                    doc.get("duration_ms"), sum(a == package.probe_species for a in answers),
                                    len(answers), "" if response.status_code == 200 else response.text[:300],
                                    doc.get("phases_ms"))
        swaps.append(swap)
        print(f"  rollback {number:2d} -> generation {generation} ({package.label}): {swap.status} wall "
              f"{wall_ms:7.1f} ms, runner {swap.runner_ms} ms, probe new model {swap.probes_new}/{swap.probes}",
              flush=True)
        time.sleep(args.pause)
    return swaps


def swap_summary(swaps: list, during: WrkResult, covered: bool) -> dict:
    """Swap times are wall times at the client (upload and queueing behind the load included), for both
    servers; the runner's own figure (duration_ms, from the PUT's answer) is kept beside them."""
    walls = [s.wall_ms for s in swaps]
    own = [s.runner_ms for s in swaps if s.runner_ms is not None]
    return {"swaps": [{**asdict(s), "ok": s.ok} for s in swaps], "successful_swaps": sum(s.ok for s in swaps),
            "median_ms": statistics.median(walls) if walls else math.nan, "p95_ms": percentile(walls, 95),
            "own_median_ms": statistics.median(own) if own else None,
            "failed_requests": during.errors, "load": during.to_dict(), "load_covered_every_swap": covered}


def part_swaps(models: Models, work: Path, args) -> dict:
    print(f"\n== 2. {args.swaps} swaps under wrk -t2 -c16: runner PUT /model vs MLServer repository load ==",
          flush=True)
    results = {}
    launch = runner_launch(models, work, "runner-swaps")
    harness.check_quiet("runner-swaps")
    with started(launch, work, "runner-swaps", models.expected) as (server, client):
        def runner_swaps() -> list:
            return swap_under_load.swap_many(client, server, models.packages, models.probe_body, args)

        results["runner"] = loaded_swaps(server, launch.doors[0], work, label="runner", swap_all=runner_swaps,
                                         args=args)
        kept = kept_generations(results["runner"]["swaps"], models)

        def runner_rollbacks() -> list:
            return rollback_swaps(client, server, kept, models.probe_body, args)

        # Like for like with MLServer's reload, which loads a model already on its disk: the runner loads a
        # generation it keeps (POST /model/rollback {"generation": n}), no upload.
        results["runner_kept"] = loaded_swaps(server, launch.doors[0], work, label="runner-kept",
                                              swap_all=runner_rollbacks, args=args)
    launch = mlserver_launch(models, work, "mlserver-swaps")
    harness.check_quiet("mlserver-swaps")
    with started(launch, work, "mlserver-swaps", models.expected) as (server, client):
        def reloads() -> list:
            return mlserver_swaps(client, server, models, launch.extra["model_dir"], args)

        results["mlserver"] = loaded_swaps(server, launch.doors[0], work, label="mlserver", swap_all=reloads,
                                           args=args)
    runner, mlserver = results["runner"], results["mlserver"]
    checks = {"runner median < MLServer median": runner["median_ms"] < mlserver["median_ms"],
              "runner (a kept model, like for like) median < MLServer median":
                  results["runner_kept"]["median_ms"] < mlserver["median_ms"],
              "runner (a kept model) 0 failed requests": results["runner_kept"]["failed_requests"] == 0,
              "runner 0 failed requests": runner["failed_requests"] == 0,
              f"runner {args.swaps}/{args.swaps} swaps succeeded": runner["successful_swaps"] == args.swaps,
              "load covered every swap": runner["load_covered_every_swap"] and mlserver["load_covered_every_swap"]}
    return {**results, "checks": checks, "pass": all(checks.values())}


# ---------------------------------------------------------------- 3. gRPC against REST

def load_worker(spec: dict, barrier, results, warmup: float, seconds: float) -> None:
    """One client process: one request in flight on one connection; warm-up, then `seconds` measured.
    Runs in a spawned process (grpc does not survive fork), so it imports what it uses."""
    try:
        call = make_call(spec)
        call()
    except Exception as exc:  # noqa: BLE001 - whatever it is, the parent must hear of it
        results.put({"error": f"{type(exc).__name__}: {exc}"})
        barrier.abort()
        return
    barrier.wait()
    started_at = time.perf_counter()
    warm_until, stop_at = started_at + warmup, started_at + warmup + seconds
    latencies, failed = [], 0
    while (now := time.perf_counter()) < stop_at:
        try:
            ok = call()
        except Exception:  # noqa: BLE001 - a failed call is counted, not fatal
            ok = False
        done = time.perf_counter()
        if now < warm_until or done > stop_at:
            continue  # warming up, or ended past the window
        if ok:
            latencies.append((done - now) * 1000)
        else:
            failed += 1
    results.put({"latencies": latencies, "failed": failed})


def make_call(spec: dict) -> Callable[[], bool]:
    kind = spec["kind"]
    if kind == "rest":
        return RawHttp(spec["port"], spec["path"], spec["body"].encode()).call
    import grpc

    channel = grpc.insecure_channel(f"{harness.HOST}:{spec['port']}")
    if kind == "grpc-oip":
        from tritonclient.grpc import service_pb2, service_pb2_grpc

        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name=spec["model"], inputs=[
            service_pb2.ModelInferRequest.InferInputTensor(
                name=OIP_TENSOR, datatype="FP64", shape=[1, len(spec["row"])],
                contents=service_pb2.InferTensorContents(fp64_contents=spec["row"]))])
        return lambda: bool(stub.ModelInfer(request, timeout=10).outputs)
    stub, request = model_stub(channel, spec)
    method = getattr(stub, spec["method"])
    return lambda: method(request, timeout=10) is not None


def model_stub(channel, spec: dict):
    """The stub protoc generated from the served model.proto, and the request message for `fields`."""
    import importlib

    if spec["proto_dir"] not in sys.path:
        sys.path.insert(0, spec["proto_dir"])
    messages = importlib.import_module("model_pb2")
    services = importlib.import_module("model_pb2_grpc")
    method = messages.DESCRIPTOR.services_by_name["Model"].methods_by_name[spec["method"]]
    request_class = getattr(messages, method.input_type.name)
    return services.ModelStub(channel), request_class(**spec["fields"])


class RawHttp:
    """The leanest HTTP/1.1 keep-alive client: the same request bytes each time, the answer read by its
    Content-Length. REST gets a client as light as grpc's C core, so the doors are compared, not clients."""

    def __init__(self, port: int, path: str, body: bytes):
        head = (f"POST {path} HTTP/1.1\r\nHost: {harness.HOST}:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        self.request = head.encode() + body
        self.sock = socket.create_connection((harness.HOST, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def call(self) -> bool:
        self.sock.sendall(self.request)
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head).group(1))
        while len(self.buffer) < length:
            self._more()
        self.buffer = self.buffer[length:]
        return head[9:12] == b"200"


def generate_load(spec: dict, clients: int, warmup: float, seconds: float) -> dict:
    """`clients` spawned processes running load_worker together; their latencies merged."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(clients + 1), context.Queue()
    processes = [context.Process(target=load_worker, args=(spec, barrier, results, warmup, seconds), daemon=True)
                 for _ in range(clients)]
    for process in processes:
        process.start()
    try:
        with contextlib.suppress(Exception):
            barrier.wait(timeout=120)
        answers = [results.get(timeout=warmup + seconds + 120) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    errors = [a["error"] for a in answers if "error" in a]
    if errors:
        raise RuntimeError(f"a load client could not start: {errors[0]}")
    latencies = sorted(v for a in answers for v in a["latencies"])
    return {"clients": clients, "seconds": seconds, "requests": len(latencies), "rps": len(latencies) / seconds,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "errors": sum(a["failed"] for a in answers)}


def compile_model_proto(bundle: Path, out: Path) -> Path:
    """model_pb2 and model_pb2_grpc from the served model.proto (grpc_tools, the project's venv)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bundle / "model.proto", out / "model.proto")
    done = subprocess.run([str(harness.PYTHON), "-m", "grpc_tools.protoc", f"-I{out}", f"--python_out={out}",
                           f"--grpc_python_out={out}", str(out / "model.proto")], capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"protoc failed on model.proto: {done.stderr}")
    return out


def grpc_answers(port: int, models: Models, proto_dir: Path) -> str | None:
    """None when both gRPC services answer the expected class; otherwise why gRPC cannot be measured."""
    import tritonclient.grpc as triton

    client = triton.InferenceServerClient(f"{harness.HOST}:{port}")
    try:
        if not client.is_server_live(client_timeout=5):
            return f"nothing live on gRPC port {port}"
        tensor = triton.InferInput(OIP_TENSOR, [1, 4], "FP64")
        import numpy as np

        tensor.set_data_from_numpy(np.array([SAMPLE_ROW], dtype=np.float64))
        result = client.infer(models.model_name, [tensor], client_timeout=10)
        got = int(result.as_numpy(result.get_response().outputs[0].name).reshape(-1)[0])
    except Exception as exc:  # noqa: BLE001 - any failure means: not served (yet)
        return f"port {port}: {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        client.close()
    if got != models.expected:
        raise RuntimeError(f"gRPC ModelInfer answered {got}; expected {models.expected}")
    import grpc

    with grpc.insecure_channel(f"{harness.HOST}:{port}") as channel:
        stub, request = model_stub(channel, grpc_model_spec(port, proto_dir))
        answer = stub.classify(request, timeout=10)
    if int(answer.species) != models.expected:
        raise RuntimeError(f"gRPC Model/classify answered {answer}; expected {models.expected}")
    return None


def grpc_model_spec(port: int, proto_dir: Path) -> dict:
    return {"kind": "grpc-model", "port": port, "proto_dir": str(proto_dir), "method": "classify",
            "fields": dict(zip(FEATURES, SAMPLE_ROW, strict=True))}


def part_grpc(models: Models, work: Path, args) -> dict:
    print(f"\n== 3. gRPC vs REST on the runner: {args.clients} client processes, one call in flight each ==",
          flush=True)
    grpc_flag = runner_grpc_flag()
    launch = runner_launch(models, work, "runner-grpc")
    rest_oip, rest_own = launch.doors
    specs = {"REST OIP (raw-socket HTTP/1.1)": {"kind": "rest", "port": launch.port, "path": rest_oip.path,
                                                "body": rest_oip.body},
             "REST classify (raw-socket HTTP/1.1)": {"kind": "rest", "port": launch.port, "path": rest_own.path,
                                                     "body": rest_own.body}}
    skipped = None if grpc_flag else "the runner's serve command has no --grpc-port option"
    harness.check_quiet("runner-grpc")
    rows: dict[str, list[dict]] = {}
    with started(launch, work, "runner-grpc", models.expected):
        if grpc_flag:
            proto_dir = compile_model_proto(models.bundle, work / "model-proto")
            skipped = grpc_answers(launch.extra["grpc_port"], models, proto_dir)
            if not skipped:
                port = launch.extra["grpc_port"]
                specs["gRPC OIP ModelInfer (grpc sync stub)"] = {"kind": "grpc-oip", "port": port,
                                                                 "model": models.model_name, "row": list(SAMPLE_ROW)}
                specs["gRPC Model/classify (grpc sync stub)"] = grpc_model_spec(port, proto_dir)
        if skipped:
            print(f"  gRPC: not served by this runner ({skipped}); REST measured alone")
        for _ in range(args.rounds):
            for label, spec in specs.items():
                row = generate_load(spec, args.clients, min(args.warmup, 2.0), args.duration)
                print(f"    {label}: {row['rps']:.0f} req/s, p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, "
                      f"errors {row['errors']}", flush=True)
                rows.setdefault(label, []).append(row)
    medians = {label: {"rps": statistics.median(r["rps"] for r in found),
                       "p50_ms": statistics.median(r["p50_ms"] for r in found),
                       "p99_ms": statistics.median(r["p99_ms"] for r in found),
                       "errors": sum(r["errors"] for r in found), "rounds": len(found)}
               for label, found in rows.items()}
    return {"generator": f"{args.clients} spawned Python processes, one connection and one call in flight each",
            "grpc_skipped": skipped, "rounds": rows, "medians": medians}


# ---------------------------------------------------------------- 4. statistics and shadowing

def statistics_switch_known() -> bool:
    """Whether the runner reads RUNNER_STATISTICS at all (being built beside this benchmark)."""
    package = harness.REPO / "runner_image" / "runner_image"
    return any("RUNNER_STATISTICS" in path.read_text(errors="replace") for path in package.rglob("*.py"))


ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def put_shadow(client: httpx.Client, server: Server, package_path: Path) -> str | None:
    """A shadow candidate answering 100% of requests beside the live model; None, or why not."""
    with open(package_path, "rb") as handle:
        response = client.put(f"{server.base_url}/model/candidate", headers=ADMIN,
                              files={"model": ("modelpackage.zip", handle, "application/zip")},
                              data={"mode": "shadow", "weight": "100"}, timeout=60)
    if response.status_code >= 300:
        return f"PUT /model/candidate answered {response.status_code}: {response.text.strip()[:200]}"
    return None


def drop_shadow(client: httpx.Client, server: Server) -> None:
    response = client.delete(f"{server.base_url}/model/candidate", headers=ADMIN, timeout=60)
    if response.status_code >= 300:
        raise RuntimeError(f"DELETE /model/candidate answered {response.status_code}: {response.text[:300]}")


def shadow_round(models: Models, work: Path, number: int, args, rows: dict) -> str | None:
    """One runner measured without a candidate and with a shadow candidate at 100% (odd rounds in that order,
    even rounds the other way); returns why shadowing was skipped, or None."""
    label = f"runner-shadow-r{number}"
    busy = harness.check_quiet(label)
    launch = runner_launch(models, work, label)
    door = launch.doors[0]
    with started(launch, work, label, models.expected) as (server, client):
        if number % 2:
            rows.setdefault("no candidate", []).append(wrk_row(server, door, work, args, busy=busy))
        if skipped := put_shadow(client, server, models.candidate):
            return skipped
        row = wrk_row(server, door, work, args, busy=busy)
        row["candidate"] = client.get(f"{server.base_url}/model/candidate", headers=ADMIN).json()
        rows.setdefault("shadow candidate 100%", []).append(row)
        if not number % 2:
            drop_shadow(client, server)
            rows.setdefault("no candidate", []).append(wrk_row(server, door, work, args, busy=busy))
    return None


def part_costs(models: Models, work: Path, args) -> dict:
    print("\n== 4. the cost of statistics and of shadowing (runner OIP door) ==", flush=True)
    stats_rows: dict[str, list[dict]] = {}
    stats_skipped = None if statistics_switch_known() else "the runner does not read RUNNER_STATISTICS yet"
    shadow_rows: dict[str, list[dict]] = {}
    shadow_skipped = None
    for number in range(1, args.rounds + 1):
        if not stats_skipped:
            for setting, env in (("statistics on", {}), ("statistics off", {"RUNNER_STATISTICS": "0"}))[::(
                    1 if number % 2 else -1)]:
                label = f"runner-{setting.replace(' ', '-')}-r{number}"
                busy = harness.check_quiet(label)
                launch = runner_launch(models, work, label, **env)
                with started(launch, work, label, models.expected) as (server, _client):
                    stats_rows.setdefault(setting, []).append(wrk_row(server, launch.doors[0], work, args, busy=busy))
        if not shadow_skipped:
            shadow_skipped = shadow_round(models, work, number, args, shadow_rows)
    for what, reason in (("statistics", stats_skipped), ("shadowing", shadow_skipped)):
        if reason:
            print(f"  {what}: skipped ({reason})")
    return {"statistics": cost_summary(stats_rows, "statistics off", "statistics on", stats_skipped),
            "shadow": cost_summary(shadow_rows, "no candidate", "shadow candidate 100%", shadow_skipped)}


def cost_summary(rows: dict[str, list[dict]], base: str, feature: str, skipped: str | None) -> dict:
    medians = {label: summarize(found) for label, found in rows.items()}
    cost = None
    if not skipped and base in medians and feature in medians:
        cost = 100 * (1 - medians[feature]["rps"] / medians[base]["rps"])
    return {"skipped": skipped, "rounds": rows, "medians": medians, "fewer_rps_pct": cost}


# ---------------------------------------------------------------- report

def fmt(value: float, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def report_throughput(part: dict) -> None:
    medians, ratios = part["medians"], part["verdict"]["ratios_runner_oip_over"]
    print(f"\n1. throughput and latency, medians of {next(iter(medians.values()))['rounds']} round(s) "
          "(wrk -t2 -c16, single row, 2 workers each):")
    print(harness.table(
        ["system / door", "req/s", "p50 ms", "p99 ms", "errors", "runner OIP / this: req/s", "p99"],
        [[label, fmt(m["rps"], 0), fmt(m["p50_ms"], 2), fmt(m["p99_ms"], 2), str(m["errors"]),
          fmt(ratios[label]["rps"], 2) if label in ratios else "", fmt(ratios[label]["p99"], 2)
          if label in ratios else ""] for label, m in medians.items()]))
    print_checks(part["verdict"]["checks"])


def report_swaps(part: dict) -> None:
    print("\n2. swaps under load (wrk -t2 -c16 on the OIP door):")
    print(harness.table(
        ["system", "swaps ok", "median ms", "p95 ms", "its own median ms", "failed requests", "req/s under load",
         "p99 ms under load"],
        [[name, f"{r['successful_swaps']}/{len(r['swaps'])}", fmt(r["median_ms"]), fmt(r["p95_ms"]),
          fmt(r["own_median_ms"]), str(r["failed_requests"]), fmt(r["load"]["rps"], 0), fmt(r["load"]["p99_ms"], 2)]
         for name, r in (("runner PUT /model", part["runner"]),
                         ("runner, a kept model (rollback)", part["runner_kept"]),
                         ("MLServer repository load", part["mlserver"]))]))
    print("   (swap ms: wall time at the client, the runner's upload included; its own: the runner's duration_ms)")
    print_checks(part["checks"])


def report_grpc(part: dict) -> None:
    print(f"\n3. gRPC vs REST on the runner ({part['generator']}):")
    if part["grpc_skipped"]:
        print(f"   gRPC: not served by this runner ({part['grpc_skipped']})")
    print(harness.table(["door (client)", "req/s", "p50 ms", "p99 ms", "errors"],
                        [[label, fmt(m["rps"], 0), fmt(m["p50_ms"], 2), fmt(m["p99_ms"], 2), str(m["errors"])]
                         for label, m in part["medians"].items()]))


def report_costs(part: dict) -> None:
    print("\n4. what statistics and shadowing cost (runner OIP door, wrk -t2 -c16):")
    rows = []
    for what, summary in (("statistics", part["statistics"]), ("shadowing", part["shadow"])):
        if summary["skipped"]:
            rows.append([what, "skipped", "", "", summary["skipped"]])
            continue
        for label, m in summary["medians"].items():
            rows.append([label, fmt(m["rps"], 0), fmt(m["p50_ms"], 2), fmt(m["p99_ms"], 2),
                         shadow_note(summary["rounds"][label])])
        rows.append([f"{what}: fewer req/s", f"{fmt(summary['fewer_rps_pct'])}%", "", "", ""])
    print(harness.table(["setting", "req/s", "p50 ms", "p99 ms", "note"], rows))


def shadow_note(rows: list[dict]) -> str:
    """What the candidate did, from GET /model/candidate after each shadow round (summed over rounds)."""
    seen = [r["candidate"].get("metrics", {}).get("shadow") or {} for r in rows if "candidate" in r]
    if not seen:
        return ""
    total = {key: sum(s.get(key) or 0 for s in seen) for key in ("compared", "agreed", "dropped")}
    return f"candidate answered {total['compared']} ({total['agreed']} agreed), dropped {total['dropped']}"


def print_checks(checks: dict[str, bool]) -> None:
    for name, ok in checks.items():
        print(f"   {'PASS' if ok else 'FAIL'}: {name}")


def busiest(results: dict) -> float:
    found = re.findall(r'"background_cpu_pct(?:_max)?": ([\d.]+)', json.dumps(results, default=str))
    return max(map(float, found), default=0.0)


# ---------------------------------------------------------------- main

PARTS = {"1": ("throughput", part_throughput, report_throughput), "2": ("swaps", part_swaps, report_swaps),
         "3": ("grpc_vs_rest", part_grpc, report_grpc), "4": ("costs", part_costs, report_costs)}


def prepare_peers(parts: str) -> None:
    """Make (or find) the peers' venvs before any timing starts."""
    wanted = [MLSERVER] if "2" in parts else []
    wanted += [MLSERVER, BENTOML] if "1" in parts else []
    for peer in dict.fromkeys(wanted):
        print(f"peer {peer.name} {peer.version}: {peer.bin_dir().parent}", flush=True)


def run(args: argparse.Namespace) -> int:
    harness.go_offline()
    prepare_peers(args.parts)
    results = {"machine": harness.machine(), "load": {"tool": "wrk", "threads": 2, "connections": 16,
                                                      "seconds": args.duration, "warmup_s": args.warmup},
               "workers": WORKERS, "args": vars(args),
               "peers": {p.name: list(p.requirements) for p in (MLSERVER, BENTOML)}}
    with contextlib.ExitStack() as stack:
        work = harness.scratch_dir(stack, "bench-runner-vs-peers-")
        models = build_models(work)
        for key in args.parts:
            name, measure, _ = PARTS[key]
            results[name] = measure(models, work, args)
    print("\n================ runner vs peers: iris RandomForest (10 trees), 2 workers each ================")
    for key in args.parts:
        name, _, report = PARTS[key]
        report(results[name])
    cpu = busiest(results)
    results["background_cpu_pct_max"] = cpu
    if cpu > harness.QUIET_CPU_PCT:
        print(f"\nCAUTION: other work used up to {cpu:.0f}% of the CPU before some servers started; "
              "these figures are not those of an idle machine")
    # A run of some parts only must not overwrite the figures of a whole run.
    path = harness.write_results(BENCH if sorted(args.parts) == sorted(PARTS) else f"{BENCH}-parts{args.parts}",
                                 results)
    print(f"wrote {path.relative_to(harness.REPO)}")
    return 0  # a FAIL is a figure, not a crash: the exit status only says whether the benchmark ran


if __name__ == "__main__":
    sys.exit(harness.run_main(run, parse_args(sys.argv[1:])))
