"""Bad input of every kind is refused with a status and a message that names the problem, and the
runner keeps serving the model it had: same generation, same answers, nothing left on disk."""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
import zipfile
from pathlib import Path

import pytest

from . import builders
from .builders import IRIS_SAMPLE, IRIS_VIRGINICA
from .conftest import auth, error_of

PROTOBUF = "application/vnd.google.protobuf"
CSV_HEADER = b"sepal_length,sepal_width,petal_length,petal_width\n"
ROWS_SAMPLE = {key: [value] for key, value in IRIS_SAMPLE.items()}


# ---------------------------------------------------------------- helpers

@pytest.fixture(autouse=True)
def spool(tmp_path, monkeypatch) -> Path:
    """Upload and protoc temp files go here, so a test can check that nothing was left behind."""
    directory = tmp_path / "spool"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


@pytest.fixture(scope="module")
def iris_rows(tmp_path_factory) -> Path:
    """Iris with repeated fields: a CSV with several data lines fits it."""
    return builders.iris_bundle(tmp_path_factory.mktemp("iris-rows"), repeated=True)


@pytest.fixture(scope="module")
def scale_entries(scale_a) -> dict[str, bytes]:
    """The members of a good package (runner.json, model.pkl) to build bad ones from."""
    with zipfile.ZipFile(scale_a / "modelpackage.zip") as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def runner_state(client) -> dict:
    state = client.app.state.runtime.state
    return {"active": client.get("/model").json()["active"], "history": len(state.history()),
            "generations": sorted(p.name for p in state.generations.iterdir())}


def assert_still_serving(client, before: dict, spool: Path, method: str = "classify",
                         answers: tuple = ((IRIS_SAMPLE, {"species": 0}), (IRIS_VIRGINICA, {"species": 2}))) -> None:
    for request, answer in answers:
        response = client.post(f"/model/methods/{method}", json=request)
        assert response.status_code == 200, response.text
        assert response.json() == answer
    assert runner_state(client) == before  # same generation (and slot), no new history, no generation dir left
    assert list(spool.iterdir()) == []


def assert_error(response, status: int, code: str, *needles: str, details: dict | None = None) -> dict:
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == code
    for needle in needles:
        assert needle in error["message"], error["message"]
    for key, value in (details or {}).items():
        assert error["details"].get(key) == value, error["details"]
    return error


def put_package(client, package: bytes, scale_a: Path, **extra_files):
    files = {"model": ("modelpackage.zip", package), "proto": ("model.proto", (scale_a / "model.proto").read_bytes()),
             **extra_files}
    return client.put("/model", headers=auth(), files=files)


def _central_record(raw: bytes, entry: str) -> int:
    """Offset of `entry`'s record in the zip's central directory."""
    position = raw.find(b"PK\x01\x02")
    while position >= 0:
        name_length = int.from_bytes(raw[position + 28:position + 30], "little")
        if raw[position + 46:position + 46 + name_length] == entry.encode():
            return position
        position = raw.find(b"PK\x01\x02", position + 46 + name_length)
    raise AssertionError(f"{entry} is not in the zip")


def tampered(package: bytes, entry: str, offset: int, size: int, value: int) -> bytes:
    """Overwrite one field of an entry's central-directory record (flags 8, method 10, crc 16, size 24)."""
    raw = bytearray(package)
    position = _central_record(bytes(raw), entry) + offset
    raw[position:position + size] = value.to_bytes(size, "little")
    return bytes(raw)


# ---------------------------------------------------------------- predict

