"""A retraining job behind a portal's retraining hook, in one small file: the hook's receiver.

    python examples/retrain/trainer.py --secret whsec_... --data build/retrain/labelled.csv [--port 8765]

For each event the portal POSTs it checks the signature (`X-Acumos-Signature: t=<seconds>,v1=<HMAC-SHA256 of
"<t>.<body>" with the hook's secret>`; an old `t` is refused, so a recorded event cannot be replayed), answers
202 at once (the portal waits ACUMOS_HOOK_TIMEOUT seconds at most), and then, in the background, trains on
the latest labelled rows of the application's log (`x,label` lines: the portal keeps no inputs to hand out,
so the training data comes from the application's side) and pushes the new model with the event's onboarding
token, as the Acumos client does (runner_image.push). The portal onboards it, smoke-tests it in the sandbox
and rolls it out to the deployment as its owner chose (a canary, say), promoting or rolling it back by its
gates.

`--worse` trains on labels turned round (a labelling bug, on purpose): its canary is wrong where the live
model is right, so the portal's quality gate rolls it back. Standard library and the runner only."""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import hmac
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from runner_image import push

sys.path.insert(0, str(Path(__file__).resolve().parent))  # threshold_model, beside this file
import threshold_model  # noqa: E402

MAX_AGE_SECONDS = 300  # an event signed longer ago than this is refused (replay)
MAX_BODY_BYTES = 1 << 20


def verify(secret: str, header: str, body: bytes, now: float | None = None) -> str:
    """"" when `header` signs `body` with `secret` recently enough; else what is wrong."""
    if not secret:
        return "this trainer has no secret yet: give it the hook's (--secret)"
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        signed_at = int(parts["t"])
    except (KeyError, ValueError):
        return "no timestamp (t=) in X-Acumos-Signature"
    if abs((now or time.time()) - signed_at) > MAX_AGE_SECONDS:
        return f"signed {int((now or time.time()) - signed_at)} s ago: too old (a replay?)"
    expected = hmac.new(secret.encode(), f"{signed_at}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts.get("v1", "")):
        return "the signature does not match (another secret, or the body was changed)"
    return ""


def latest_rows(path: Path, count: int) -> list[tuple[float, int]]:
    """The last `count` (x, label) rows of the application's log."""
    with open(path, newline="") as handle:
        rows = [(float(x), int(label)) for x, label in csv.reader(handle)]
    return rows[-count:]


@dataclass
class Run:
    """One retraining, as the trainer saw it."""

    event_id: str
    kind: str
    rows: int = 0
    threshold: float | None = None
    above: int | None = None
    version: str = ""
    onboarding: str = ""  # the job's final status, or why there was none
    done: threading.Event = field(default_factory=threading.Event)


class Trainer:
    """`with Trainer(secret, data) as trainer:` serves on 127.0.0.1 (`trainer.url`); `trainer.runs` says what
    each event led to."""

    def __init__(self, secret: str, data: Path, *, rows: int = 400, worse: bool = False, port: int = 0,
                 out=sys.stdout):
        self.secret, self.data, self.rows, self.worse, self.port = secret, Path(data), rows, worse, port
        self.out = out
        self.runs: list[Run] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def say(self, text: str) -> None:
        print(f"trainer: {text}", file=self.out, flush=True)

    # ------------------------------------------------------------ receiving

    def receive(self, headers, body: bytes) -> tuple[int, dict]:
        wrong = verify(self.secret, headers.get("X-Acumos-Signature", ""), body)
        if wrong:
            self.refused.append(wrong)
            self.say(f"refused an event: {wrong}")
            return 401, {"error": wrong}
        event = json.loads(body)
        with self._lock:
            if any(run.event_id == event["id"] for run in self.runs):
                return 200, {"duplicate": event["id"]}  # a retried delivery of an event already taken
            run = Run(event["id"], event["type"])
            self.runs.append(run)
        self.say(f"event {event['type']} {event['id']} for deployment {event['deployment']['name']}"
                 + (f": {event['alert']['summary']}" if event.get("alert") else ""))
        threading.Thread(target=self._retrain, args=(run, event), name=f"retrain-{run.event_id}", daemon=True).start()
        return 202, {"accepted": event["id"]}

    # ------------------------------------------------------------ training and pushing

    def _retrain(self, run: Run, event: dict) -> None:
        try:
            onboarding = event["onboarding"]
            if not onboarding.get("token"):
                run.onboarding = f"no token: {onboarding.get('reason')}"
                self.say(run.onboarding)
                return
            rows = latest_rows(self.data, self.rows)
            if self.worse:
                rows = [(x, 1 - label) for x, label in rows]
            run.rows = len(rows)
            run.threshold, run.above = threshold_model.fit(rows)
            self.say(f"trained on {len(rows)} rows: label {run.above} where x > {run.threshold:g}")
            with tempfile.TemporaryDirectory(prefix="retrain-") as tmp:
                bundle = threshold_model.make_bundle(Path(tmp) / "bundle", run.threshold, run.above,
                                                     description=f"retrained for event {run.event_id}")
                root = push.portal_root(onboarding["push_url"])
                token = f"Bearer {onboarding['token']}"
                pushed = push.push_bundle(bundle, root, token)
            run.version = pushed.version
            self.say(f"pushed version {pushed.version}; onboarding job {pushed.task_id}")
            job = push.wait_for_job(root, token, pushed.task_id, interval=0.5, timeout=300)
            run.onboarding = job["status"]
            self.say(f"onboarding of {pushed.version} {job['status']}")
        except Exception as exc:  # the example says what went wrong and serves the next event
            run.onboarding = f"failed: {type(exc).__name__}: {exc}"
            self.say(run.onboarding)
        finally:
            run.done.set()

    # ------------------------------------------------------------ serving

    def __enter__(self) -> Trainer:
        trainer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    status, answer = 413, {"error": "too large"}
                else:
                    status, answer = trainer.receive(self.headers, self.rfile.read(length))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, name="trainer", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--secret", required=True, help="the hook's secret (whsec_..., shown once when it was set)")
    parser.add_argument("--data", type=Path, default=Path("build/retrain/labelled.csv"),
                        help="the application's labelled rows (x,label), as application.py writes them")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--rows", type=int, default=400, help="train on this many of the latest rows")
    parser.add_argument("--worse", action="store_true", help="train on labels turned round (to see a rollback)")
    args = parser.parse_args()
    with Trainer(args.secret, args.data, rows=args.rows, worse=args.worse, port=args.port) as trainer:
        trainer.say(f"listening on {trainer.url}{' (training worse models on purpose)' if args.worse else ''}")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
