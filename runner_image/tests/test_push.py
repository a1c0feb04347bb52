"""The push client on its own (no Django): the multipart it sends, how it follows a job, and how it
reports each way of failing. A small fake portal stands in; tests/onboarding/test_push.py pushes
to the real one."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runner_image.cli import main
from runner_image.push import MultipartBody, PushError, bundle_parts, portal_root, server_message

TASK = "7d0b1c52-3a57-4b53-9a0e-0c4c8e1b9a11"
PUSHED = {"status": "SUCCESS", "taskId": TASK, "trackingId": "t-1",
          "result": {"solutionId": "s-1", "revisionId": "r-1", "version": "1.0.0", "name": "Scaler"}}


def job(status: str, *steps: tuple[str, str, str | None]) -> dict:
    return {"id": TASK, "status": status, "revision": "r-1" if status == "succeeded" else None,
            "steps": [{"name": n, "status": s, "error": e, "started": None, "finished": None} for n, s, e in steps]}


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "metadata.json").write_text('{"name": "Scaler"}')
    (tmp_path / "model.proto").write_text('syntax = "proto3";')
    (tmp_path / "modelpackage.zip").write_bytes(bytes(range(256)) * 5000)  # > one read chunk
    return tmp_path


@contextmanager
def fake_portal(push_answer: tuple[int, dict], job_answers: list[tuple[int, dict]]):
    """Answers the push with `push_answer`, then each job poll with the next of `job_answers`."""
    seen: list[dict] = []
    polls = iter(job_answers)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, status: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append({"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body})
            self._answer(*push_answer)

        def do_GET(self):
            seen.append({"method": "GET", "path": self.path, "headers": dict(self.headers)})
            self._answer(*next(polls))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str, str, bytes]]:
    message = BytesParser(policy=default_policy).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    return {part.get_param("name", header="content-disposition"): (part.get_filename(), part.get_content_type(),
                                                                   part.get_payload(decode=True))
            for part in message.iter_parts()}


def test_it_streams_the_parts_as_the_acumos_client_names_them(bundle):
    (bundle / "license.json").write_text("{}")
    body = MultipartBody(bundle_parts(bundle))
    raw = b"".join(body)
    assert len(raw) == body.length
    parts = parse_multipart(body.content_type, raw)
    assert parts == {
        "model": ("model.zip", "application/zip", (bundle / "modelpackage.zip").read_bytes()),
        "metadata": ("metadata.json", "application/json", b'{"name": "Scaler"}'),
        "schema": ("model.proto", "text/plain", b'syntax = "proto3";'),
        "license": ("license.json", "application/json", b"{}"),
    }


def test_it_pushes_and_follows_the_job_to_the_end(bundle, capsys):
    polls = [(200, job("running", ("validate_metadata", "succeeded", None), ("smoke_test", "running", None))),
             (503, {"error": {"message": "restarting"}}),
             (200, job("succeeded", ("validate_metadata", "succeeded", None), ("smoke_test", "succeeded", None)))]
    with fake_portal((201, PUSHED), polls) as (url, seen):
        code = main(["push", str(bundle), "--url", url + "/", "--token", "me:acu_key", "--interval", "0.01"])
    out = capsys.readouterr().out
    assert code == 0, out
    post = seen[0]
    assert post["path"] == "/onboarding-app/v2/models"
    assert post["headers"]["Authorization"] == "me:acu_key"
    assert post["headers"]["Iscreatemicroservice"] == "true"
    assert int(post["headers"]["Content-Length"]) == len(post["body"])
    assert set(parse_multipart(post["headers"]["Content-Type"], post["body"])) == {"model", "metadata", "schema"}
    assert [s["path"] for s in seen[1:]] == [f"/api/v1/onboarding/jobs/{TASK}"] * 3
    assert all(s["headers"]["Authorization"] == "me:acu_key" for s in seen[1:])
    assert out.count("validate_metadata") == 1 and out.count("smoke_test") == 1
    assert out.index("validate_metadata") < out.index("smoke_test")
    for value in ("solutionId: s-1", "revisionId: r-1", f"taskId:     {TASK}", "is ready (revision r-1)"):
        assert value in out


def test_it_exits_1_with_the_failing_steps_error(bundle, capsys):
    failed = job("failed", ("validate_metadata", "succeeded", None), ("smoke_test", "failed", "it broke"),
                 ("mark_ready", "skipped", None))
    with fake_portal((201, PUSHED), [(200, failed)]) as (url, _):
        code = main(["push", str(bundle), "--url", url, "--token", "t", "--interval", "0.01"])
    captured = capsys.readouterr()
    assert code == 1
    assert "failed at step smoke_test: it broke" in captured.err


@pytest.mark.parametrize(("status", "answer", "needle"), [
    pytest.param(400, {"status": "ERROR", "errorCode": "INVALID_PARAMETER", "errorMessage": "bad proto",
                       "errors": [{"field": "model.proto", "message": "line 3: syntax error"}]},
                 "answered 400: bad proto\n  model.proto: line 3: syntax error", id="acumos-envelope"),
    pytest.param(413, {"status": "ERROR", "errorCode": "PAYLOAD_TOO_LARGE", "errorMessage": "too large", "errors": []},
                 "answered 413: too large", id="too-large"),
    pytest.param(401, {"error": {"code": "x", "message": "who are you", "details": {}}}, "answered 401: who are you",
                 id="api-error-shape"),
])
def test_it_exits_2_with_the_servers_message(bundle, capsys, status, answer, needle):
    with fake_portal((status, answer), []) as (url, _):
        code = main(["push", str(bundle), "--url", url, "--token", "t"])
    assert code == 2
    assert needle in capsys.readouterr().err


def test_it_exits_2_when_the_portal_cannot_be_reached(bundle, capsys):
    with fake_portal((201, PUSHED), []) as (url, _):
        pass  # closed again: nothing listens there now
    assert main(["push", str(bundle), "--url", url, "--token", "t"]) == 2
    assert "cannot reach" in capsys.readouterr().err


def test_it_exits_2_without_a_token(bundle, capsys, monkeypatch):
    for name in ("ACUMOS_TOKEN", "ACUMOS_USERNAME", "ACUMOS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert main(["push", str(bundle), "--url", "http://127.0.0.1:9"]) == 2
    assert "no token" in capsys.readouterr().err


def test_it_exits_2_on_bad_usage(bundle, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["push", str(bundle)])
    assert stopped.value.code == 2
    assert main(["push", str(bundle), "--url", "ftp://portal", "--token", "t"]) == 2
    assert "--url must be the portal's http(s) address" in capsys.readouterr().err


@pytest.mark.parametrize(("url", "root"), [
    ("http://portal:8000", "http://portal:8000"),
    ("http://portal:8000/", "http://portal:8000"),
    ("https://site/acumos/onboarding-app/v2/models", "https://site/acumos"),
    ("https://site/onboarding-app/v2/", "https://site"),
])
def test_it_accepts_the_portal_or_its_push_url(url, root):
    assert portal_root(url) == root


def test_it_reads_both_error_shapes_and_plain_text():
    assert server_message(b'{"error": {"message": "nope"}}') == "nope"
    assert server_message(b'{"status": "ERROR", "errorMessage": "bad", "errors": []}') == "bad"
    assert server_message(b"<html>Bad Gateway</html>") == "<html>Bad Gateway</html>"


def test_it_names_the_missing_bundle_files(tmp_path):
    (tmp_path / "model.proto").write_text("")
    with pytest.raises(PushError, match="lacks modelpackage.zip or model.zip, metadata.json"):
        bundle_parts(tmp_path)


@pytest.mark.parametrize(("option", "sent"), [(["--version", "2.1.0"], "2.1.0"), (["--next-version"], None)])
def test_it_sends_the_version_asked_for_and_leaves_the_bundle_alone(bundle, capsys, option, sent):
    (bundle / "metadata.json").write_text('{"name": "Scaler", "modelVersion": "1.0.0"}')
    with fake_portal((201, PUSHED), []) as (url, seen):
        assert main(["push", str(bundle), "--url", url, "--token", "t", "--no-wait", *option]) == 0
    request = seen[0]
    parts = parse_multipart(request["headers"]["Content-Type"], request["body"])
    metadata = json.loads(parts["metadata"][2])
    assert metadata.get("modelVersion") == sent and metadata["name"] == "Scaler"
    assert json.loads((bundle / "metadata.json").read_text())["modelVersion"] == "1.0.0"


def test_it_refuses_an_empty_version_and_both_version_options(bundle, capsys):
    assert main(["push", str(bundle), "--url", "http://127.0.0.1:9", "--token", "t", "--version", " "]) == 2
    assert "--version is empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["push", str(bundle), "--url", "http://127.0.0.1:9", "--version", "1", "--next-version"])