PREDICT_CASES = [
    pytest.param({"content-type": "text/plain"}, b"5.1,3.5,1.4,0.2", 415, "unsupported_media_type",
                 ["text/plain", "application/json"], {}, id="wrong-content-type"),
    pytest.param({}, b"", 415, "unsupported_media_type", ["(none)"], {}, id="no-content-type"),
    pytest.param({"content-type": "application/json", "accept": "text/csv"}, json.dumps(IRIS_SAMPLE).encode(), 406,
                 "not_acceptable", ["text/csv"], {}, id="accept-csv"),
    pytest.param({"content-type": "application/json"}, b'{"sepal_length": 5.1,', 400, "bad_request",
                 ["not valid JSON"], {}, id="malformed-json"),
    pytest.param({"content-type": "application/json"}, b"\xff\xfe{}", 400, "bad_request",
                 ["not valid JSON"], {}, id="json-not-utf8"),
    pytest.param({"content-type": "application/json"}, b"[5.1, 3.5, 1.4, 0.2]", 400, "bad_request",
                 ["must be a JSON object", "ClassifyIn"], {}, id="json-array"),
    pytest.param({"content-type": "application/json"}, json.dumps({**IRIS_SAMPLE, "colour": "red"}).encode(), 400,
                 "bad_request", ["'colour'", "sepal_length"], {"field": "colour"}, id="unknown-field"),
    pytest.param({"content-type": "application/json"}, json.dumps({**IRIS_SAMPLE, "sepal_width": "wide"}).encode(),
                 400, "bad_request", ["'sepal_width'", "'wide' is not a number"],
                 {"field": "sepal_width", "expected": "double"}, id="string-for-double"),
    pytest.param({"content-type": "application/json"}, json.dumps({**IRIS_SAMPLE, "petal_width": [0.2]}).encode(),
                 400, "bad_request", ["'petal_width'", "an array"], {"field": "petal_width"}, id="array-for-double"),
    pytest.param({"content-type": "application/json"}, json.dumps({**IRIS_SAMPLE, "petal_length": True}).encode(),
                 400, "bad_request", ["'petal_length'", "a boolean"], {"field": "petal_length"}, id="bool-for-double"),
    pytest.param({"content-type": "application/json"}, b'{"sepal_length": 1e999, "sepal_width": 3.5, '
                 b'"petal_length": 1.4, "petal_width": 0.2}', 400, "bad_request",
                 ["'sepal_length'", "out of range", '"Infinity"'], {"field": "sepal_length"}, id="overflowing-number"),
    pytest.param({"content-type": "application/json"}, b'{"sepal_length": 5.1, "sepal_width": -Infinity, '
                 b'"petal_length": 1.4, "petal_width": 0.2}', 400, "bad_request",
                 ["'sepal_width'", "out of range"], {"field": "sepal_width"}, id="bare-infinity"),
    pytest.param({"content-type": PROTOBUF}, b"\xff\xff\xff\xff", 400, "bad_request",
                 ["not a valid protobuf ClassifyIn message"], {}, id="malformed-protobuf"),
    pytest.param({"content-type": PROTOBUF}, b"\x09\x00\x00", 400, "bad_request",
                 ["not a valid protobuf ClassifyIn message"], {}, id="truncated-protobuf"),
]


@pytest.mark.parametrize(("headers", "body", "status", "code", "needles", "details"), PREDICT_CASES)
def test_it_refuses_a_predict_body_it_cannot_read(iris, make_client, spool, *, headers, body, status, code, needles,
                                                  details):
    with make_client(iris) as client:
        before = runner_state(client)
        response = client.post("/model/methods/classify", content=body, headers=headers)
        assert_error(response, status, code, *needles, details=details)
        assert_still_serving(client, before, spool)


def test_it_answers_404_naming_an_unknown_method(iris, make_client, spool):
    with make_client(iris) as client:
        before = runner_state(client)
        response = client.post("/model/methods/clasify", json=IRIS_SAMPLE)
        assert_error(response, 404, "not_found", "'clasify'", "classify",
                     details={"method": "clasify", "methods": ["classify"]})
        assert_still_serving(client, before, spool)


def test_it_keeps_serving_after_the_model_raises(tmp_path, make_client, spool):
    with make_client(builders.failing_bundle(tmp_path / "failing")) as client:
        before = runner_state(client)
        response = client.post("/model/methods/scale", json={"x": -1.0})
        error = assert_error(response, 500, "prediction_failed", "negative input is not supported", "'scale'")
        error_id = error["details"]["error_id"]
        assert re.fullmatch(r"[0-9a-f]{12}", error_id)
        assert f"error id {error_id}" in error["message"]
        assert_still_serving(client, before, spool, method="scale",
                             answers=(({"x": 2.0}, {"tag": "failing", "y": 2.0}),))


# ---------------------------------------------------------------- CSV and JSON data files

DATA_CASES = [
    pytest.param("/transformCSVDefault", "csvFile", CSV_HEADER + b"5.1,3.5,1.4,0.2\n6.7,abc,5.2,2.3\n",
                 ["line 3", "column 'sepal_width'", "'abc' is not a number"], {"line": 3, "field": "sepal_width"},
                 id="transform-csv-bad-number"),
    pytest.param("/getBinaryDefault", "csvFile", CSV_HEADER + b"5.1,3.5,1.4,0.2\n6.7,abc,5.2,2.3\n",
                 ["line 3", "column 'sepal_width'", "'abc' is not a number"], {"line": 3, "field": "sepal_width"},
                 id="binary-csv-bad-number"),
    pytest.param("/getBinaryDefault", "csvFile", CSV_HEADER + b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2\n",
                 ["line 3"], {"line": 3}, id="binary-csv-short-line"),
    pytest.param("/transformCSVDefault", "csvFile", b"5.1,3.5,1.4\n", ["3 columns", "4 fields"], {},
                 id="transform-csv-too-few-columns"),
    pytest.param("/transformCSVDefault", "csvFile", b"sepal_length,sepal_width\n5.1,3.5\n",
                 ["lacks columns", "petal_length", "petal_width"], {"missing": ["petal_length", "petal_width"]},
                 id="transform-csv-header-lacks-columns"),
    pytest.param("/transformCSVDefault", "csvFile", b"\xff\xfe5.1,3.5,1.4,0.2\n", ["not UTF-8"], {},
                 id="transform-csv-not-utf8"),
    pytest.param("/getBinaryDefault", "csvFile", b"\n \n", ["no lines"], {}, id="binary-csv-empty"),
    pytest.param("/transformJSONDefault", "jsonFile", json.dumps({**ROWS_SAMPLE, "colour": ["red"]}).encode(),
                 ["'colour'"], {"field": "colour"}, id="transform-json-unknown-field"),
    pytest.param("/getBinaryJSONDefault", "jsonFile", json.dumps({**ROWS_SAMPLE, "sepal_width": 3.5}).encode(),
                 ["'sepal_width'", "JSON array"], {"field": "sepal_width"}, id="binary-json-scalar-for-repeated"),
    pytest.param("/getBinaryJSONDefault", "jsonFile", b"{nope", ["not valid JSON"], {}, id="binary-json-malformed"),
]


