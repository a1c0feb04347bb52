"""The application in the retraining example: it asks a deployment for predictions, learns the truth a moment
later and tells the runner (`POST /model/feedback`, by the answer's `X-Request-Id`), and keeps the labelled
rows in a log the trainer reads.

    python examples/retrain/application.py --url <the deployment's endpoint> [--shift 0] [--rate 40]

The world it lives in: x is drawn around `shift` (normal, sd 1) and the true label is 1 where x > shift. The
first model (threshold 0) is right while shift is 0; run it again with `--shift 5` and the inputs drift, the
first model's answers turn wrong, and the drift rule of the deployment fires. Every answer that is not a 200
is counted as failed and printed: during a rollout there should be none."""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

METHOD = "classify"
FEEDBACK_EVERY = 0.5  # seconds between feedback batches


class Application:
    """`with Application(url, log) as app:` sends requests in a thread; `app.shift` may be changed meanwhile.
    `app.failed` lists the requests that did not get a 200; `app.served` counts answers by threshold."""

    def __init__(self, url: str, log: Path, *, shift: float = 0.0, rate: float = 40.0, seed: int = 0,
                 out=sys.stdout):
        self.url = url.rstrip("/")
        self.log, self.shift, self.rate, self.out = Path(log), shift, rate, out
        self.random = random.Random(seed)
        self.sent = 0
        self.failed: list[str] = []
        self.served: collections.Counter = collections.Counter()  # by the threshold that answered
        self.feedback_refused: list[str] = []
        self._pending: list[dict] = []
        self._pending_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ one request

    def ask(self) -> None:
        shift = self.shift
        x = round(self.random.gauss(shift, 1.0), 4)
        truth = int(x > shift)
        try:
            status, headers, answer = _post(f"{self.url}/model/methods/{METHOD}", {"x": x})
        except OSError as exc:
            status, headers, answer = 0, {}, {"error": str(exc)}
        self.sent += 1
        if status != 200:
            self.failed.append(f"{status}: {json.dumps(answer)[:200]}")
            print(f"application: a request failed: {self.failed[-1]}", file=self.out, flush=True)
            return
        self.served[answer.get("threshold")] += 1
        with self._pending_lock:
            self._pending.append({"request_id": headers["x-request-id"], "truth": {"label": truth}})
        with open(self.log, "a") as handle:
            handle.write(f"{x},{truth}\n")

    def tell_truth(self) -> None:
        with self._pending_lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            status, _, answer = _post(f"{self.url}/model/feedback", batch)
        except OSError as exc:
            status, answer = 0, {"error": str(exc)}
        if status != 200:
            self.feedback_refused.append(f"{status}: {json.dumps(answer)[:200]}")

    # ------------------------------------------------------------ running

    def _ask_all_along(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.ask()
            self._stop.wait(max(0.0, 1 / self.rate - (time.monotonic() - started)))

    def _tell_all_along(self) -> None:
        while not self._stop.wait(FEEDBACK_EVERY):
            self.tell_truth()
        self.tell_truth()

    def __enter__(self) -> Application:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._threads = [threading.Thread(target=target, name=name, daemon=True)
                         for target, name in ((self._ask_all_along, "ask"), (self._tell_all_along, "feedback"))]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


def _post(url: str, body) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, _lowered(answer.headers), json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            said = json.loads(text)
        except ValueError:
            said = {"error": text.decode(errors="replace")[:200]}
        return exc.code, _lowered(exc.headers), said


def _lowered(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the deployment's endpoint, e.g. http://127.0.0.1:40123")
    parser.add_argument("--shift", type=float, default=0.0, help="where the inputs are centred (and the truth cut)")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--log", type=Path, default=Path("build/retrain/labelled.csv"))
    args = parser.parse_args()
    with Application(args.url, args.log, shift=args.shift, rate=args.rate, seed=int(time.time())) as app:
        print(f"application: asking {args.url} {args.rate:g} times a second around x = {args.shift:g}; Ctrl-C stops")
        try:
            while True:
                time.sleep(5)
                served = ", ".join(f"threshold {t}: {n}" for t, n in sorted(app.served.items(), key=str))
                print(f"application: {app.sent} sent, {len(app.failed)} failed; answered by {served}", flush=True)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
