"""What metering costs the runner: req/s with and without a signed entitlement, in one run.

    .venv/bin/python bench/licensing_runner.py      (or: make bench-metering)

The iris example with 2 workers, `wrk -t2 -c16 -d20s --latency` single-row JSON on
/model/methods/classify. Rounds alternate, one server at a time: without metering (no
RUNNER_REQUIRE_ENTITLEMENT), then with it and an entitlement whose limit is never reached, three of each;
medians per mode. Every metered round also checks the meter counted each answered request once.
An in-process loop times the meter's take() alone (its flock pair, mapped read and write, time
compare), which neighbours on a shared machine disturb far less than req/s. On a busy machine,
--paired runs both servers at once, each under its own wrk, so that both share whatever else runs:
the req/s ratio in each round is then the comparison (medians of the rounds' ratios).
Target (docs/design/licensing.md, section 4): under 5% fewer req/s with the meter.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import harness
from harness import SAMPLE_BODY, Server

BENCH = "licensing_runner"
WORKERS = 2
TARGET_PCT = 5.0
TOKEN = "bench-admin-token-licensing-runner-7Qm2"
DEPLOYMENT = str(uuid.uuid4())
LIMIT = 10**12  # never reached: the meter counts, it does not refuse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of measured load per round")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load before it")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per mode (they alternate)")
    parser.add_argument("--paired", action="store_true",
                        help="both servers at once, each under its own wrk (for a machine busy with other work)")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- the portal's side, in small

class Licensor:
    """An Ed25519 key and entitlements signed with it, as the portal's licensing app makes them."""

    def __init__(self):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self.private = Ed25519PrivateKey.generate()
        self.public = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.kid = hashlib.sha256(self.public).hexdigest()[:16]

    def keys_env(self) -> str:
        return json.dumps({self.kid: base64.b64encode(self.public).decode()})

    def document(self, model_sha256: str) -> dict:
        now = time.time()
        body = {"v": 1, "id": str(uuid.uuid4()), "kid": self.kid, "issuer": "bench", "deployment": DEPLOYMENT,
                "replica": 0, "solution": str(uuid.uuid4()), "models": [model_sha256],
                "agreement": str(uuid.uuid4()), "assignee": "user:bench", "actions": ["predict"],
                "predictions": LIMIT, "not_before": _iso(now - 60), "not_after": _iso(now + 3600),
                "issued": _iso(now)}
        signed = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return {"entitlement": body, "alg": "EdDSA", "sig": base64.b64encode(self.private.sign(signed)).decode()}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# ---------------------------------------------------------------- servers and rounds

@contextlib.contextmanager
def runner(bundle: Path, work: Path, name: str, *, metered: bool, licensor: Licensor):
    """A runner with 2 workers, ready, its answer checked, and (metered) its entitlement installed."""
    port = harness.free_port()
    log = work / f"{name}.log"
    env = harness.offline_env(RUNNER_ADMIN_TOKEN=TOKEN)
    if metered:
        env.update(RUNNER_REQUIRE_ENTITLEMENT="1", RUNNER_DEPLOYMENT_ID=DEPLOYMENT,
                   RUNNER_ENTITLEMENT_KEYS=licensor.keys_env())
    cmd = harness.runner_command(bundle, port, WORKERS, work / f"state-{name}")
    with harness.serving(name, cmd, env=env, port=port, log=log, keep_as=f"{BENCH}-{name}") as server, \
            harness.http_client() as client:
        harness.wait_until(harness.runner_ready(client, server, WORKERS), server, f"ready with {WORKERS} workers")
        if metered:
            install(client, server, licensor.document(_model_sha256(bundle)))
        check_answer(client, f"{server.base_url}{harness.PREDICT_PATH}")
        yield server, client
    for line in harness.notable_log_lines(log):
        print(f"  {name} log: {line}")


def one_round(bundle: Path, work: Path, script: Path, *, metered: bool, index: int, licensor: Licensor,
              args: argparse.Namespace) -> dict:
    mode = "metered" if metered else "plain"
    name = f"{mode}-{index}"
    busy = harness.check_quiet(name)
    with runner(bundle, work, name, metered=metered, licensor=licensor) as (server, client):
        url = f"{server.base_url}{harness.PREDICT_PATH}"
        harness.run_wrk(url, script, args.warmup)
        result = harness.run_wrk(url, script, args.duration)
        counted = usage(client, server)["used"] if metered else None
    return report_row(name, mode, result, busy, counted)