@pytest.mark.parametrize(("path", "part", "data", "needles", "details"), DATA_CASES)
def test_it_refuses_a_malformed_data_file_naming_where(iris_rows, make_client, spool, *, path, part, data, needles,
                                                       details):
    with make_client(iris_rows) as client:
        before = runner_state(client)
        response = client.post(path, files={part: ("data", data)})
        assert_error(response, 400, "bad_request", *needles, details=details)
        assert_still_serving(client, before, spool, answers=((ROWS_SAMPLE, {"species": [0]}),))


@pytest.mark.parametrize("path", ["/getBinaryDefault", "/transformCSVDefault", "/getBinary"])
@pytest.mark.parametrize("where", ["form", "query"])
def test_it_answers_404_naming_an_unknown_operation(iris, make_client, spool, path, where):
    with make_client(iris) as client:
        before = runner_state(client)
        files = {"csvFile": ("data.csv", CSV_HEADER + b"5.1,3.5,1.4,0.2\n")}
        if path == "/getBinary":
            files["proto"] = ("model.proto", (iris / "model.proto").read_bytes())
        form = {"operation": "clasify"} if where == "form" else None
        query = {"operation": "clasify"} if where == "query" else None
        response = client.post(path, files=files, data=form, params=query)
        assert_error(response, 404, "not_found", "'clasify'", "classify", details={"operation": "clasify"})
        assert_still_serving(client, before, spool)


# ---------------------------------------------------------------- PUT /proto

PROTO_CASES = [
    pytest.param(b'syntax = "proto3";\nservice Model {\n  rpc classify (ClassifyIn returns (ClassifyOut);\n}\n',
                 400, "invalid_proto", [r"model\.proto:3:\d+: Expected \"\)\""], id="does-not-compile"),
    pytest.param(b'syntax = "proto3";\nmessage A {\n  double x = 1\n}\n'
                 b"service Model { rpc classify (A) returns (A); }\n",
                 400, "invalid_proto", [r"model\.proto:4:\d+: Expected \";\""], id="missing-semicolon"),
    pytest.param(b'syntax = "proto3";\nmessage A { Missing x = 1; }\nservice Model { rpc classify (A) returns (A); }\n',
                 400, "invalid_proto", [r"model\.proto:2:\d+: \"Missing\" is not defined"], id="undefined-type"),
    pytest.param(b'syntax = "proto2";\nmessage A { optional double x = 1; }\n'
                 b"service Model { rpc classify (A) returns (A); }\n",
                 400, "invalid_proto", ["proto3", "'proto2'"], id="proto2"),
    pytest.param(b'syntax = "proto3";\nmessage A { double x = 1; }\n', 400, "invalid_proto", ["defines no service"],
                 id="no-service"),
    pytest.param(b"\xff\xfe syntax", 400, "invalid_proto", ["not UTF-8"], id="not-utf8"),
    pytest.param(b'syntax = "proto3";\nmessage A { double x = 1; }\nservice Model { rpc other (A) returns (A); }\n',
                 422, "model_rejected", ["'classify'", "other"], id="drops-the-served-method"),
]


@pytest.mark.parametrize(("proto", "status", "code", "patterns"), PROTO_CASES)
def test_it_refuses_a_proto_it_cannot_serve(iris, make_client, spool, *, proto, status, code, patterns):
    with make_client(iris) as client:
        before = runner_state(client)
        response = client.put("/proto", headers=auth(), files={"proto": ("model.proto", proto)})
        error = assert_error(response, status, code)
        for pattern in patterns:
            assert re.search(pattern, error["message"]), error["message"]
        if code == "invalid_proto" and "protoc" in error["details"]:
            assert error["details"]["protoc"] in error["message"]
        assert_still_serving(client, before, spool)


# ---------------------------------------------------------------- PUT /model: candidates that fail

def _failing_on_sample(tmp_path: Path, scale_entries) -> tuple[bytes, dict]:
    bundle = builders.failing_bundle(tmp_path / "failing", fail_on_sample=True)
    return (bundle / "modelpackage.zip").read_bytes(), {}


def _sample_that_does_not_fit(tmp_path: Path, scale_entries) -> tuple[bytes, dict]:
    return builders.zip_bytes(scale_entries), {"sample": ("sample.json", b'{"x": "two"}')}


def _model_that_does_not_load(tmp_path: Path, scale_entries) -> tuple[bytes, dict]:
    return builders.zip_bytes({**scale_entries, "model.pkl": b"this is not a pickle"}), {}


