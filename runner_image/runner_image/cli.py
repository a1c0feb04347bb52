"""Command line: `serve` a bundle, `pack` a model into a bundle.

    python -m runner_image serve <bundle dir> [--host 127.0.0.1] [--port 3330] [--grpc-port 3331] [--workers N]
    python -m runner_image pack --model F --flavour sklearn --name Iris --method classify \
        --input "a:double,b:double" --output "label:int64" [--sample s.json] --out bundle/
    python -m runner_image push <bundle dir> --url http://portal [--token T] [--no-wait]
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from runner_image import __version__
from runner_image.card import CardError, read_card
from runner_image.errors import RunnerError
from runner_image.pack import SignatureError, pack_bundle
from runner_image.package import FLAVOURS, POSTPROCESSORS, ExtractLimits
from runner_image.push import add_arguments as add_push_arguments
from runner_image.push import run as run_push
from runner_image.settings import HttpLimits, admin_token_sha256, configure_logging, entitlement_settings, log_level
from runner_image.state import StateDir, write_json


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    os.environ["RUNNER_LOG_LEVEL"] = args.log_level  # worker processes configure logging from it
    configure_logging()
    try:
        return args.func(args)
    except RunnerError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runner_image", description="Acumos-style model runner")
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--log-level", default=log_level())
    commands = parser.add_subparsers(dest="command", required=True)
    _serve_parser(commands.add_parser("serve", help="serve a model bundle over REST"))
    _check_parser(commands.add_parser("check", help="load a bundle and answer its samples, without serving"))
    _pack_parser(commands.add_parser("pack", help="write a model bundle from a model file"))
    _push_parser(commands.add_parser("push", help="onboard a bundle to a portal and follow the pipeline"))
    return parser


def _serve_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path, help="directory with metadata.json, model.proto, modelpackage.zip")
    p.add_argument("--host", default=os.environ.get("RUNNER_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("RUNNER_PORT", "3330")))
    p.add_argument("--workers", type=int, default=int(os.environ.get("RUNNER_WORKERS", "1")))
    p.add_argument("--grpc-port", type=_port, default=os.environ.get("RUNNER_GRPC_PORT", "3331"),
                   help="gRPC (the model's own service and the Open Inference Protocol), in every worker; "
                        "0: no gRPC (default 3331)")
    p.add_argument("--state-dir", type=Path, default=os.environ.get("RUNNER_STATE_DIR") or None,
                   help="where swapped models are kept; reuse it to keep swaps across restarts "
                        "(default: a fresh temporary directory)")
    p.set_defaults(func=serve)


def _port(raw: str) -> int:
    if not raw.strip().isdigit() or int(raw) > 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 0 to 65535, got {raw!r}")
    return int(raw)


def _check_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path, help="directory with metadata.json, model.proto, modelpackage.zip")
    p.add_argument("--state-dir", type=Path, required=True, help="an empty directory to unpack the model in")
    p.add_argument("--report", type=Path, required=True, help="where to write the JSON report")
    p.set_defaults(func=check)


def _pack_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model file, or directory for mlflow")
    p.add_argument("--flavour", required=True, choices=FLAVOURS)
    p.add_argument("--name", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--input", required=True, help='fields, e.g. "a:double,b:repeated int64"')
    p.add_argument("--output", required=True, help='fields, e.g. "label:int64"')
    p.add_argument("--sample", type=Path, help="JSON file: a request the model must answer")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--call", help="the model's function to call (default: predict, or the method name)")
    p.add_argument("--postprocess", choices=POSTPROCESSORS)
    p.add_argument("--requirement", action="append", default=[], help="extra pip requirement name==version")
    p.add_argument("--model-version", help="becomes the revision's version when onboarded")
    p.add_argument("--description", default="")
    p.add_argument("--card", type=Path, help="a model card: Markdown with YAML front matter (as Hugging Face's), "
                   "or JSON; it becomes metadata.json's modelCard")
    p.add_argument("--no-check", action="store_true", help="do not load the model to check the bundle")
    p.set_defaults(func=pack)


def _push_parser(p: argparse.ArgumentParser) -> None:
    add_push_arguments(p)
    p.set_defaults(func=push)


def serve(args) -> int:
    # The model stack (protobuf, the flavours) loads only for the commands that load a model: not for
    # --help, push or pack --no-check.
    from runner_image.runtime import record_seed, seed
    from runner_image.slot import load_slot

    _export_grpc(args)
    admin_token = admin_token_sha256()  # a weak token or a bad setting stops the runner here, before any worker starts
    if entitlement_settings()["require_entitlement"] and not admin_token:
        raise SystemExit("RUNNER_REQUIRE_ENTITLEMENT=1 needs RUNNER_ADMIN_TOKEN (or RUNNER_ADMIN_TOKEN_SHA256): the "
                         "portal installs the entitlement with PUT /model/entitlement")
    limits = HttpLimits.from_env()
    state_dir = _state_dir(args.state_dir)
    state = StateDir(state_dir)
    active = state.control().get("active")
    if active is None:
        active = seed(state, args.bundle.resolve(), ExtractLimits())
        fresh = True
    else:
        logging.getLogger("runner_image").info("resuming generation %s from %s", active, state_dir)
        fresh = False
    slot = load_slot(state.generation_dir(active), active)  # fail here, clearly, not in every worker
    if fresh:
        record_seed(state, slot)
    os.environ["RUNNER_STATE_DIR"] = str(state_dir)
    return _run_uvicorn(args, state_dir, slot, limits)


def _export_grpc(args) -> None:
    """Every worker reads its gRPC port and address from the environment (settings.Settings.from_env)."""
    if args.grpc_port and args.grpc_port == args.port:
        raise SystemExit(f"--grpc-port {args.grpc_port} is the HTTP --port: give gRPC another (or 0 for none)")
    if args.grpc_port:
        _check_port_free(args.host, args.grpc_port)
    os.environ["RUNNER_GRPC_PORT"] = str(args.grpc_port)
    os.environ["RUNNER_HOST"] = args.host


def _check_port_free(host: str, port: int) -> None:
    """Stop here, once and clearly, when the gRPC port is taken: else every worker fails to start with a
    traceback. The workers bind it with SO_REUSEPORT (so that they share it), and so would another runner
    of the same user, silently: the kernel would then spread one deployment's gRPC calls over two runners
    serving different models. The probe binds WITHOUT SO_REUSEPORT, which any listener, a runner's included,
    refuses; SO_REUSEADDR only lets it past connections of an earlier run still closing (TIME_WAIT)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise SystemExit(f"gRPC cannot listen on {host}:{port} ({exc.strerror or exc}): choose another port with "
                         "--grpc-port (or 0 for no gRPC)") from None


