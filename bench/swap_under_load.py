"""Hot swaps under load: 20 model swaps while wrk keeps 16 connections busy; not one request may fail.

    .venv/bin/python bench/swap_under_load.py      (or: make bench-swap)

The runner (--workers 2) starts on the iris bundle (A: 10 trees, seed 0). A second bundle (B: another
forest, another seed) answers differently on at least one iris flower, the probe. While wrk loads the
runner, the benchmark swaps A/B/A/... 20 times with PUT /model, and after each swap asks the probe on
fresh connections: every answer must come from the new model. A baseline run of the same length
without swaps follows, for the latency comparison.
PASS: 0 failed requests (non-2xx + socket errors), 20 successful swaps, load running throughout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import harness
import httpx
from harness import FEATURES, SAMPLE_BODY, SAMPLE_ROW, Server, WrkResult

TOKEN = "bench-swap-admin-token-Q7r2Xk9w"  # the runner refuses a token under 24 characters
WORKERS = 2
MODEL_B = {"n_estimators": 25, "seed": 1}
PROBES_PER_SWAP = 4
LOG_NAME = "swap_under_load-runner-w2"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between one swap's answer and the next")
    parser.add_argument("--swap-timeout", type=float, default=30.0, help="seconds one swap may take")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--max-load", type=float, default=300.0, help="longest the loaded swap phase may run")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- two models that disagree

@dataclass(frozen=True)
class Package:
    label: str
    path: Path
    probe_species: int
    sample_species: int


def find_probe(model_a, model_b) -> list[float]:
    """The first iris flower the two models classify differently: it shows which model answered."""
    from sklearn.datasets import load_iris

    rows = load_iris().data
    differ = (model_a.predict(rows) != model_b.predict(rows)).nonzero()[0]
    if not len(differ):
        raise RuntimeError("models A and B agree on every iris flower; pick another MODEL_B")
    return [float(v) for v in rows[differ[0]]]


def build_packages(work: Path) -> tuple[Package, Package, str]:
    example = harness.load_example()
    model_a = example.train(10, 0)
    model_b = example.train(MODEL_B["n_estimators"], MODEL_B["seed"])
    probe = find_probe(model_a, model_b)
    packages = []
    for label, model in (("A", model_a), ("B", model_b)):
        bundle = harness.pack_estimator(example, model, work / f"bundle-{label}")
        answers = model.predict([probe, list(SAMPLE_ROW)])
        packages.append(Package(label, bundle / "modelpackage.zip", int(answers[0]), int(answers[1])))
    probe_body = json.dumps(dict(zip(FEATURES, probe, strict=True)))
    print(f"probe {probe_body}: A answers {packages[0].probe_species}, B answers {packages[1].probe_species}")
    return packages[0], packages[1], probe_body


# ---------------------------------------------------------------- swaps

@dataclass
class Swap:
    number: int
    package: str
    status: int | None
    generation: int | None
    wall_ms: float
    runner_ms: float | None
    probes_new: int
    probes: int
    error: str = ""
    phases: dict | None = None  # the runner's own split of runner_ms (history entry's phases_ms)

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.error and self.probes_new == self.probes


def probe_answers(client: httpx.Client, url: str, body: str) -> list[int | None]:
    """Ask on fresh connections (Connection: close) so the answers can come from either worker."""
    answers = []
    for _ in range(PROBES_PER_SWAP):
        try:
            response = client.post(url, content=body,
                                   headers={"Content-Type": "application/json", "Connection": "close"})
            answers.append(int(response.json()["species"]) if response.status_code == 200 else None)
        except (httpx.HTTPError, ValueError, KeyError):
            answers.append(None)
    return answers


def put_model(client: httpx.Client, server: Server, package: Package, timeout: float) -> httpx.Response:
    with open(package.path, "rb") as handle:
        return client.put(f"{server.base_url}/model", files={"model": ("modelpackage.zip", handle, "application/zip")},
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=timeout)


def swap_once(client: httpx.Client, server: Server, *, number: int, package: Package, probe_body: str,
              timeout: float) -> Swap:
    started = time.perf_counter()
    try:
        response = put_model(client, server, package, timeout)
    except httpx.HTTPError as exc:
        return Swap(number, package.label, None, None, (time.perf_counter() - started) * 1000, None, 0,
                    PROBES_PER_SWAP, f"{type(exc).__name__}: {exc}")
    wall_ms = (time.perf_counter() - started) * 1000
    doc = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    error = "" if response.status_code == 200 else response.text[:300]
    answers = probe_answers(client, f"{server.base_url}{harness.PREDICT_PATH}", probe_body)
    return Swap(number, package.label, response.status_code, doc.get("generation"), wall_ms,
                doc.get("duration_ms"), sum(a == package.probe_species for a in answers), len(answers), error,
                doc.get("phases_ms"))


def swap_many(client: httpx.Client, server: Server, packages: tuple[Package, Package], probe_body: str,
              args: argparse.Namespace) -> list[Swap]:
    """Alternate B, A, B, ... (the runner starts on A), one after the other, with a pause between."""
    swaps = []
    for number in range(1, args.swaps + 1):
        package = packages[number % 2]
        swap = swap_once(client, server, number=number, package=package, probe_body=probe_body,
                         timeout=args.swap_timeout)
        swaps.append(swap)
        print(f"  swap {number:2d} -> {package.label}: {swap.status} gen {swap.generation} "
              f"wall {swap.wall_ms:7.1f} ms, runner {swap.runner_ms} ms, "
              f"probe new model {swap.probes_new}/{swap.probes}{' ERROR ' + swap.error if swap.error else ''}",
              flush=True)
        time.sleep(args.pause)
    return swaps


# ---------------------------------------------------------------- phases

def runner_command_env(work: Path, bundle: Path) -> tuple[list[str], dict[str, str], int]:
    port = harness.free_port()
    cmd = harness.runner_command(bundle, port, WORKERS, work / "state")
    return cmd, harness.offline_env(RUNNER_ADMIN_TOKEN=TOKEN), port


def check_serving(client: httpx.Client, server: Server, body: str, expected: int) -> None:
    response = client.post(f"{server.base_url}{harness.PREDICT_PATH}", content=body,
                           headers={"Content-Type": "application/json"})
    if response.status_code != 200 or response.json().get("species") != expected:
        raise RuntimeError(f"the runner answered {response.status_code} {response.text[:300]}; "
                           f"expected species {expected}")


def swap_phase(client, server: Server, packages, *, probe_body: str, script: Path, work: Path, args):
    """wrk in the background for the whole phase; it is stopped a second after the last swap."""
    url = f"{server.base_url}{harness.PREDICT_PATH}"
    out = work / "wrk-swaps.txt"
    with harness.wrk_in_background(url, script, args.max_load, out) as wrk:
        time.sleep(1.0)  # let the load settle before the first swap
        swaps = swap_many(client, server, packages, probe_body, args)
        time.sleep(1.0)
        covered = wrk.poll() is None  # wrk still running: every swap happened under load
        return swaps, harness.stop_wrk(wrk, out), covered


# ---------------------------------------------------------------- report

def print_report(swaps: list[Swap], during: WrkResult, baseline: WrkResult, *, covered: bool, verdict: dict,
                 busy: float) -> None:
    print("\n== swaps under load: runner --workers 2, wrk -t2 -c16, iris A/B ==")
    print(f"(other work on the machine before the runner started: {busy:.0f}% cpu)")
    if busy > harness.QUIET_CPU_PCT:
        print("CAUTION: the machine was not idle; latency figures are not comparable with an idle run")
    print(harness.table(
        ["#", "to", "status", "generation", "wall ms", "runner ms", "runner phases ms", "probe new/all"],
        [[str(s.number), s.package, str(s.status), str(s.generation), f"{s.wall_ms:.1f}",
          "-" if s.runner_ms is None else f"{s.runner_ms:.1f}",
          " ".join(f"{k} {v}" for k, v in (s.phases or {}).items()) or "-", f"{s.probes_new}/{s.probes}"]
         for s in swaps]))
    walls = sorted(s.wall_ms for s in swaps)
    if walls:
        print(f"swap wall time: min {walls[0]:.1f} ms, median {walls[len(walls) // 2]:.1f} ms, "
              f"max {walls[-1]:.1f} ms")
    print()
    print(harness.table(
        ["phase", "seconds", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "failed", "breakdown"],
        [[name, f"{r.seconds:.1f}", str(r.requests), f"{r.rps:.1f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}",
          f"{r.max_ms:.1f}", str(r.errors),
          f"non-2xx {r.non_2xx}, " + ", ".join(f"{k} {v}" for k, v in r.socket_errors.items())]
         for name, r in (("during swaps", during), ("baseline", baseline))]))
    print(f"\np99 during swaps / baseline: x{during.p99_ms / baseline.p99_ms:.2f}")
    print(f"load covered every swap: {'yes' if covered else 'NO (wrk ended before the last swap)'}")
    print(f"successful swaps: {verdict['successful_swaps']}/{verdict['swaps']}, "
          f"failed requests during swaps: {verdict['failed_requests']}")
    print(f"RESULT: {'PASS' if verdict['pass'] else 'FAIL (' + '; '.join(verdict['reasons']) + ')'}")


def judge(swaps: list[Swap], during: WrkResult, covered: bool, wanted: int) -> dict:
    successful = sum(s.ok for s in swaps)
    reasons = []
    if during.errors:
        reasons.append(f"{during.errors} failed requests")
    if successful != wanted:
        reasons.append(f"{successful}/{wanted} swaps succeeded")
    if not covered:
        reasons.append("load did not cover every swap")
    return {"pass": not reasons, "reasons": reasons, "swaps": wanted, "successful_swaps": successful,
            "failed_requests": during.errors}


def measure(work: Path, packages: tuple[Package, Package], probe_body: str, log: Path, args) -> dict:
    """Serve A, warm up, swap under load, then the baseline; the runner is stopped when this returns."""
    cmd, env, port = runner_command_env(work, packages[0].path.parent)
    script = harness.write_post_script(work / "post.lua", SAMPLE_BODY)
    busy = harness.check_quiet("the runner starts")
    with harness.serving("runner-w2", cmd, env=env, port=port, log=log, keep_as=LOG_NAME) as server, \
            harness.http_client() as client:
        startup = harness.wait_until(harness.runner_ready(client, server, WORKERS), server,
                                     f"ready with {WORKERS} workers")
        check_serving(client, server, SAMPLE_BODY, packages[0].sample_species)
        check_serving(client, server, probe_body, packages[0].probe_species)
        url = f"{server.base_url}{harness.PREDICT_PATH}"
        print(f"runner ready in {startup:.1f} s; warm-up {args.warmup:.0f} s")
        harness.run_wrk(url, script, args.warmup)
        print(f"swap phase: {args.swaps} swaps under wrk -t2 -c16")
        swaps, during, covered = swap_phase(client, server, packages, probe_body=probe_body,
                                              script=script, work=work, args=args)
        print(f"baseline: wrk -t2 -c16 -d{round(during.seconds)}s without swaps")
        baseline = harness.run_wrk(url, script, during.seconds)
    return {"swaps": swaps, "during": during, "baseline": baseline, "covered": covered, "busy": busy}


def run(args: argparse.Namespace) -> int:
    harness.go_offline()
    with contextlib.ExitStack() as stack:
        work = harness.scratch_dir(stack, "bench-swap-")
        package_a, package_b, probe_body = build_packages(work)
        log = work / "runner.log"
        measured = measure(work, (package_a, package_b), probe_body, log, args)
        notable = harness.notable_log_lines(log)
        kept = harness.kept_log(LOG_NAME)
    swaps, during, baseline, covered = (measured[k] for k in ("swaps", "during", "baseline", "covered"))
    verdict = judge(swaps, during, covered, args.swaps)
    print_report(swaps, during, baseline, covered=covered, verdict=verdict, busy=measured["busy"])
    for line in notable:
        print(f"runner log: {line}")
    path = harness.write_results("swap_under_load", {
        "machine": harness.machine(), "workers": WORKERS, "model_b": MODEL_B, "probe": json.loads(probe_body),
        "pause_s": args.pause, "swaps": [{**asdict(s), "ok": s.ok} for s in swaps],
        "during_swaps": during.to_dict(), "baseline": baseline.to_dict(), "load_covered_every_swap": covered,
        "background_cpu_pct": round(measured["busy"], 1),
        "verdict": verdict, "log": str(kept.relative_to(harness.REPO)), "log_notable": notable})
    print(f"wrote {path.relative_to(harness.REPO)}")
    return 0  # a FAIL is a figure, not a crash: the exit status only says whether the benchmark ran


if __name__ == "__main__":
    sys.exit(harness.run_main(run, parse_args(sys.argv[1:])))