def _config_naming_a_missing_method(tmp_path: Path, scale_entries) -> tuple[bytes, dict]:
    config = json.dumps({"methods": {"rescale": {}}}).encode()
    return builders.zip_bytes(scale_entries), {"modelConfig": ("config.json", config)}


REJECTED_CASES = [
    pytest.param(_failing_on_sample, ["failed its sample", "'scale'", "negative input"], id="fails-its-sample"),
    pytest.param(_sample_that_does_not_fit, ["sample", "'x'"], id="request-sample-does-not-fit"),
    pytest.param(_model_that_does_not_load, ["failed to load"], id="model-does-not-load"),
    pytest.param(_config_naming_a_missing_method, ["'rescale'", "scale"], id="config-names-missing-method"),
]


@pytest.mark.parametrize(("make_candidate", "needles"), REJECTED_CASES)
def test_it_rejects_a_candidate_that_cannot_serve(iris, scale_a, scale_entries, tmp_path, make_client, *, spool,
                                                  make_candidate, needles):
    package, extra = make_candidate(tmp_path, scale_entries)
    with make_client(iris) as client:
        before = runner_state(client)
        response = put_package(client, package, scale_a, **extra)
        assert_error(response, 422, "model_rejected", *needles)
        assert_still_serving(client, before, spool)


# ---------------------------------------------------------------- PUT /model: unsafe or malformed packages

def _random_bytes(entries):
    return random.Random(0).randbytes(4096)


def _no_manifest(entries):
    return builders.zip_bytes({"model.pkl": entries["model.pkl"]})


def _manifest(text: bytes):
    return lambda entries: builders.zip_bytes({**entries, "runner.json": text})


def _with(extra: dict, symlinks: dict | None = None):
    return lambda entries: builders.zip_bytes({**entries, **extra}, symlinks)


def _tampered(entry: str, offset: int, size: int, value: int, extra: dict | None = None):
    return lambda entries: tampered(builders.zip_bytes({**entries, **(extra or {})}), entry, offset, size, value)


def _split_bomb(entries):
    return builders.zip_bytes({**entries, **{f"pad/{i:02d}.bin": bytes(1 << 20) for i in range(50)}})


PACKAGE_CASES = [
    pytest.param(_random_bytes, {}, ["not a readable zip archive"], {}, id="random-bytes"),
    pytest.param(_no_manifest, {}, ["no runner.json"], {}, id="no-runner-json"),
    pytest.param(_manifest(b'{"flavour": "python",'), {}, ["runner.json is not valid JSON"], {},
                 id="runner-json-invalid"),
    pytest.param(_manifest(b"[]"), {}, ["runner.json must be a JSON object"], {}, id="runner-json-array"),
    pytest.param(_manifest(b'{"flavour": "tensorflow", "model": "model.pkl"}'), {}, ["'flavour'", "'tensorflow'"],
                 {"field": "runner.json:flavour"}, id="unknown-flavour"),
    pytest.param(_manifest(b'{"flavour": "python", "model": "missing.pkl"}'), {}, ["'model'", "'missing.pkl'"],
                 {"field": "runner.json:model"}, id="model-file-missing"),
    pytest.param(_manifest(b'{"flavour": "python", "model": "../model.pkl"}'), {}, ["'model'", "'../model.pkl'"],
                 {"field": "runner.json:model"}, id="model-path-outside"),
    pytest.param(_manifest(b'{"flavour": "python", "model": "model.pkl", "serialization": "joblib"}'), {},
                 ["'serialization'", "'joblib'"], {"field": "runner.json:serialization"}, id="wrong-serialization"),
    pytest.param(_manifest(b'{"flavour": "python", "model": "model.pkl", "config": {"colour": 1}}'), {},
                 ["'config'", "colour"], {"field": "runner.json:config"}, id="config-unknown-key"),
    pytest.param(_manifest(b'{"flavour": "python", "model": "model.pkl", "samples": {"scale": 2}}'), {},
                 ["'samples'"], {"field": "runner.json:samples"}, id="sample-not-an-object"),
    pytest.param(_manifest(b'{"flavour": "python", "model": "model.pkl"}' + b" " * (2 << 20)), {},
                 ["runner.json is", "the limit is"], {"entry": "runner.json"}, id="runner-json-huge"),
    pytest.param(_with({}, {"model.pkl.link": "/etc/passwd"}), {}, ["'model.pkl.link'", "symbolic link"],
                 {"entry": "model.pkl.link"}, id="symlink-entry"),
    pytest.param(_with({"weights/a": b"x", "weights/a/b": b"y"}), {}, ["'weights/a/b'", "clashes"],
                 {"entry": "weights/a/b"}, id="file-and-directory-clash"),
    pytest.param(_with({"zeros.bin": bytes(50 << 20)}), {}, ["'zeros.bin'", "compression ratio", "zip bomb"],
                 {"entry": "zeros.bin"}, id="zip-bomb"),
    pytest.param(_split_bomb, {}, ["compression ratio", "over all its entries", "zip bomb"], {}, id="split-zip-bomb"),
    pytest.param(_with({"weights.bin": random.Random(1).randbytes(100 << 10)}), {"max_package_bytes": 64 << 10},
                 ["expands to", "the limit is 65536"], {"limit_bytes": 65536}, id="over-max-package-bytes"),
    pytest.param(_tampered("zeros.bin", 24, 4, 1000, {"zeros.bin": bytes(4 << 20)}), {}, ["'zeros.bin'", "CRC"],
                 {"entry": "zeros.bin"}, id="declared-size-lies"),
    pytest.param(_tampered("runner.json", 16, 4, 0x12345678), {}, ["'runner.json'", "corrupt", "CRC"],
                 {"entry": "runner.json"}, id="runner-json-corrupt"),
    pytest.param(_tampered("model.pkl", 16, 4, 0x12345678), {}, ["'model.pkl'", "corrupt", "CRC"],
                 {"entry": "model.pkl"}, id="model-corrupt"),
    pytest.param(_tampered("model.pkl", 10, 2, 99), {}, ["'model.pkl'", "compression method"],
                 {"entry": "model.pkl"}, id="unknown-compression-method"),
    pytest.param(_tampered("model.pkl", 8, 2, 1), {}, ["'model.pkl'", "encrypted"], {"entry": "model.pkl"},
                 id="encrypted-entry"),
]


