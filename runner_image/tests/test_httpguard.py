"""Slow clients (slowloris) cannot hold the runner's connections: the headers and the body of a
request each have a deadline, a big upload that keeps moving is not cut, and predictions are
answered all along. Against a real runner process, with short deadlines set by its environment."""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import statistics
import threading
import time

import httpx
import pytest

from runner_image.settings import HttpLimits

from .builders import IRIS_SAMPLE

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 3.0
MIN_RATE = 16 << 10
MARGIN = 3.0  # a loaded machine may run the runner's timer late
SLOW_ENV = {"RUNNER_HEADER_TIMEOUT": str(HEADER_TIMEOUT), "RUNNER_BODY_TIMEOUT": str(BODY_TIMEOUT),
            "RUNNER_BODY_MIN_RATE": str(MIN_RATE)}
PARTIAL_HEADERS = b"POST /model/methods/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
UNFINISHED_BODY = (b"POST /model/methods/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 1000000\r\n\r\n{\"sepal_length\": ")
KEPT_ALIVE = (b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + PARTIAL_HEADERS)


class SlowClient:
    """One connection sending `opening`, then (if `trickle`) one more byte every 0.5 s; it notes when
    the runner closes it and what the runner said."""

    def __init__(self, port: int, kind: str, opening: bytes, trickle: bytes = b""):
        self.kind, self.trickle = kind, trickle
        self.sock = socket.create_connection(("127.0.0.1", port))
        if opening:
            self.sock.sendall(opening)
        self.sock.setblocking(False)
        self.started = time.monotonic()
        self.closed_after: float | None = None
        self.received = b""

    def read(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BlockingIOError) as exc:
            if isinstance(exc, BlockingIOError):
                return
            chunk = b""
        if chunk:
            self.received += chunk
        else:
            self.closed_after = time.monotonic() - self.started

    def send_more(self) -> None:
        if self.trickle and self.closed_after is None:
            with contextlib.suppress(OSError):  # closed under us: read() will see it
                self.sock.send(self.trickle)


def hold(clients: list[SlowClient], seconds: float) -> None:
    """Read from every client until all are closed or `seconds` pass, trickling as they go."""
    selector = selectors.DefaultSelector()
    for client in clients:
        selector.register(client.sock, selectors.EVENT_READ, client)
    deadline = time.monotonic() + seconds
    next_trickle = time.monotonic() + 0.5
    while time.monotonic() < deadline and any(c.closed_after is None for c in clients):
        for key, _ in selector.select(timeout=0.1):
            client = key.data
            client.read()
            if client.closed_after is not None:
                selector.unregister(client.sock)
        if time.monotonic() >= next_trickle:
            for client in clients:
                client.send_more()
            next_trickle += 0.5
    selector.close()


