"""deployment.runner_client talks to a runner, which runs a stranger's code: a redirect is not followed
(the portal would fetch an address the model chose and show the answer), an answer that is not JSON or
too large is an error, not a crash. Against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deployment import runner_client


class Hostile(BaseHTTPRequestHandler):
    answers: dict = {}

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, body = self.answers[self.path]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def test_a_redirect_is_refused_not_followed(server):
    secret = b'{"internal": "only reachable from the portal host"}'
    Hostile.answers = {"/model/methods/go": (307, {"Location": f"{server}/secret"}, b""),
                       "/secret": (200, {"Content-Type": "application/json"}, secret)}
    with pytest.raises(runner_client.RunnerError) as caught:
        runner_client.call_method(server, "go", {"x": 1})
    assert "redirect" in str(caught.value) and "internal" not in str(caught.value)
    assert caught.value.status == 307


def test_an_answer_that_is_not_json_or_too_large_is_an_error(server):
    Hostile.answers = {"/model/methods/text": (200, {}, b"<html>hello</html>"),
                       "/model/methods/big": (200, {}, b"[" + b"1," * (runner_client.ANSWER_LIMIT // 2) + b"1]"),
                       "/model/methods/deep": (200, {}, b"[" * 100_000 + b"]" * 100_000)}
    for method, said in (("text", "not JSON"), ("big", "larger than"), ("deep", "not JSON")):
        with pytest.raises(runner_client.RunnerError) as caught:
            runner_client.call_method(server, method, {})
        assert said in str(caught.value)


def test_a_refusal_says_the_runners_own_words(server):
    Hostile.answers = {"/model/methods/bad": (
        400, {}, json.dumps({"error": {"code": "bad_input", "message": "field 'x' is not a number"}}).encode())}
    with pytest.raises(runner_client.RunnerError) as caught:
        runner_client.call_method(server, "bad", {})
    assert str(caught.value) == "the runner refused: field 'x' is not a number" and caught.value.status == 400


class Trickle(BaseHTTPRequestHandler):
    """A model that answers one byte at a time: each read is quick, the whole answer never ends."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        for _ in range(100):
            try:
                self.wfile.write(b" ")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.1)

    def log_message(self, *args):
        pass


def test_an_answer_that_trickles_is_cut_at_the_whole_timeout_not_each_read():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        with pytest.raises(runner_client.RunnerError) as caught:
            runner_client.call_method(f"http://127.0.0.1:{httpd.server_port}", "slow", {}, timeout=1)
        assert time.monotonic() - started < 3 and "in time" in str(caught.value)
        assert caught.value.status is None  # said to a consumer as "did not answer"
    finally:
        httpd.shutdown()
        httpd.server_close()


class Stall(BaseHTTPRequestHandler):
    """Headers, a few bytes, then nothing: the read times out."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b"{")
        self.wfile.flush()
        time.sleep(3)

    def log_message(self, *args):
        pass


def test_an_answer_that_stalls_is_an_error_not_a_crash():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Stall)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(runner_client.RunnerError) as caught:
            runner_client.call_method(f"http://127.0.0.1:{httpd.server_port}", "stall", {}, timeout=1)
        assert caught.value.status is None
    finally:
        httpd.shutdown()
        httpd.server_close()