@pytest.mark.parametrize(("make_package", "overrides", "needles", "details"), PACKAGE_CASES)
def test_it_refuses_an_unsafe_or_malformed_package(iris, scale_a, scale_entries, make_client, spool, *, make_package,
                                                   overrides, needles, details):
    package = make_package(scale_entries)
    with make_client(iris, **overrides) as client:
        before = runner_state(client)
        response = put_package(client, package, scale_a)
        assert_error(response, 400, "invalid_package", *needles, details=details)
        assert_still_serving(client, before, spool)


SLIP_ENTRIES = [
    pytest.param("../../../../evil-slip.txt", id="dot-dot"),
    pytest.param("weights/../../../../../evil-slip.txt", id="dot-dot-inside"),
    pytest.param("{tmp}/evil-absolute.txt", id="absolute"),
    pytest.param("..\\..\\..\\..\\evil-backslash.txt", id="backslash"),
    pytest.param("C:/evil-drive.txt", id="drive-letter"),
]


@pytest.mark.parametrize("entry", SLIP_ENTRIES)
def test_it_writes_nothing_outside_the_model_directory(iris, scale_a, scale_entries, tmp_path, make_client, *, spool,
                                                       entry):
    entry = entry.format(tmp=tmp_path)
    with make_client(iris) as client:
        before = runner_state(client)
        state = client.app.state.runtime.state
        model_dir = state.generation_dir(before["active"]["generation"] + 1) / "model"
        targets = {Path(os.path.normpath(model_dir / name)) for name in (entry, entry.replace("\\", "/"))}
        response = put_package(client, builders.zip_bytes({**scale_entries, entry: b"owned"}), scale_a)
        assert_error(response, 400, "invalid_package", repr(entry), "outside the model directory",
                     details={"entry": entry})
        for target in targets:
            assert not target.exists(), target
        assert not list(tmp_path.rglob("evil-*"))
        assert_still_serving(client, before, spool)


# ---------------------------------------------------------------- PUT /model: malformed requests

SWAP_REQUEST_CASES = [
    pytest.param("/model", {"files": {"proto": ("model.proto", b"x")}}, 400, "bad_request", ["'model'"],
                 {"part": "model"}, id="model-part-missing"),
    pytest.param("/model", {"json": {"model": "modelpackage.zip"}}, 415, "unsupported_media_type",
                 ["multipart/form-data"], {}, id="model-not-multipart"),
    pytest.param("/model", {"content": b"--x\r\ngarbage",
                            "headers": {"content-type": "multipart/form-data; boundary=y"}},
                 400, "bad_request", ["multipart body cannot be read"], {}, id="model-broken-multipart"),
    pytest.param("/model", {"content": b"", "headers": {"content-type": "multipart/form-data"}}, 400, "bad_request",
                 ["multipart body cannot be read", "boundary"], {}, id="model-multipart-without-boundary"),
    pytest.param("/model", {"files": {"model": ("m.zip", "{iris_zip}"), "metadata": ("metadata.json", b"{nope")}},
                 400, "bad_request", ["metadata.json is not valid JSON"], {"field": "metadata"}, id="metadata-invalid"),
    pytest.param("/model", {"files": {"model": ("m.zip", "{iris_zip}"), "sample": ("sample.json", b"{nope")}},
                 400, "bad_request", ["sample part is not valid JSON"], {"part": "sample"}, id="sample-invalid"),
    pytest.param("/model", {"files": {"model": ("m.zip", "{iris_zip}"), "sample": ("sample.json", b"[1]")}},
                 400, "bad_request", ["sample part must be a JSON object"], {"part": "sample"}, id="sample-not-object"),
    pytest.param("/proto", {"files": {"metadata": ("metadata.json", b"{}")}}, 400, "bad_request", ["'proto'"],
                 {"part": "proto"}, id="proto-part-missing"),
    pytest.param("/proto", {"content": b"syntax", "headers": {"content-type": "text/plain"}}, 415,
                 "unsupported_media_type", ["multipart/form-data"], {}, id="proto-not-multipart"),
]


