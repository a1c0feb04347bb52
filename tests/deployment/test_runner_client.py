"""deployment.runner_client talks to a runner, which runs a stranger's code: a redirect is not followed
(the portal would fetch an address the model chose and show the answer), an answer that is not JSON or
too large is an error, not a crash. Against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import threading
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