def report_row(name: str, mode: str, result, busy: float, counted: int | None) -> dict:
    print(f"  {name}: {result.rps:.0f} req/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
          f"errors {result.errors}" + (f", meter {counted}" if counted is not None else ""), flush=True)
    return {"round": name, "mode": mode, "background_cpu_pct": round(busy, 1), **result.to_dict(),
            "meter_used": counted}


def paired_rounds(bundle: Path, work: Path, script: Path, licensor: Licensor, args: argparse.Namespace) -> list:
    """Both servers at once, each under its own wrk for the same seconds: whatever else runs on the
    machine slows both alike, so each round's req/s ratio compares them."""
    rows = []
    with runner(bundle, work, "plain", metered=False, licensor=licensor) as (plain, _), \
            runner(bundle, work, "metered", metered=True, licensor=licensor) as (metered, client):
        servers = {"plain": plain, "metered": metered}
        both(servers, work, script, args.warmup, "warmup")
        for index in range(1, args.rounds + 1):
            busy = harness.check_quiet(f"round {index}")
            used_before = usage(client, metered)["used"]
            results = both(servers, work, script, args.duration, f"round-{index}")
            counted = usage(client, metered)["used"] - used_before
            rows += [report_row(f"plain-{index}", "plain", results["plain"], busy, None),
                     report_row(f"metered-{index}", "metered", results["metered"], busy, counted)]
    return rows


def both(servers: dict, work: Path, script: Path, seconds: float, label: str) -> dict:
    with contextlib.ExitStack() as stack:
        running = {}
        for mode, server in servers.items():
            out = work / f"wrk-{label}-{mode}.txt"
            url = f"{server.base_url}{harness.PREDICT_PATH}"
            running[mode] = (stack.enter_context(harness.wrk_in_background(url, script, seconds, out)), out)
        for process, _ in running.values():
            process.wait(timeout=seconds + 60)
        return {mode: harness.parse_wrk(out.read_text()) for mode, (_, out) in running.items()}


def _model_sha256(bundle: Path) -> str:
    return hashlib.sha256((bundle / "modelpackage.zip").read_bytes()).hexdigest()


def install(client, server: Server, document: dict) -> None:
    response = client.put(f"{server.base_url}/model/entitlement", json=document,
                          headers={"Authorization": f"Bearer {TOKEN}"})
    if response.status_code != 200:
        raise RuntimeError(f"the entitlement was refused: {response.status_code} {response.text[:500]}")


def usage(client, server: Server) -> dict:
    return client.get(f"{server.base_url}/model/usage", headers={"Authorization": f"Bearer {TOKEN}"}).json()


def check_answer(client, url: str) -> None:
    response = client.post(url, content=SAMPLE_BODY, headers={"Content-Type": "application/json"})
    if response.status_code != 200 or "species" not in response.json():
        raise RuntimeError(f"the runner answered {response.status_code}: {response.text[:500]}")


def check_counted(row: dict) -> list[str]:
    """The meter must have counted at least every request wrk saw answered in the measured run (it also
    counted the warm-up and the answer check)."""
    if row["mode"] != "metered":
        return []
    answered = row["requests"] - row["non_2xx"]
    return [] if row["meter_used"] >= answered else [f"{row['round']}: meter {row['meter_used']} < {answered}"]


# ---------------------------------------------------------------- the meter alone

def measure_take(licensor: Licensor, calls: int = 200_000) -> dict:
    """take() in this process on a meter of its own: what metering adds to each prediction's CPU time."""
    from runner_image.meter import Meter
    from runner_image.settings import Settings

    model = "ab" * 32

    class Slot:  # what take() reads of the served model
        generation = 1
        sha256 = {"model": model}

    with tempfile.TemporaryDirectory(prefix="bench-meter-") as state:
        settings = Settings(state_dir=Path(state), require_entitlement=True, deployment_id=DEPLOYMENT,
                            entitlement_keys={licensor.kid: licensor.public})
        meter = Meter(settings)
        try:
            meter.install(licensor.document(model))
            for _ in range(1000):
                meter.take(Slot)
            started = time.perf_counter()
            for _ in range(calls):
                meter.take(Slot)
            seconds = time.perf_counter() - started
        finally:
            meter.close()
    return {"calls": calls, "us_per_take": round(seconds / calls * 1e6, 2)}


# ---------------------------------------------------------------- report