@pytest.mark.parametrize(("path", "request_kwargs", "status", "code", "needles", "details"), SWAP_REQUEST_CASES)
def test_it_refuses_a_swap_request_without_its_parts(iris, make_client, spool, *, path, request_kwargs, status, code,
                                                     needles, details):
    files = {name: (filename, (iris / "modelpackage.zip").read_bytes() if data == "{iris_zip}" else data)
             for name, (filename, data) in request_kwargs.get("files", {}).items()}
    kwargs = {**request_kwargs, **({"files": files} if files else {})}
    kwargs["headers"] = {**auth(), **request_kwargs.get("headers", {})}
    with make_client(iris) as client:
        before = runner_state(client)
        response = client.put(path, **kwargs)
        assert_error(response, status, code, *needles, details=details)
        assert_still_serving(client, before, spool)


# ---------------------------------------------------------------- PUT /model/configuration

CONFIG_CASES = [
    pytest.param("json", b'{"methods": {', 400, "bad_request", ["modelConfig is not valid JSON"],
                 {"part": "modelConfig"}, id="json-body-invalid"),
    pytest.param("multipart", b'{"methods": {', 400, "bad_request", ["modelConfig is not valid JSON"],
                 {"part": "modelConfig"}, id="multipart-invalid"),
    pytest.param("json", b"[1, 2]", 400, "invalid_package", ["modelConfig must be a JSON object"], {},
                 id="not-an-object"),
    pytest.param("json", b'{"colour": "red"}', 400, "invalid_package", ["unknown keys", "'colour'"],
                 {"allowed": ["methods", "params"]}, id="unknown-key"),
    pytest.param("json", b'{"methods": {"classify": {"colour": 1}}}', 400, "invalid_package",
                 ["modelConfig: 'methods.classify'", "'colour'"], {}, id="unknown-method-key"),
    pytest.param("multipart", b'{"methods": {"classify": {"postprocess": "softmax"}}}', 400, "invalid_package",
                 ["modelConfig: 'methods.classify.postprocess'", "'softmax'"], {}, id="unknown-postprocess"),
    pytest.param("json", b'{"methods": {"classify": {"call": 5}}}', 400, "invalid_package",
                 ["modelConfig: 'methods.classify.call'", "must be a string"], {}, id="call-not-a-string"),
    pytest.param("json", b'{"params": [1]}', 400, "invalid_package", ["modelConfig: 'params'", "JSON object"], {},
                 id="params-not-an-object"),
    pytest.param("json", b'{"methods": {"rescale": {}}}', 422, "model_rejected", ["['rescale']", "classify"], {},
                 id="method-not-in-proto"),
    pytest.param("multipart", b'{"methods": {"classify": {"call": "nope"}}}', 422, "model_rejected",
                 ["'nope'"], {}, id="call-the-model-lacks"),
]


@pytest.mark.parametrize(("how", "body", "status", "code", "needles", "details"), CONFIG_CASES)
def test_it_refuses_a_bad_configuration(iris, make_client, spool, *, how, body, status, code, needles, details):
    with make_client(iris) as client:
        before = runner_state(client)
        if how == "json":
            response = client.put("/model/configuration", content=body,
                                  headers={**auth(), "content-type": "application/json"})
        else:
            response = client.put("/model/configuration", headers=auth(), files={"modelConfig": ("c.json", body)})
        assert_error(response, status, code, *needles, details=details)
        assert_still_serving(client, before, spool)


def test_it_refuses_a_configuration_request_without_its_part(iris, make_client, spool):
    with make_client(iris) as client:
        before = runner_state(client)
        response = client.put("/model/configuration", headers=auth(), files={"sample": ("s.json", b"{}")})
        assert_error(response, 400, "bad_request", "'modelConfig'", details={"part": "modelConfig"})
        assert_still_serving(client, before, spool)


# ---------------------------------------------------------------- size limits

def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    body = (b"--limit\r\nContent-Disposition: form-data; name=\"" + name.encode() + b"\"; filename=\"f\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--limit--\r\n")
    return body, "multipart/form-data; boundary=limit"


def _chunks(body: bytes):
    """A body without Content-Length (sent chunked): the limit must hold on the bytes received."""
    for start in range(0, len(body), 256):
        yield body[start:start + 256]


