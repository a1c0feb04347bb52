"""Who may change the runner: every endpoint that changes it wants the admin token as a Bearer token,
refuses everything without a configured token, and leaves the runner as it was when it refuses.
Read-only endpoints answer without a token."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import tempfile

import httpx
import pytest

from runner_image.settings import token_sha256, weak_token_reason

from .builders import IRIS_SAMPLE
from .conftest import TOKEN, free_port

CSV = b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n"
JSON_SAMPLE = json.dumps(IRIS_SAMPLE).encode()
TENSORS = [{"name": name, "datatype": "FP64", "shape": [1], "data": [value]} for name, value in IRIS_SAMPLE.items()]


def admin_request(endpoint: str, iris, scale_a) -> tuple[str, str, dict]:
    """A request to `endpoint` that the runner accepts when the token is right."""
    package = ("modelpackage.zip", (scale_a / "modelpackage.zip").read_bytes())
    proto = ("model.proto", (scale_a / "model.proto").read_bytes())
    scale_json = {"accept": "application/json"}
    return {
        "PUT /model": ("PUT", "/model", {"files": {"model": package, "proto": proto}}),
        "PUT /proto": ("PUT", "/proto", {"files": {"proto": ("model.proto", (iris / "model.proto").read_bytes()
                                                             + b"// a comment makes it a new proto\n")}}),
        "PUT /model/configuration": ("PUT", "/model/configuration", {"json": {"methods": {}, "params": {"k": 1}}}),
        "POST /model/rollback": ("POST", "/model/rollback", {}),
        "POST /transformCSV": ("POST", "/transformCSV", {
            "files": {"model": package, "proto": proto, "csvFile": ("data.csv", b"x\n1.5\n")}, "headers": scale_json}),
        "POST /transformJSON": ("POST", "/transformJSON", {
            "files": {"model": package, "proto": proto, "jsonFile": ("data.json", b'{"x": 1.5}')},
            "headers": scale_json}),
    }[endpoint]


ADMIN_ENDPOINTS = ["PUT /model", "PUT /proto", "PUT /model/configuration", "POST /model/rollback",
                   "POST /transformCSV", "POST /transformJSON"]
# What each answers with the right token on a fresh runner (rollback: nothing to roll back to yet).
ACCEPTED = {"PUT /model": 200, "PUT /proto": 200, "PUT /model/configuration": 200, "POST /model/rollback": 409,
            "POST /transformCSV": 200, "POST /transformJSON": 200}
TRANSFORMED = {"tag": "A", "y": 3.0}

WRONG_CREDENTIALS = {
    "no-authorization": None,
    "wrong-token": f"Bearer not-{TOKEN}",
    "basic-scheme": f"Basic {base64.b64encode(f'admin:{TOKEN}'.encode()).decode()}",
    "basic-scheme-bare-token": f"Basic {TOKEN}",
    "token-without-scheme": TOKEN,
    "bearer-without-token": "Bearer",
    "token-prefix": f"Bearer {TOKEN[:-1]}",
    "token-with-suffix": f"Bearer {TOKEN}x",
    "token-in-another-header": "X-Admin-Token",
}


def runner_state(client) -> dict:
    state = client.app.state.runtime.state
    return {"active": client.get("/model").json()["active"], "history": len(state.history()),
            "generations": sorted(p.name for p in state.generations.iterdir())}


def send(client, endpoint: str, iris, scale_a, authorization: str | None):
    method, path, kwargs = admin_request(endpoint, iris, scale_a)
    headers = dict(kwargs.pop("headers", {}))
    if authorization == "X-Admin-Token":
        headers["X-Admin-Token"] = TOKEN
    elif authorization is not None:
        headers["Authorization"] = authorization
    return client.request(method, path, headers=headers, **kwargs)


def assert_iris_answers(client) -> None:
    response = client.post("/model/methods/classify", json=IRIS_SAMPLE)
    assert response.status_code == 200, response.text
    assert response.json() == {"species": 0}


@pytest.mark.parametrize("credentials", list(WRONG_CREDENTIALS))
@pytest.mark.parametrize("endpoint", ADMIN_ENDPOINTS)
def test_it_refuses_a_change_without_the_right_token(iris, scale_a, make_client, endpoint, credentials):
    with make_client(iris) as client:
        before = runner_state(client)
        response = send(client, endpoint, iris, scale_a, WRONG_CREDENTIALS[credentials])
        assert response.status_code == 401, response.text
        error = response.json()["error"]
        assert error["code"] == "unauthorized"
        assert "Bearer" in error["message"] or "token is wrong" in error["message"]
        assert TOKEN not in response.text
        assert runner_state(client) == before
        assert_iris_answers(client)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
@pytest.mark.parametrize("endpoint", ADMIN_ENDPOINTS)
def test_it_accepts_a_change_with_the_right_token(iris, scale_a, make_client, endpoint, scheme):
    with make_client(iris) as client:
        before = runner_state(client)
        response = send(client, endpoint, iris, scale_a, f"{scheme} {TOKEN}")
        assert response.status_code not in (401, 403), response.text
        assert response.status_code == ACCEPTED[endpoint], response.text
        after = client.get("/model").json()["active"]
        if ACCEPTED[endpoint] == 200:
            assert after["generation"] == before["active"]["generation"] + 1
        else:
            assert after == before["active"]
        if endpoint.startswith("POST /transform"):
            assert response.json() == TRANSFORMED


@pytest.mark.parametrize("authorization", [None, f"Bearer {TOKEN}"])
@pytest.mark.parametrize("endpoint", ADMIN_ENDPOINTS)
def test_it_refuses_every_change_when_started_without_a_token(iris, scale_a, make_client, endpoint, authorization):
    with make_client(iris, token="") as client:
        before = runner_state(client)
        response = send(client, endpoint, iris, scale_a, authorization)
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert error["code"] == "forbidden"
        assert "changes are disabled" in error["message"]
        assert runner_state(client) == before
        assert_iris_answers(client)


@pytest.mark.parametrize("endpoint", ADMIN_ENDPOINTS)
def test_it_checks_the_token_before_reading_the_body(iris, make_client, endpoint):
    """No token, and a body that is too big and not what the endpoint takes: still a plain 401."""
    method, path = endpoint.split(" ")
    with make_client(iris, max_upload_bytes=64) as client:
        before = runner_state(client)
        response = client.request(method, path, content=b"\x00not a form\xff" * 64,
                                  headers={"content-type": "text/plain"})
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
        assert runner_state(client) == before


def _binary_holds_sample(response) -> bool:
    """The serialized ClassifyIn: each double of the sample is in it, little-endian."""
    return (response.headers["content-type"] == "application/octet-stream"
            and all(struct.pack("<d", value) in response.content for value in IRIS_SAMPLE.values()))


READ_ONLY = {
    "POST /model/methods/classify": ({"json": IRIS_SAMPLE}, lambda r: r.json() == {"species": 0}),
    "GET /model/artifacts/metadata": ({}, lambda r: r.json()["name"] == "IrisClassifier"),
    "GET /model/artifacts/protobuf": ({}, lambda r: "rpc classify" in r.text),
    "GET /model": ({}, lambda r: r.json()["active"]["generation"] == 1),
    "POST /getBinary": ({"files": {"csvFile": ("d.csv", CSV), "proto": "{proto}"}}, _binary_holds_sample),
    "POST /getBinaryDefault": ({"files": {"csvFile": ("d.csv", CSV)}}, _binary_holds_sample),
    "POST /getBinaryJSON": ({"files": {"jsonFile": ("d.json", JSON_SAMPLE), "proto": "{proto}"}},
                            _binary_holds_sample),
    "POST /getBinaryJSONDefault": ({"files": {"jsonFile": ("d.json", JSON_SAMPLE)}}, _binary_holds_sample),
    "POST /transformCSVDefault": ({"files": {"csvFile": ("d.csv", CSV)}, "headers": {"accept": "application/json"}},
                                  lambda r: r.json() == {"species": 0}),
    "POST /transformJSONDefault": ({"files": {"jsonFile": ("d.json", JSON_SAMPLE)},
                                    "headers": {"accept": "application/json"}}, lambda r: r.json() == {"species": 0}),
    "GET /v2": ({}, lambda r: r.json()["name"] == "acumos-runner"),
    "GET /v2/health/live": ({}, lambda r: r.json() == {"live": True}),
    "GET /v2/health/ready": ({}, lambda r: r.json() == {"ready": True}),
    "GET /v2/models/IrisClassifier": ({}, lambda r: r.json()["name"] == "IrisClassifier"),
    "GET /v2/models/IrisClassifier/ready": ({}, lambda r: r.json()["ready"] is True),
    "POST /v2/models/IrisClassifier/infer": ({"json": {"inputs": TENSORS}},
                                             lambda r: r.json()["outputs"][0]["data"] == [0]),
    "GET /metrics": ({}, lambda r: "# TYPE" in r.text),
    "GET /openapi.json": ({}, lambda r: "/model/methods/classify" in r.json()["paths"]),
    "GET /docs": ({}, lambda r: "<html" in r.text.lower()),
}


@pytest.mark.parametrize("token", [TOKEN, ""], ids=["token-set", "no-token"])
@pytest.mark.parametrize("endpoint", list(READ_ONLY))
def test_it_serves_read_only_endpoints_without_a_token(iris, make_client, endpoint, token):
    kwargs, answered = READ_ONLY[endpoint]
    files = {name: ("model.proto", (iris / "model.proto").read_bytes()) if part == "{proto}" else part
             for name, part in kwargs.get("files", {}).items()}
    kwargs = {**kwargs, **({"files": files} if files else {})}
    method, path = endpoint.split(" ")
    with make_client(iris, token=token) as client:
        before = runner_state(client)
        response = client.request(method, path, **kwargs)
        assert response.status_code == 200, response.text
        assert answered(response), response.content
        assert runner_state(client) == before


@pytest.mark.parametrize("path", ["/getBinary", "/getBinaryJSON"])
@pytest.mark.parametrize("target", ["/etc/passwd", "../../../../../../etc/passwd"])
def test_it_lets_no_request_proto_import_files_from_the_runner(iris, make_client, path, target):
    proto = (f'syntax = "proto3";\nimport "{target}";\nmessage In {{ double x = 1; }}\n'
             "service Model { rpc classify (In) returns (In); }\n").encode()
    part = ("csvFile", ("d.csv", b"x\n1.5\n")) if path == "/getBinary" else ("jsonFile", ("d.json", b'{"x": 1.5}'))
    with make_client(iris) as client:
        response = client.post(path, files={"proto": ("model.proto", proto), part[0]: part[1]})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_proto"
        assert f'Import "{target}" was not found' in error["message"]
        assert "root:" not in response.text
        assert_iris_answers(client)


def test_it_ignores_the_file_names_of_uploaded_parts(iris, scale_a, tmp_path, make_client, monkeypatch):
    spool = tmp_path / "spool" / "deep"
    spool.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    files = {"model": ("../../../evil.zip", (scale_a / "modelpackage.zip").read_bytes()),
             "proto": ("/tmp/../../evil.proto", (scale_a / "model.proto").read_bytes())}
    with make_client(iris) as client:
        response = client.put("/model", headers={"Authorization": f"Bearer {TOKEN}"}, files=files)
        assert response.status_code == 200, response.text
        assert client.post("/model/methods/scale", json={"x": 1.5}).json() == TRANSFORMED
    assert not list(tmp_path.rglob("evil.*"))
    assert list(spool.iterdir()) == []


def test_it_refuses_a_swap_on_a_real_process_started_without_a_token(scale_a, scale_b, start_runner):
    runner = start_runner(scale_a, token=None)
    files = {"model": ("modelpackage.zip", (scale_b / "modelpackage.zip").read_bytes()),
             "proto": ("model.proto", (scale_b / "model.proto").read_bytes())}
    for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
        response = httpx.put(f"{runner.url}/model", files=files, headers=headers, timeout=30)
        assert response.status_code == 403, response.text
        assert "changes are disabled" in response.json()["error"]["message"]
    answer = httpx.post(f"{runner.url}/model/methods/scale", json={"x": 1.5}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == TRANSFORMED
    model = httpx.get(f"{runner.url}/model", timeout=30).json()
    assert model["active"]["generation"] == 1
    assert [entry["action"] for entry in model["history"]] == ["start"]


WEAK_TOKENS = {
    "one-character": ("x", "it has 1 characters"),
    "the-old-make-default": ("dev-admin-token", "it has 15 characters"),
    "one-repeated-character": ("a" * 40, "it uses only 1 different characters"),
    "two-characters-repeated": ("ab" * 16, "it uses only 2 different characters"),
}


@pytest.mark.parametrize("weak", list(WEAK_TOKENS))
def test_a_runner_refuses_to_start_with_a_weak_admin_token(iris, tmp_path, weak):
    token, reason = WEAK_TOKENS[weak]
    port = free_port()
    environ = {**os.environ, "RUNNER_ADMIN_TOKEN": token}
    environ.pop("RUNNER_ADMIN_TOKEN_SHA256", None)
    command = [sys.executable, "-m", "runner_image", "serve", str(iris), "--port", str(port),
               "--state-dir", str(tmp_path / "state")]
    result = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stderr
    assert (f"RUNNER_ADMIN_TOKEN is too weak: {reason}. The runner needs at least 24 characters, 8 or more of "
            "them different; make one with: python3 -c \"import secrets; print(secrets.token_urlsafe(32))\""
            ) in result.stderr
    if len(token) > 8:
        assert token not in result.stderr  # the message does not repeat the token
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/model", timeout=2)


@pytest.mark.parametrize("token", [TOKEN, "q3J9_xV2mT8rLw0cZk5N-fHa1YbPeUo7sDgRi4Ej6Q", "9f86d081884c7d659a2feaa0"])
def test_strong_tokens_pass_the_check(token):
    assert weak_token_reason(token) is None


def test_a_token_hash_is_trusted_as_given(iris, start_runner):
    """RUNNER_ADMIN_TOKEN_SHA256 cannot be checked for strength; the portal gives it for tokens it makes
    with secrets.token_urlsafe(32). A hash of a weak token is still accepted (and documented so)."""
    runner = start_runner(iris, token=None, env={"RUNNER_ADMIN_TOKEN_SHA256": token_sha256("short")})
    response = httpx.post(f"{runner.url}/model/rollback", headers={"Authorization": "Bearer short"}, timeout=30)
    assert response.status_code == 409, response.text  # past the token check: nothing to roll back to
