"""The runner's /v2 as real Open Inference Protocol clients use it: NVIDIA's tritonclient.http (JSON and
binary tensors in and out, compression, versions, metadata, the repository extension) and the bodies
KServe's Python SDK sends, against real runner processes (uvicorn; the iris runner has 2 workers).
Hostile bodies (lying lengths, sizes that do not add up, a gzip bomb, unknown datatypes and names)
each get a clear 400/413/415 and the runner answers the next request as before."""

from __future__ import annotations

import gzip
import json
import struct
import uuid
import zlib

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from . import builders
from .conftest import TOKEN, RunnerProcess, auth, error_of

IRIS = "IrisClassifier"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [4.9, 3.0, 1.4, 0.2],
                 [6.3, 2.9, 5.6, 1.8], [5.5, 2.4, 3.8, 1.1]], dtype=np.float64)
HEADER = "Inference-Header-Content-Length"
LIMIT = 1 << 20  # the iris runner's RUNNER_MAX_REQUEST_BYTES: a bomb needs only to inflate past it


@pytest.fixture(scope="module")
def iris_runner(tmp_path_factory):
    """Iris with repeated fields (several rows a request), two worker processes."""
    tmp = tmp_path_factory.mktemp("oip-iris")
    bundle = builders.iris_bundle(tmp / "bundle", repeated=True)
    runner = RunnerProcess(bundle, tmp / "state", workers=2, env={"RUNNER_MAX_REQUEST_BYTES": str(LIMIT)})
    yield runner
    runner.stop()


def echo_function():
    def echo(**fields):
        return dict(fields)

    return echo


ECHO_FIELDS = {"d": "double", "f": "float", "i64": "int64", "i32": "int32", "u64": "uint64", "u32": "uint32",
               "b": "bool", "s": "string", "by": "bytes"}


@pytest.fixture(scope="module")
def echo_runner(tmp_path_factory):
    """A model that answers its input: one repeated field of every scalar type the runner packs."""
    tmp = tmp_path_factory.mktemp("oip-echo")
    signature = ",".join(f"{name}:repeated {kind}" for name, kind in ECHO_FIELDS.items())
    bundle = builders.pack_bundle(model=echo_function(), flavour="python", name="Echo", method="echo",
                                  inputs=signature, outputs=signature, out=tmp / "bundle")
    runner = RunnerProcess(bundle, tmp / "state", workers=1)
    yield runner
    runner.stop()


def client_for(runner) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(runner.url.removeprefix("http://"))


@pytest.fixture
def iris_client(iris_runner):
    client = client_for(iris_runner)
    yield client
    client.close()