def _limit_request(kind: str, iris: Path) -> dict:
    big_json = json.dumps({**IRIS_SAMPLE, "padding": "x" * 2048}).encode()
    big_csv, csv_type = _multipart("csvFile", CSV_HEADER + b"5.1,3.5,1.4,0.2\n" * 200)
    big_zip, zip_type = _multipart("model", (iris / "modelpackage.zip").read_bytes())
    return {
        "predict": {"method": "POST", "url": "/model/methods/classify", "content": big_json,
                    "headers": {"content-type": "application/json"}},
        "predict-chunked": {"method": "POST", "url": "/model/methods/classify", "content": _chunks(big_json),
                            "headers": {"content-type": "application/json"}},
        "csv": {"method": "POST", "url": "/getBinaryDefault", "content": big_csv,
                "headers": {"content-type": csv_type}},
        "csv-chunked": {"method": "POST", "url": "/transformCSVDefault", "content": _chunks(big_csv),
                        "headers": {"content-type": csv_type}},
        "upload": {"method": "PUT", "url": "/model", "content": big_zip,
                   "headers": {**auth(), "content-type": zip_type}},
        "upload-chunked": {"method": "PUT", "url": "/model", "content": _chunks(big_zip),
                           "headers": {**auth(), "content-type": zip_type}},
    }[kind]


@pytest.mark.parametrize(("kind", "limit"), [
    ("predict", 1024), ("predict-chunked", 1024), ("csv", 1024), ("csv-chunked", 1024),
    ("upload", 2048), ("upload-chunked", 2048),
])
def test_it_refuses_a_body_over_the_limit(iris, make_client, spool, kind, limit):
    with make_client(iris, max_request_bytes=1024, max_upload_bytes=2048) as client:
        before = runner_state(client)
        response = client.request(**_limit_request(kind, iris))
        assert_error(response, 413, "payload_too_large", str(limit), details={"limit_bytes": limit})
        assert_still_serving(client, before, spool)


# ---------------------------------------------------------------- rollback

ROLLBACK_CASES = [
    pytest.param(b"", 409, "conflict", ["no earlier model"], {}, id="nothing-to-roll-back-to"),
    pytest.param(b'{"generation": 1}', 409, "conflict", ["generation 1 is already serving"], {}, id="to-itself"),
    pytest.param(b'{"generation": 99}', 404, "not_found", ["generation 99"], {"generation": 99}, id="unknown"),
    pytest.param(b'{"generation": "1"}', 400, "bad_request", ["'generation'"], {"field": "generation"},
                 id="generation-not-a-number"),
    pytest.param(b'{"generation": true}', 400, "bad_request", ["'generation'"], {"field": "generation"},
                 id="generation-boolean"),
    pytest.param(b"[1]", 400, "bad_request", ['{"generation": <number>}'], {}, id="body-array"),
    pytest.param(b"{nope", 400, "bad_request", ['{"generation": <number>}'], {}, id="body-malformed"),
]


@pytest.mark.parametrize(("body", "status", "code", "needles", "details"), ROLLBACK_CASES)
def test_it_refuses_a_rollback_it_cannot_do(iris, make_client, spool, *, body, status, code, needles, details):
    with make_client(iris) as client:
        before = runner_state(client)
        response = client.post("/model/rollback", content=body,
                               headers={**auth(), "content-type": "application/json"})
        assert_error(response, status, code, *needles, details=details)
        assert_still_serving(client, before, spool)


# ---------------------------------------------------------------- open inference protocol

def _tensor(name: str, data: list, shape: list | None = None) -> dict:
    return {"name": name, "datatype": "FP64", "shape": shape or [len(data)], "data": data}


NAMED = [_tensor(name, [value]) for name, value in IRIS_SAMPLE.items()]
INFER_CASES = [
    pytest.param("IrisClassifier", {}, 400, "bad_request", ["'inputs'"], {"field": "inputs"}, id="no-inputs"),
    pytest.param("IrisClassifier", {"inputs": []}, 400, "bad_request", ["'inputs'"], {"field": "inputs"},
                 id="empty-inputs"),
    pytest.param("IrisClassifier", {"inputs": {"sepal_length": 5.1}}, 400, "bad_request", ["'inputs'"],
                 {"field": "inputs"}, id="inputs-not-a-list"),
    pytest.param("IrisClassifier", {"inputs": [{"name": "sepal_length", "data": 5.1}]}, 400, "bad_request",
                 ["inputs[0]", "'data' list"], {"field": "inputs[0]"}, id="data-not-a-list"),
    pytest.param("IrisClassifier", {"inputs": [*NAMED[:3], _tensor("petal_widht", [0.2])]}, 400, "bad_request",
                 ["'petal_widht'", "petal_width"], {}, id="wrong-tensor-name"),
    pytest.param("IrisClassifier", {"inputs": [_tensor("input-0", [5.1, 3.5, 1.4], [1, 3])]}, 400, "bad_request",
                 ["shape [n, 4]", "[1, 3]"], {"field": "inputs[0]"}, id="matrix-wrong-width"),
    pytest.param("IrisClassifier", {"inputs": [_tensor("input-0", [5.1, 3.5, 1.4, 0.2], [2, 4])]}, 400,
                 "bad_request", ["shape [n, 4]", "4 values"], {"field": "inputs[0]"}, id="matrix-shape-vs-data"),
    pytest.param("IrisClassifier", {"inputs": [*NAMED[:3], _tensor("petal_width", [0.2, 0.3])]}, 400, "bad_request",
                 ["'petal_width'", "2 values"], {"field": "petal_width"}, id="two-values-for-a-single-field"),
    pytest.param("IrisClassifier", {"inputs": [*NAMED[:3], _tensor("petal_width", ["wide"])]}, 400, "bad_request",
                 ["'petal_width'", "not a number"], {"field": "petal_width"}, id="wrong-value-type"),
    pytest.param("IrisClassifier", {"inputs": NAMED, "parameters": {"method": "clasify"}}, 404, "not_found",
                 ["'clasify'"], {"method": "clasify"}, id="unknown-method"),
    pytest.param("Unknown", {"inputs": NAMED}, 404, "not_found", ["'Unknown'", "IrisClassifier"],
                 {"model": "Unknown"}, id="unknown-model"),
]