def paired_ratio(rows: list[dict]) -> float:
    """The median over rounds of metered req/s / plain req/s (rows come in plain, metered pairs)."""
    return statistics.median(rows[i + 1]["rps"] / rows[i]["rps"] for i in range(0, len(rows), 2))


def summary(rows: list[dict], mode: str) -> dict:
    mine = [r for r in rows if r["mode"] == mode]
    return {"mode": mode, "rounds": len(mine), "rps": statistics.median(r["rps"] for r in mine),
            "p50_ms": statistics.median(r["p50_ms"] for r in mine),
            "p99_ms": statistics.median(r["p99_ms"] for r in mine), "errors": sum(r["errors"] for r in mine)}


def print_report(rows: list[dict], plain: dict, metered: dict, *, fewer_pct: float, take: dict,
                 problems: list[str], paired: bool) -> None:
    print(f"\n== metering at the runner: iris, {WORKERS} workers, single-row JSON, wrk -t2 -c16 ==")
    print(harness.table(
        ["round", "req/s", "p50 ms", "p99 ms", "errors", "meter used", "other cpu %"],
        [[r["round"], f"{r['rps']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", str(r["errors"]),
          "-" if r["meter_used"] is None else str(r["meter_used"]), f"{r['background_cpu_pct']:.0f}"] for r in rows]))
    print("\nmedians:")
    print(harness.table(
        ["mode", "req/s", "p50 ms", "p99 ms", "errors"],
        [[s["mode"], f"{s['rps']:.0f}", f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}", str(s["errors"])]
         for s in (plain, metered)]))
    # Each worker answers rps / WORKERS requests a second: that is its CPU time per request.
    print(f"\nthe meter alone: {take['us_per_take']:.2f} us per take() ({take['calls']} calls in process)", end="")
    if not paired:  # paired, each server has half the machine: its req/s is no measure of a request's cost
        share = take["us_per_take"] / (WORKERS / plain["rps"] * 1e6) * 100
        print(f", {share:.2f}% of a worker's time per request at the plain median", end="")
    print()
    how = "the median of each round's ratio, both servers loaded at once" if paired else "medians of the rounds"
    print(f"metered vs plain: {fewer_pct:+.1f}% fewer req/s ({how}; target: under {TARGET_PCT:.0f}%)")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    verdict = fewer_pct < TARGET_PCT and not problems
    print(f"RESULT: {'PASS' if verdict else 'FAIL'}")


def run(args: argparse.Namespace) -> int:
    harness.go_offline()
    example = harness.load_example()
    licensor = Licensor()
    rows = []
    with contextlib.ExitStack() as stack:
        work = harness.scratch_dir(stack, "bench-licensing-runner-")
        print("packing the iris example")
        bundle = example.make_bundle(work / "bundle")
        script = harness.write_post_script(work / "predict.lua", SAMPLE_BODY)
        if args.paired:
            rows = paired_rounds(bundle, work, script, licensor, args)
        else:
            for index in range(1, args.rounds + 1):
                for metered in (False, True):
                    rows.append(one_round(bundle, work, script, metered=metered, index=index, licensor=licensor,
                                          args=args))
    take = measure_take(licensor)
    plain, metered = summary(rows, "plain"), summary(rows, "metered")
    if args.paired:
        fewer_pct = 100.0 * (1 - paired_ratio(rows))
    else:
        fewer_pct = 100.0 * (plain["rps"] - metered["rps"]) / plain["rps"]
    problems = [p for r in rows for p in check_counted(r)]
    problems += [f"{s['mode']}: {s['errors']} failed requests" for s in (plain, metered) if s["errors"]]
    print_report(rows, plain, metered, fewer_pct=fewer_pct, take=take, problems=problems, paired=args.paired)
    path = harness.write_results(BENCH, {
        "machine": harness.machine(), "load": {"tool": "wrk", "threads": 2, "connections": 16,
                                               "seconds": args.duration, "warmup_s": args.warmup,
                                               "workers": WORKERS, "paired": args.paired},
        "rounds": rows, "plain": plain, "metered": metered, "fewer_rps_pct": round(fewer_pct, 2), "take": take,
        "target_pct": TARGET_PCT, "problems": problems, "pass": fewer_pct < TARGET_PCT and not problems})
    print(f"wrote {path.relative_to(harness.REPO)}")
    return 0  # a FAIL is a figure, not a crash: the exit status only says whether the benchmark ran


if __name__ == "__main__":
    sys.exit(harness.run_main(run, parse_args(sys.argv[1:])))