def check(args) -> int:
    """Load the bundle and answer its samples in this process, as a swap checks a candidate. The
    portal's smoke test runs this in the sandbox, with no network: nothing to listen on or reach."""
    from runner_image.runtime import seed  # the model stack: see serve
    from runner_image.slot import check_samples, load_slot

    started = time.monotonic()
    try:
        state = StateDir(args.state_dir)
        generation = seed(state, args.bundle.resolve(), ExtractLimits())
        slot = load_slot(state.generation_dir(generation), generation)
        loaded = time.monotonic()
        answers = {method: _timed_sample(check_samples, slot, method, sample)
                   for method, sample in slot.manifest.samples.items()}
        latency = {method: _latency(slot, method, sample) for method, sample in slot.manifest.samples.items()}
    except RunnerError as exc:
        write_json(args.report, {"ok": False, "error": exc.message})
        return 1
    except (Exception, SystemExit) as exc:  # the model's own code failed while loading or answering
        write_json(args.report, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    write_json(args.report, {"ok": True, "name": slot.name, "flavour": slot.manifest.flavour,
                             "load_ms": round((loaded - started) * 1000, 1), "samples": answers,
                             "latency": latency})
    return 0


def _timed_sample(check_samples, slot, method: str, sample: dict) -> dict:
    started = time.monotonic()
    answer = check_samples(slot, {method: sample})[method]
    return {"request": sample, "answer": answer, "ms": round((time.monotonic() - started) * 1000, 1)}


LATENCY_CALLS = 20       # single-row calls timed per method, after the sample's first (warm) call
LATENCY_BUDGET = 1.0     # seconds at most spent timing one method: a slow model gets fewer calls
BATCH_ROWS = 32          # rows in the timed joint call of a model that answers rows together


def _latency(slot, method: str, sample: dict) -> dict:
    """How long the model takes to answer the sample alone (median and slowest of up to LATENCY_CALLS calls),
    and, for a model that answers rows together (runner_image.batching), BATCH_ROWS of it in one call: what
    onboarding records as the model's measured latency. The first call was the sample's check (warm-up)."""
    from runner_image.codec import message_from_dict

    request = message_from_dict(slot.rpc(method).input, sample)
    times: list[float] = []
    deadline = time.monotonic() + LATENCY_BUDGET
    while len(times) < LATENCY_CALLS and time.monotonic() < deadline:
        started = time.perf_counter()
        slot.predict(method, request)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    out = {"calls": len(times), "single_ms": round(times[len(times) // 2], 3), "single_max_ms": round(times[-1], 3)}
    if slot.batchable:
        started = time.perf_counter()
        slot.predict_batch(method, [request] * BATCH_ROWS)
        out.update(batch_rows=BATCH_ROWS, batch_ms=round((time.perf_counter() - started) * 1000, 3))
    return out


def _state_dir(given: Path | None) -> Path:
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        return Path(given).resolve()
    path = Path(tempfile.mkdtemp(prefix="acumos-runner-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _run_uvicorn(args, state_dir: Path, slot, limits) -> int:
    # The web stack (uvicorn, starlette, the routes) is the serve command's alone.
    import uvicorn

    from runner_image.httpguard import GuardedHttpToolsProtocol
    from runner_image.server import create_app

    if not os.environ.get("RUNNER_ADMIN_TOKEN") and not os.environ.get("RUNNER_ADMIN_TOKEN_SHA256"):
        logging.getLogger("runner_image").warning("RUNNER_ADMIN_TOKEN is not set: swaps are refused")
    _raise_open_files_limit()
    # limit_concurrency stays off unless RUNNER_LIMIT_CONCURRENCY sets it: uvicorn counts every open
    # connection, slow ones included, so under a slowloris flood it would answer 503 to everyone until
    # the header and body deadlines (GuardedHttpToolsProtocol) cleared them. The deadlines are the bound.
    common = {"host": args.host, "port": args.port, "access_log": False, "log_level": args.log_level.lower(),
              "timeout_graceful_shutdown": 10, "http": GuardedHttpToolsProtocol,
              "limit_concurrency": limits.limit_concurrency}
    if args.workers <= 1:
        uvicorn.run(create_app(preloaded=slot), **common)
        return 0
    metrics_dir = state_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    uvicorn.run("runner_image.server:create_app", factory=True, workers=args.workers, **common)
    return 0


def _raise_open_files_limit() -> None:
    """Many clients at once need many descriptors: take the hard limit the system allows, not the
    soft default (often 1024)."""
    try:
        import resource  # POSIX only: elsewhere the ImportError below keeps what there is

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else 1 << 16
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ImportError, ValueError, OSError):  # not on this system, or not allowed: keep what there is
        pass


def pack(args) -> int:
    try:
        sample = json.loads(args.sample.read_text()) if args.sample else None
    except (OSError, ValueError) as exc:
        print(f"error: --sample {args.sample}: {exc}", file=sys.stderr)
        return 2
    card = None
    if args.card:
        try:
            card, left_out = read_card(args.card)
        except CardError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if left_out:
            print(f"pack: --card {args.card}: left out {', '.join(left_out)} (not fields of a model card)",
                  file=sys.stderr)
    try:
        out = pack_bundle(model=args.model, flavour=args.flavour, name=args.name, method=args.method,
                          inputs=args.input, outputs=args.output, out=args.out, sample=sample, call=args.call,
                          postprocess=args.postprocess, requirements=args.requirement,
                          version=args.model_version, description=args.description, check=not args.no_check,
                          card=card)
    except SignatureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}/metadata.json, model.proto, modelpackage.zip")
    return 0


def push(args) -> int:
    return run_push(args)