def matrix_input(rows: np.ndarray, binary: bool, datatype: str = "FP64") -> triton.InferInput:
    tensor = triton.InferInput("input-0", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return tensor


def column_inputs(rows: np.ndarray, binary: bool) -> list[triton.InferInput]:
    inputs = []
    for j, name in enumerate(FEATURES):
        tensor = triton.InferInput(name, [len(rows)], "FP64")
        tensor.set_data_from_numpy(np.ascontiguousarray(rows[:, j]), binary_data=binary)
        inputs.append(tensor)
    return inputs


def rest_species(runner, rows: np.ndarray) -> list[int]:
    body = {name: rows[:, j].tolist() for j, name in enumerate(FEATURES)}
    response = httpx.post(f"{runner.url}/model/methods/classify", json=body)
    assert response.status_code == 200, response.text
    return response.json()["species"]


def assert_still_serving(runner) -> None:
    """The runner answers a good REST and a good /v2 request, on new connections (either worker)."""
    for _ in range(2):
        assert rest_species(runner, ROWS[:2]) == [0, 2]
        body = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": ROWS[:2].tolist()}]}
        response = httpx.post(f"{runner.url}/v2/models/{IRIS}/infer", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [0, 2]


def binary_body(header: dict, *parts: bytes) -> tuple[bytes, int]:
    head = json.dumps(header).encode()
    return head + b"".join(parts), len(head)


def fp64_bytes(values) -> bytes:
    return np.asarray(values, dtype="<f8").tobytes()


# ---------------------------------------------------------------- health and metadata

def test_tritonclient_reads_health_and_metadata(iris_client):
    assert iris_client.is_server_live() and iris_client.is_server_ready()
    assert iris_client.is_model_ready(IRIS)
    assert iris_client.is_model_ready(IRIS, model_version="1")
    assert not iris_client.is_model_ready(IRIS, model_version="2")
    assert not iris_client.is_model_ready("NoSuchModel")
    server = iris_client.get_server_metadata()
    assert server["name"] == "acumos-runner"
    assert set(server["extensions"]) == {"binary_tensor_data", "model_repository"}
    for version in ("", "1"):
        meta = iris_client.get_model_metadata(IRIS, model_version=version)
        assert meta["name"] == IRIS and meta["versions"] == ["1"]
        assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [(n, "FP64", [-1]) for n in FEATURES]
        assert meta["outputs"] == [{"name": "species", "datatype": "INT64", "shape": [-1]}]
    with pytest.raises(InferenceServerException) as missing:
        iris_client.get_model_metadata(IRIS, model_version="7")
    assert missing.value.status() == "404"
    assert "generation 1" in missing.value.message()
    assert "generation 1" in str(missing.value)  # the OIP's error shape: tritonclient can print it


def test_errors_have_the_oip_shape_on_v2_and_the_house_shape_elsewhere(iris_runner):
    oip = httpx.post(f"{iris_runner.url}/v2/models/NoSuchModel/infer", json={"inputs": []}).json()
    assert isinstance(oip["error"], str) and "NoSuchModel" in oip["error"]
    assert oip["code"] == "not_found" and oip["details"] == {"model": "NoSuchModel"}
    house = httpx.post(f"{iris_runner.url}/model/methods/nope", json={}).json()
    assert set(house) == {"error"} and house["error"]["code"] == "not_found"


# ---------------------------------------------------------------- inference

@pytest.mark.parametrize("binary_in", [False, True], ids=["json-in", "binary-in"])
@pytest.mark.parametrize("binary_out", [False, True, None], ids=["json-out", "binary-out", "default-out"])
def test_json_and_binary_answers_agree_with_rest(iris_runner, iris_client, binary_in, binary_out):
    expected = rest_species(iris_runner, ROWS)
    assert expected == [0, 2, 1, 0, 2, 1]
    outputs = None if binary_out is None else [triton.InferRequestedOutput("species", binary_data=binary_out)]
    for inputs in ([matrix_input(ROWS, binary_in)], column_inputs(ROWS, binary_in)):
        result = iris_client.infer(IRIS, inputs, outputs=outputs)
        species = result.as_numpy("species")
        assert species.dtype == np.int64 and species.shape == (len(ROWS),)
        assert species.tolist() == expected
        output = result.get_output("species")
        as_binary = binary_out is None or binary_out  # tritonclient asks binary_data_output when it names none
        assert ("binary_data_size" in output.get("parameters", {})) is as_binary
        assert ("data" in output) is not as_binary


def test_it_echoes_the_request_id_in_the_body_and_the_header(iris_runner):
    body, length = triton.InferenceServerClient.generate_request_body([matrix_input(ROWS, True)], request_id="req-42")
    response = httpx.post(f"{iris_runner.url}/v2/models/{IRIS}/infer", content=body, headers={HEADER: str(length)})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "req-42"
    parsed = triton.InferenceServerClient.parse_response_body(response.content,
                                                              header_length=int(response.headers[HEADER]))
    assert parsed.get_response()["id"] == "req-42"
    assert parsed.as_numpy("species").tolist() == [0, 2, 1, 0, 2, 1]
    # A header id wins for the header; the body's id is echoed as given.
    response = httpx.post(f"{iris_runner.url}/v2/models/{IRIS}/infer", content=body,
                          headers={HEADER: str(length), "X-Request-Id": "from-header"})
    assert response.headers["x-request-id"] == "from-header"
    # An error answer carries the id too.
    response = httpx.post(f"{iris_runner.url}/v2/models/{IRIS}/infer", content=b"{", headers={"X-Request-Id": "bad-1"})
    assert response.status_code == 400 and response.headers["x-request-id"] == "bad-1"


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_it_reads_compressed_requests(iris_client, algorithm, binary):
    result = iris_client.infer(IRIS, [matrix_input(ROWS, binary)], request_compression_algorithm=algorithm,
                               outputs=[triton.InferRequestedOutput("species", binary_data=binary)])
    assert result.as_numpy("species").tolist() == [0, 2, 1, 0, 2, 1]


def test_versions_are_generations(iris_client):
    result = iris_client.infer(IRIS, [matrix_input(ROWS, True)], model_version="1")
    assert result.as_numpy("species").tolist() == [0, 2, 1, 0, 2, 1]
    assert result.get_response()["model_version"] == "1"
    with pytest.raises(InferenceServerException) as other:
        iris_client.infer(IRIS, [matrix_input(ROWS, True)], model_version="2")
    assert other.value.status() == "404"
    assert "this runner serves generation 1" in other.value.message()


def test_a_swap_moves_the_version(scale_a, scale_b, start_runner):
    runner = start_runner(scale_a)
    client = client_for(runner)
    try:
        x = triton.InferInput("x", [1], "FP64")
        x.set_data_from_numpy(np.array([2.0]))
        assert client.infer("Scaler", [x], model_version="1").as_numpy("tag").tolist() == [b"A"]
        package = {"model": ("m.zip", (scale_b / "modelpackage.zip").read_bytes())}
        assert httpx.put(f"{runner.url}/model", headers=auth(), files=package, timeout=60).status_code == 200
        assert client.get_model_metadata("Scaler")["versions"] == ["2"]
        assert client.infer("Scaler", [x], model_version="2").as_numpy("y").tolist() == [6.0]
        assert not client.is_model_ready("Scaler", model_version="1")
        with pytest.raises(InferenceServerException) as old:
            client.infer("Scaler", [x], model_version="1")
        assert old.value.status() == "404" and "generation 2" in old.value.message()
    finally:
        client.close()


def test_it_answers_only_the_outputs_asked_for_in_their_order(echo_runner):
    client = client_for(echo_runner)
    try:
        inputs = echo_inputs(binary=True)
        wanted = [triton.InferRequestedOutput("s", binary_data=False), triton.InferRequestedOutput("d")]
        result = client.infer("Echo", inputs, outputs=wanted)
        assert [o["name"] for o in result.get_response()["outputs"]] == ["s", "d"]
        assert result.as_numpy("s").tolist() == ["héllo", "", "x"]  # JSON BYTES: strings
        assert result.as_numpy("d").tolist() == [1.5, -2.0, 1e300]
        assert result.as_numpy("i64") is None
    finally:
        client.close()


# ---------------------------------------------------------------- every datatype

ECHO_VALUES = {
    "d": ("FP64", np.array([1.5, -2.0, 1e300])),
    "f": ("FP32", np.array([0.1, -3.25, 7.0], dtype=np.float32)),
    "i64": ("INT64", np.array([-(2**63), 0, 2**63 - 1], dtype=np.int64)),
    "i32": ("INT32", np.array([-(2**31), 5, 2**31 - 1], dtype=np.int32)),
    "u64": ("UINT64", np.array([0, 1, 2**64 - 1], dtype=np.uint64)),
    "u32": ("UINT32", np.array([0, 7, 2**32 - 1], dtype=np.uint32)),
    "b": ("BOOL", np.array([True, False, True])),
    "s": ("BYTES", np.array(["héllo".encode(), b"", b"x"], dtype=np.object_)),
    "by": ("BYTES", np.array([b"\x00\x01", b"raw", b""], dtype=np.object_)),
}


def echo_inputs(binary: bool, values: dict | None = None) -> list[triton.InferInput]:
    inputs = []
    for name, (datatype, array) in (values or ECHO_VALUES).items():
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("binary_in", [False, True], ids=["json-in", "binary-in"])
@pytest.mark.parametrize("binary_out", [False, True], ids=["json-out", "binary-out"])
def test_every_datatype_round_trips(echo_runner, binary_in, binary_out):
    client = client_for(echo_runner)
    try:
        wanted = [triton.InferRequestedOutput(name, binary_data=binary_out) for name in ECHO_FIELDS]
        result = client.infer("Echo", echo_inputs(binary_in), outputs=wanted)
    finally:
        client.close()
    for name, (datatype, array) in ECHO_VALUES.items():
        output = result.as_numpy(name)
        assert result.get_output(name)["datatype"] == datatype
        assert output.shape == array.shape
        if datatype == "BYTES":  # raw bytes as bytes; JSON as the text (str)
            assert [v if binary_out else v.encode() for v in output.tolist()] == array.tolist(), name
        else:
            assert output.dtype == array.dtype, name
            assert output.tolist() == array.tolist(), name


def test_bytes_that_are_not_text(echo_runner):
    """Raw bytes in and out are exact; in a JSON answer, bytes that are not UTF-8 are base64, and say so."""
    values = {**ECHO_VALUES, "by": ("BYTES", np.array([b"\xff\x00", b"ok", b""], dtype=np.object_))}
    client = client_for(echo_runner)
    try:
        raw = client.infer("Echo", echo_inputs(True, values), outputs=[triton.InferRequestedOutput("by")])
        assert raw.as_numpy("by").tolist() == [b"\xff\x00", b"ok", b""]
        as_json = client.infer("Echo", echo_inputs(True, values),
                               outputs=[triton.InferRequestedOutput("by", binary_data=False)])
        output = as_json.get_output("by")
        assert output["parameters"] == {"content_encoding": "base64"}
        assert output["data"] == ["/wA=", "b2s=", ""]
    finally:
        client.close()


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_narrower_datatypes_widen_into_their_fields(echo_runner, binary):
    narrow = {"d": ("FP16", np.array([0.5, -1.0, 2.0], dtype=np.float16)),
              "f": ("FP16", np.array([1.5, 0.0, -0.25], dtype=np.float16)),
              "i64": ("INT8", np.array([-128, 0, 127], dtype=np.int8)),
              "i32": ("INT16", np.array([-300, 1, 300], dtype=np.int16)),
              "u64": ("UINT8", np.array([0, 1, 255], dtype=np.uint8)),
              "u32": ("UINT16", np.array([0, 2, 65535], dtype=np.uint16))}
    rest = {k: v for k, v in ECHO_VALUES.items() if k in ("b", "s")}
    rest["by"] = ("BYTES", np.array([b"a", b"b", b"c"], dtype=np.object_))
    client = client_for(echo_runner)
    try:
        result = client.infer("Echo", echo_inputs(binary, {**narrow, **rest}))
    finally:
        client.close()
    for name, (_, array) in narrow.items():
        assert result.as_numpy(name).tolist() == array.tolist(), name


def test_non_finite_floats_travel_both_ways(echo_runner):
    values = {**ECHO_VALUES, "d": ("FP64", np.array([np.inf, -np.inf, np.nan])),
              "f": ("FP32", np.array([np.nan, 1.0, np.inf], dtype=np.float32))}
    client = client_for(echo_runner)
    try:
        for binary_out in (False, True):
            result = client.infer("Echo", echo_inputs(True, values),
                                  outputs=[triton.InferRequestedOutput(n, binary_data=binary_out) for n in ("d", "f")])
            d = result.as_numpy("d")
            assert d[0] == np.inf and d[1] == -np.inf and np.isnan(d[2])
            f = result.as_numpy("f")
            assert np.isnan(f[0]) and f[1] == 1.0 and f[2] == np.inf
    finally:
        client.close()


@pytest.mark.parametrize(("name", "datatype", "data", "field_type"), [
    ("d", "BYTES", ["1.0"], "double"),
    ("i64", "FP64", [1.0], "int64"),
    ("i32", "FP32", [1.0], "int32"),
    ("b", "INT8", [1], "bool"),
    ("s", "FP32", [1.0], "string"),
    ("by", "INT64", [1], "bytes"),
    ("u64", "BOOL", [True], "uint64"),
])
def test_a_datatype_that_does_not_fit_its_field_is_refused(echo_runner, name, datatype, data, field_type):
    body = {"inputs": [{"name": name, "shape": [1], "datatype": datatype, "data": data}]}
    response = httpx.post(f"{echo_runner.url}/v2/models/Echo/infer", json=body)
    assert response.status_code == 400, response.text
    error = error_of(response)
    for needle in (f"'{name}'", datatype, f"({field_type})"):
        assert needle in error["message"], error["message"]
    assert error["details"]["field"] == name and error["details"]["datatype"] == datatype


# ---------------------------------------------------------------- KServe

def test_the_json_kserve_sends(iris_runner):
    """Exactly what KServe's Python SDK sends: InferRequest.to_rest() (kserve/kserve,
    python/kserve/kserve/protocol/infer_type.py) gives {"id": <uuid4 unless set>, "model_name", "inputs":
    [{"name", "shape", "datatype", "data"} (+ "parameters" when set)]} (+ "outputs", "parameters" when
    set); InferenceRESTClient.infer posts it as orjson bytes with no Content-Type, or, when inputs hold raw
    data, as the JSON then the raw bytes with `inference-header-content-length` and
    `content-type: application/octet-stream`. The SDK itself is heavy to install, so its bodies are
    written out here."""
    request_id = str(uuid.uuid4())
    as_json = {"id": request_id, "model_name": IRIS,
               "inputs": [{"name": "input-0", "shape": [6, 4], "datatype": "FP64", "data": ROWS.flatten().tolist()}]}
    url = f"{iris_runner.url}/v2/models/{IRIS}/infer"
    response = httpx.post(url, content=json.dumps(as_json, separators=(",", ":")).encode())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"] == request_id and answer["model_name"] == IRIS
    assert answer["outputs"] == [{"name": "species", "datatype": "INT64", "shape": [6], "data": [0, 2, 1, 0, 2, 1]}]

    raw = {"id": request_id, "model_name": IRIS,
           "inputs": [{"name": "input-0", "shape": [6, 4], "datatype": "FP64",
                       "parameters": {"binary_data_size": ROWS.nbytes}}],
           "outputs": [{"name": "species", "parameters": {"binary_data": False}}]}
    body, length = binary_body(raw, ROWS.tobytes())
    response = httpx.post(url, content=body, headers={"inference-header-content-length": str(length),
                                                      "content-type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [0, 2, 1, 0, 2, 1]

    other_model = {**as_json, "model_name": "Other"}
    response = httpx.post(url, json=other_model)
    assert response.status_code == 400 and error_of(response)["details"]["field"] == "model_name"


# ---------------------------------------------------------------- the repository extension

def test_the_repository_extension(iris_client):
    assert iris_client.get_model_repository_index() == [{"name": IRIS, "version": "1", "state": "READY", "reason": ""}]
    with pytest.raises(InferenceServerException) as no_token:
        iris_client.load_model(IRIS)
    assert no_token.value.status() == "401"
    token = {"Authorization": f"Bearer {TOKEN}"}
    iris_client.load_model(IRIS, headers=token)  # loaded already: a no-op that answers 200
    with pytest.raises(InferenceServerException) as with_config:
        iris_client.load_model(IRIS, headers=token, config=json.dumps({"backend": "python"}))
    assert with_config.value.status() == "400" and "PUT /model" in with_config.value.message()
    with pytest.raises(InferenceServerException) as other:
        iris_client.load_model("Other", headers=token)
    assert other.value.status() == "404"
    with pytest.raises(InferenceServerException) as unload:
        iris_client.unload_model(IRIS, headers=token)
    assert unload.value.status() == "409"
    assert "rollback" in unload.value.message()
    assert iris_client.is_model_ready(IRIS)


# ---------------------------------------------------------------- hostile bodies

def bomb() -> bytes:
    """A gzip body of a few KiB that inflates to 64 MiB, far past the runner's 1 MiB limit."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    return b"".join([compressor.compress(block) for _ in range(64)] + [compressor.flush()])


GOOD_BINARY = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                           "parameters": {"binary_data_size": 64}}]}
NAMED = [{"name": name, "shape": [1], "datatype": "FP64", "data": [ROWS[0, j]]} for j, name in enumerate(FEATURES)]


def _with_header(header: dict, raw: bytes) -> tuple[bytes, dict]:
    body, length = binary_body(header, raw)
    return body, {HEADER: str(length)}


def _hostile():
    body, length = binary_body(GOOD_BINARY, fp64_bytes(ROWS[:2]))
    short, short_length = binary_body(GOOD_BINARY, fp64_bytes(ROWS[:2])[:40])
    extra, extra_length = binary_body(GOOD_BINARY, fp64_bytes(ROWS[:2]) + b"junk")
    two = {"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 8}}
                      for n in FEATURES]}
    two_body, two_length = binary_body(two, fp64_bytes([1.0, 2.0, 3.0]))
    odd_shape, odd_length = binary_body(
        {"inputs": [{"name": "input-0", "shape": [3, 4], "datatype": "FP64", "parameters": {"binary_data_size": 64}}]},
        fp64_bytes(ROWS[:2]))
    negative, negative_length = binary_body(
        {"inputs": [{**GOOD_BINARY["inputs"][0], "parameters": {"binary_data_size": -1}}]}, fp64_bytes(ROWS[:2]))
    json_headers = {"Content-Type": "application/json"}
    return [
        pytest.param(body, {HEADER: str(len(body) + 1)}, 400, [HEADER, "body has only"], HEADER,
                     id="header-longer-than-body"),
        pytest.param(body, {HEADER: "-5"}, 400, [HEADER, "'-5'"], HEADER, id="negative-header"),
        pytest.param(body, {HEADER: "12abc"}, 400, [HEADER, "whole number"], HEADER, id="non-numeric-header"),
        pytest.param(body, {HEADER: str(length - 3)}, 400, ["not valid JSON", HEADER], None, id="header-cuts-the-json"),
        pytest.param(short, {HEADER: str(short_length)}, 400, ["inputs[0] ('input-0')", "runs past the end"],
                     "inputs[0].parameters.binary_data_size", id="size-past-the-end"),
        pytest.param(extra, {HEADER: str(extra_length)}, 400, ["4 bytes after the JSON header belong to no input"],
                     HEADER, id="bytes-left-over"),
        pytest.param(two_body, {HEADER: str(two_length)}, 400, ["inputs[3] ('petal_width')", "runs past the end"],
                     "inputs[3].parameters.binary_data_size", id="sizes-do-not-add-up"),
        pytest.param(odd_shape, {HEADER: str(odd_length)}, 400, ["'input-0'", "needs 96 bytes, got 64"], "inputs[0]",
                     id="shape-and-bytes-disagree"),
        pytest.param(json.dumps(GOOD_BINARY).encode(), json_headers, 400, ["binary_data_size", HEADER], HEADER,
                     id="binary-size-without-header"),
        pytest.param(negative, {HEADER: str(negative_length)}, 400,
                     ["binary_data_size must be a whole number"], "inputs[0].parameters.binary_data_size",
                     id="negative-binary-size"),
        pytest.param(bomb(), {"Content-Encoding": "gzip"}, 413, ["inflates to more than", str(LIMIT)],
                     "Content-Encoding", id="gzip-bomb"),
        pytest.param(gzip.compress(b'{"inputs": []}')[:-6], {"Content-Encoding": "gzip"}, 400, ["cut short"],
                     "Content-Encoding", id="truncated-gzip"),
        pytest.param(b"not gzip at all", {"Content-Encoding": "gzip"}, 400, ["not valid gzip"], "Content-Encoding",
                     id="corrupt-gzip"),
        pytest.param(b"{}", {"Content-Encoding": "br"}, 415, ["'br'", "gzip"], "Content-Encoding",
                     id="unknown-encoding"),
        pytest.param(b"{}", {"Content-Type": "text/plain"}, 415, ["text/plain", "application/octet-stream"], None,
                     id="unknown-content-type"),
        pytest.param(json.dumps({"inputs": [{**NAMED[0], "datatype": "FP8"}, *NAMED[1:]]}).encode(), json_headers, 400,
                     ["inputs[0]", "'FP8'", "FP64, BYTES"], "inputs[0].datatype", id="unknown-datatype"),
        pytest.param(json.dumps({"inputs": [*NAMED[:3], {**NAMED[3], "name": "petal_widht"}]}).encode(), json_headers,
                     400, ["'petal_widht'", "petal_width"], None, id="unknown-input"),
        pytest.param(json.dumps({"inputs": NAMED, "outputs": [{"name": "specis"}]}).encode(), json_headers, 400,
                     ["'specis'", "species"], "outputs", id="unknown-output"),
        pytest.param(json.dumps({"inputs": [*NAMED[:3], {**NAMED[3], "shape": [2]}]}).encode(), json_headers, 400,
                     ["inputs[3] ('petal_width')", "shape [2] holds 2 values"], "inputs[3].shape", id="shape-and-data"),
        pytest.param(json.dumps({"inputs": NAMED, "parameters": {"binary_data_output": "yes"}}).encode(),
                     json_headers, 400, ["binary_data_output"], "parameters.binary_data_output",
                     id="binary-output-not-a-bool"),
        pytest.param(json.dumps({"inputs": [{**NAMED[0], "parameters": {"shared_memory_region": "r"}}, *NAMED[1:]]})
                     .encode(), json_headers, 400, ["shared memory"], "inputs[0].parameters", id="shared-memory"),
        pytest.param(json.dumps({"inputs": NAMED, "outputs": [{"name": "species",
                                                               "parameters": {"classification": 2}}]}).encode(),
                     json_headers, 400, ["classification"], "outputs[0].parameters.classification",
                     id="classification"),
        pytest.param(json.dumps({"id": 7, "inputs": NAMED}).encode(), json_headers, 400, ["'id'"], "id",
                     id="id-not-a-string"),
        pytest.param(*_with_header({"inputs": [1, 2]}, b"x"), 400, ["inputs[0] must be an object"], "inputs[0]",
                     id="binary-inputs-not-objects"),
    ]


@pytest.mark.parametrize(("body", "headers", "status", "needles", "field"), _hostile())
def test_a_hostile_request_gets_a_clear_error_and_the_runner_serves_on(iris_runner, *, body, headers, status, needles,
                                                                       field):
    response = httpx.post(f"{iris_runner.url}/v2/models/{IRIS}/infer", content=body, headers=headers)
    assert response.status_code == status, response.text
    error = error_of(response)
    for needle in needles:
        assert needle in error["message"], error["message"]
    if field is not None:
        assert error["details"].get("field") == field, error
    assert "x-request-id" in response.headers
    assert_still_serving(iris_runner)


def test_bytes_cut_off_in_a_binary_bytes_tensor(echo_runner):
    """A BYTES element whose 4-byte length claims more than is there."""
    raw = struct.pack("<I", 1000) + b"short"
    body, length = binary_body({"inputs": [{"name": "s", "shape": [1], "datatype": "BYTES",
                                            "parameters": {"binary_data_size": len(raw)}}]}, raw)
    response = httpx.post(f"{echo_runner.url}/v2/models/Echo/infer", content=body, headers={HEADER: str(length)})
    assert response.status_code == 400, response.text
    assert "says 1000 bytes but only 5 remain" in error_of(response)["message"]
    not_utf8 = struct.pack("<I", 2) + b"\xff\xfe"
    body, length = binary_body({"inputs": [{"name": "s", "shape": [1], "datatype": "BYTES",
                                            "parameters": {"binary_data_size": len(not_utf8)}}]}, not_utf8)
    response = httpx.post(f"{echo_runner.url}/v2/models/Echo/infer", content=body, headers={HEADER: str(length)})
    assert response.status_code == 400 and "not UTF-8" in error_of(response)["message"]


# ---------------------------------------------------------------- messages, rows, enums and maps as tensors

SHAPES_PROTO = """syntax = "proto3";
package shapes;

service Model {
  rpc table (TableIn) returns (TableOut);
  rpc describe (Described) returns (Described);
}

enum Colour { RED = 0; GREEN = 1; }
message Point { double x = 1; string label = 2; }
message TableIn { repeated Point points = 1; }
message Scored { double score = 1; string label = 2; }
message TableOut { repeated Scored scored = 1; }
message Described { Point point = 1; Colour colour = 2; map<string, double> weights = 3; repeated Point many = 4; }
"""


def shapes_functions():
    def table(points):
        return {"scored": [{"score": p["x"] * 2, "label": p["label"].upper()} for p in points]}

    def describe(point, colour, weights, many):
        return {"point": point, "colour": colour, "weights": weights, "many": [*many, point]}

    return {"table": table, "describe": describe}


@pytest.fixture(scope="module")
def shapes_bundle(tmp_path_factory):
    """A model whose interface has a one-repeated-message input and output (rows), a sub-message, an enum and
    a map: what the packer does not write, so its proto is written here."""
    out = tmp_path_factory.mktemp("oip-shapes")
    builders.pack_bundle(model=shapes_functions(), flavour="python", name="Shapes", method="table", inputs="x:double",
                         outputs="y:double", out=out, check=False)
    (out / "model.proto").write_text(SHAPES_PROTO)
    return out


def test_rows_are_columns_both_ways(shapes_bundle, make_client):
    with make_client(shapes_bundle) as client:
        meta = client.get("/v2/models/Shapes").json()
        assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [("x", "FP64", [-1]),
                                                                                      ("label", "BYTES", [-1])]
        assert [t["name"] for t in meta["outputs"]] == ["score", "label"]
        body = {"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1.0, 2.5, -1.0]},
                           {"name": "label", "shape": [3], "datatype": "BYTES", "data": ["a", "b", "c"]}]}
        answer = client.post("/v2/models/Shapes/infer", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"] == [
            {"name": "score", "datatype": "FP64", "shape": [3], "data": [2.0, 5.0, -2.0]},
            {"name": "label", "datatype": "BYTES", "shape": [3], "data": ["A", "B", "C"]}]


def test_messages_enums_and_maps_travel_as_json_text(shapes_bundle, make_client):
    point = {"x": 1.5, "label": "p"}
    body = {"parameters": {"method": "describe"},
            "inputs": [{"name": "point", "shape": [1], "datatype": "BYTES", "data": [json.dumps(point)]},
                       {"name": "colour", "shape": [1], "datatype": "BYTES", "data": ["GREEN"]},
                       {"name": "weights", "shape": [1], "datatype": "BYTES", "data": ['{"w": 0.5}']},
                       {"name": "many", "shape": [1], "datatype": "BYTES", "data": ['{"x": 2.0, "label": "q"}']}]}
    with make_client(shapes_bundle) as client:
        answer = client.post("/v2/models/Shapes/infer", json=body)
        assert answer.status_code == 200, answer.text
        outputs = {o["name"]: o for o in answer.json()["outputs"]}
        assert json.loads(outputs["point"]["data"][0]) == point and outputs["point"]["datatype"] == "BYTES"
        assert outputs["colour"] == {"name": "colour", "datatype": "INT32", "shape": [1], "data": [1]}
        assert json.loads(outputs["weights"]["data"][0]) == {"w": 0.5}
        assert outputs["many"]["shape"] == [2]
        assert [json.loads(m) for m in outputs["many"]["data"]] == [{"x": 2.0, "label": "q"}, point]
        by_number = {**body, "inputs": [*body["inputs"][:1], {"name": "colour", "shape": [1], "datatype": "INT32",
                                                             "data": [1]}, *body["inputs"][2:]]}
        assert client.post("/v2/models/Shapes/infer", json=by_number).json()["outputs"] == answer.json()["outputs"]
        not_json = {**body, "inputs": [{"name": "point", "shape": [1], "datatype": "BYTES", "data": ["{nope"]},
                                       *body["inputs"][1:]]}
        refused = client.post("/v2/models/Shapes/infer", json=not_json)
        assert refused.status_code == 400 and "'point'" in error_of(refused)["message"]
        assert "JSON text" in error_of(refused)["message"]