@pytest.mark.parametrize(("name", "body", "status", "code", "needles", "details"), INFER_CASES)
def test_it_refuses_a_bad_inference_request(iris, make_client, spool, *, name, body, status, code, needles, details):
    with make_client(iris) as client:
        before = runner_state(client)
        response = client.post(f"/v2/models/{name}/infer", json=body)
        assert_error(response, status, code, *needles, details=details)
        good = client.post("/v2/models/IrisClassifier/infer", json={"inputs": NAMED})
        assert good.status_code == 200, good.text
        assert good.json()["outputs"][0]["data"] == [0]
        assert_still_serving(client, before, spool)


@pytest.mark.parametrize(("headers", "body", "status", "needle"), [
    pytest.param({"content-type": "application/json"}, b"{nope", 400, "not valid JSON", id="malformed-json"),
    pytest.param({"content-type": PROTOBUF}, b"\x0a\x00", 415, "application/json", id="protobuf"),
    pytest.param({"content-type": "text/plain"}, b"{}", 415, "text/plain", id="text"),
])
def test_it_refuses_an_inference_body_it_cannot_read(iris, make_client, spool, *, headers, body, status, needle):
    with make_client(iris) as client:
        before = runner_state(client)
        response = client.post("/v2/models/IrisClassifier/infer", content=body, headers=headers)
        assert response.status_code == status, response.text
        assert needle in error_of(response)["message"]
        assert_still_serving(client, before, spool)


@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("post", "/model/methods/classify", {"headers": {"Content-Type": "application/json"}}),
    ("post", "/v2/models/IrisClassifier/infer", {"headers": {"Content-Type": "application/json"}}),
    ("put", "/model/configuration", {"headers": {"Content-Type": "application/json", **auth()}}),
])
def test_it_refuses_json_nested_too_deeply(iris, make_client, *, method, path, kwargs):
    with make_client(iris) as client:
        response = client.request(method.upper(), path, content=b"[" * 100_000, **kwargs)
        assert response.status_code == 400, response.text
        assert "nested too deeply" in error_of(response)["message"]
        assert client.post("/model/methods/classify", json=IRIS_SAMPLE).json() == {"species": 0}


@pytest.mark.parametrize(("parameters", "field"), [("x", "parameters"), ([1], "parameters"),
                                                   ({"method": ["a"]}, "parameters.method")])
def test_it_refuses_bad_inference_parameters(iris, make_client, parameters, field):
    body = {"parameters": parameters, "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                                                  "data": [1, 2, 3, 4]}]}
    with make_client(iris) as client:
        response = client.post("/v2/models/IrisClassifier/infer", json=body)
    assert response.status_code == 400, response.text
    assert error_of(response)["details"]["field"] == field


@pytest.mark.parametrize("generation", [0, -1])
def test_it_refuses_a_rollback_to_a_generation_below_one(scale_a, scale_b, make_client, generation):
    with make_client(scale_a) as client:
        files = {"model": ("m.zip", (scale_b / "modelpackage.zip").read_bytes())}
        assert client.put("/model", headers=auth(), files=files).status_code == 200
        response = client.post("/model/rollback", headers=auth(), json={"generation": generation})
        assert response.status_code == 400, response.text
        assert client.get("/model").json()["active"]["generation"] == 2


def test_it_blames_the_model_not_the_caller_for_an_answer_that_does_not_fit(tmp_path, make_client):
    from runner_image.pack import pack_bundle

    def wrong(x: float):
        return {"tag": "A", "y": x} if x >= 0 else {"not_a_field": 1}

    bundle = pack_bundle(model=wrong, flavour="python", name="Scaler", method="scale", inputs="x:double",
                         outputs="tag:string,y:double", out=tmp_path / "wrong", sample={"x": 1.0})
    with make_client(bundle) as client:
        response = client.post("/model/methods/scale", json={"x": -1.0})
        assert response.status_code == 500, response.text
        assert "not_a_field" in error_of(response)["message"]
        assert error_of(response)["details"]["error_id"]
        assert client.post("/model/methods/scale", json={"x": 2.0}).json() == {"tag": "A", "y": 2.0}