class Prober(threading.Thread):
    """Predictions on fresh connections while the slow clients hold theirs."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stop, self.latencies, self.failures = url, threading.Event(), [], []

    def run(self) -> None:
        with httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    response = client.post(f"{self.url}/model/methods/classify", json=IRIS_SAMPLE)
                    if response.status_code != 200 or response.json() != {"species": 0}:
                        self.failures.append(response.text)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.latencies.append(time.perf_counter() - started)
                time.sleep(0.01)


KINDS = {  # kind: (count, opening bytes, trickled bytes, deadline, answer expected)
    "connect-and-say-nothing": (100, b"", b"", HEADER_TIMEOUT, None),
    "partial-headers": (200, PARTIAL_HEADERS, b"", HEADER_TIMEOUT, b"408 Request Timeout"),
    "headers-a-byte-at-a-time": (50, b"POST /model/methods/classify HTTP/1.1\r\n", b"X", HEADER_TIMEOUT,
                                 b"408 Request Timeout"),
    "second-request-unfinished": (50, KEPT_ALIVE, b"", HEADER_TIMEOUT, b"408 Request Timeout"),
    "unfinished-body": (200, UNFINISHED_BODY, b"", BODY_TIMEOUT, b"408 Request Timeout"),
    "body-a-byte-at-a-time": (50, UNFINISHED_BODY, b"1", BODY_TIMEOUT, b"408 Request Timeout"),
}


def test_it_closes_slow_connections_at_their_deadlines_and_keeps_answering(iris, start_runner):
    runner = start_runner(iris, env=SLOW_ENV)
    prober = Prober(runner.url)
    prober.start()
    time.sleep(0.5)
    try:
        clients = [SlowClient(runner.port, kind, opening, trickle)
                   for kind, (count, opening, trickle, _, _) in KINDS.items() for _ in range(count)]
        hold(clients, BODY_TIMEOUT + 2 * MARGIN + 2)
    finally:
        prober.stop.set()
        prober.join(timeout=15)
    report = {}
    for kind, (count, _, _, deadline, answer) in KINDS.items():
        mine = [c for c in clients if c.kind == kind]
        closed = [c.closed_after for c in mine if c.closed_after is not None]
        report[kind] = {"closed": f"{len(closed)}/{count}",
                        "after_s": (round(min(closed), 2), round(max(closed), 2)) if closed else None}
        assert len(closed) == count, (kind, report[kind])
        assert deadline - 0.2 <= min(closed) and max(closed) <= deadline + MARGIN, (kind, report[kind])
        for client in mine:
            if answer is None:
                assert client.received == b"", client.received
            else:
                assert answer in client.received, (kind, client.received[:300])
                assert client.received.count(b"HTTP/1.1 408") == 1
        for client in mine:
            client.sock.close()
    latencies = sorted(prober.latencies)
    p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98] * 1000
    print(f"\nslowloris: {report}; predictions meanwhile: {len(latencies)}, "
          f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99:.1f} ms")
    assert prober.failures == []
    assert len(latencies) >= 30
    assert max(latencies) < HEADER_TIMEOUT  # none waited for a slow client's deadline


def test_a_big_upload_that_keeps_moving_is_not_cut_by_the_body_deadline(iris, start_runner):
    """A body sent at 4 times the minimum rate, for more than twice the body deadline, is read whole."""
    runner = start_runner(iris, env={**SLOW_ENV, "RUNNER_BODY_TIMEOUT": "1"})
    body = json.dumps(IRIS_SAMPLE).encode() + b" " * (160 << 10)
    rate = 4 * MIN_RATE
    chunk = rate // 10

    def trickled():
        for start in range(0, len(body), chunk):
            time.sleep(0.1)
            yield body[start:start + chunk]

    started = time.monotonic()
    response = httpx.post(f"{runner.url}/model/methods/classify", content=trickled(), timeout=30,
                          headers={"content-type": "application/json", "content-length": str(len(body))})
    took = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json() == {"species": 0}
    assert took > 2.2  # longer than the 1 s deadline alone would allow


@pytest.mark.parametrize(("name", "value", "message"), [
    ("RUNNER_HEADER_TIMEOUT", "0", "RUNNER_HEADER_TIMEOUT must be above 0, got 0.0"),
    ("RUNNER_BODY_TIMEOUT", "soon", "RUNNER_BODY_TIMEOUT must be a number, got 'soon'"),
    ("RUNNER_BODY_MIN_RATE", "-5", "RUNNER_BODY_MIN_RATE must be above 0, got -5"),
])
def test_it_refuses_a_deadline_setting_that_makes_no_sense(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=message):
        HttpLimits.from_env()


def test_its_deadlines_default_to_10_s_for_headers_and_30_s_for_a_body(monkeypatch):
    for name in ("RUNNER_HEADER_TIMEOUT", "RUNNER_BODY_TIMEOUT", "RUNNER_BODY_MIN_RATE", "RUNNER_LIMIT_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    assert HttpLimits.from_env() == HttpLimits(header_timeout=10.0, body_timeout=30.0, body_min_rate=16384,
                                               limit_concurrency=None)
