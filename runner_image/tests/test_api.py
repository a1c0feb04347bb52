"""The read-side API: artifacts, conversions, Open Inference Protocol, metrics, OpenAPI."""

from __future__ import annotations

import json

import httpx
import pytest

from runner_image.protos import compile_proto

from .builders import IRIS_SAMPLE, IRIS_VIRGINICA

IRIS_CSV = "sepal_length,sepal_width,petal_length,petal_width\n6.7,3.0,5.2,2.3\n"
PROTOBUF = "application/vnd.google.protobuf"


def iris_messages(iris):
    return compile_proto((iris / "model.proto").read_text()).methods["classify"]


def test_it_serves_the_artifacts_it_was_given(iris, make_client):
    with make_client(iris) as client:
        assert client.get("/model/artifacts/metadata").json() == json.loads((iris / "metadata.json").read_text())
        proto = client.get("/model/artifacts/protobuf")
        assert proto.text == (iris / "model.proto").read_text()
        assert proto.headers["content-type"].startswith("text/plain")


def test_it_answers_protobuf_with_protobuf_and_json_when_asked(iris, make_client):
    rpc = iris_messages(iris)
    body = rpc.input(**IRIS_VIRGINICA).SerializeToString()
    with make_client(iris) as client:
        binary = client.post("/model/methods/classify", content=body, headers={"Content-Type": PROTOBUF})
        assert binary.headers["content-type"] == PROTOBUF
        assert rpc.output.FromString(binary.content).species == 2
        as_json = client.post("/model/methods/classify", content=body,
                              headers={"Content-Type": PROTOBUF, "Accept": "application/json"})
        assert as_json.json() == {"species": 2}
        charset = client.post("/model/methods/classify", content=json.dumps(IRIS_SAMPLE),
                              headers={"Content-Type": "application/json; charset=utf-8"})
        assert charset.json() == {"species": 0}


@pytest.mark.parametrize("own_proto", [False, True])
def test_it_turns_csv_into_a_serialized_message(iris, make_client, own_proto):
    rpc = iris_messages(iris)
    files = {"csvFile": ("data.csv", IRIS_CSV)}
    if own_proto:
        other = (iris / "model.proto").read_text().replace("package irisclassifier", "package other")
        files["proto"] = ("other.proto", other)
    with make_client(iris) as client:
        response = client.post("/getBinary" if own_proto else "/getBinaryDefault", files=files,
                               data={"operation": "classify"})
        assert response.status_code == 200, response.text
        assert rpc.input.FromString(response.content) == rpc.input(**IRIS_VIRGINICA)
        # A proto sent to /getBinary is used once: the served proto does not change.
        assert "package irisclassifier" in client.get("/model/artifacts/protobuf").text


@pytest.mark.parametrize("own_proto", [False, True])
def test_it_turns_json_into_a_serialized_message(iris, make_client, own_proto):
    rpc = iris_messages(iris)
    files = {"jsonFile": ("data.json", json.dumps(IRIS_VIRGINICA))}
    if own_proto:
        files["proto"] = ("model.proto", (iris / "model.proto").read_text())
    with make_client(iris) as client:
        response = client.post("/getBinaryJSON" if own_proto else "/getBinaryJSONDefault", files=files)
        assert response.status_code == 200, response.text
        assert rpc.input.FromString(response.content) == rpc.input(**IRIS_VIRGINICA)


def test_it_predicts_csv_and_json_with_the_current_model(iris, make_client):
    rpc = iris_messages(iris)
    with make_client(iris) as client:
        csv_answer = client.post("/transformCSVDefault", files={"csvFile": ("d.csv", IRIS_CSV)})
        assert rpc.output.FromString(csv_answer.content).species == 2
        json_answer = client.post("/transformJSONDefault", headers={"Accept": "application/json"},
                                  files={"jsonFile": ("d.json", json.dumps(IRIS_SAMPLE))})
        assert json_answer.json() == {"species": 0}


def test_it_predicts_several_rows_from_csv_with_repeated_fields(tmp_path, make_client):
    from . import builders

    bundle = builders.iris_bundle(tmp_path / "repeated", repeated=True)
    rows = IRIS_CSV + "5.1,3.5,1.4,0.2\n"
    with make_client(bundle) as client:
        response = client.post("/transformCSVDefault", headers={"Accept": "application/json"},
                               files={"csvFile": ("d.csv", rows)})
        assert response.json() == {"species": [2, 0]}


def test_it_speaks_the_open_inference_protocol(iris, make_client):
    with make_client(iris) as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.get("/v2").json()["name"] == "acumos-runner"
        meta = client.get("/v2/models/IrisClassifier").json()
        assert [i["name"] for i in meta["inputs"]] == list(IRIS_SAMPLE)
        assert meta["inputs"][0] == {"name": "sepal_length", "datatype": "FP64", "shape": [1]}
        assert meta["outputs"] == [{"name": "species", "datatype": "INT64", "shape": [1]}]
        assert client.get("/v2/models/IrisClassifier/ready").json()["ready"] is True


def test_it_infers_from_named_tensors_and_from_one_matrix(iris, make_client):
    named = {"id": "r1", "inputs": [{"name": k, "shape": [1], "datatype": "FP64", "data": [v]}
                                    for k, v in IRIS_VIRGINICA.items()]}
    matrix = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                          "data": [list(IRIS_SAMPLE.values())]}]}
    with make_client(iris) as client:
        first = client.post("/v2/models/IrisClassifier/infer", json=named).json()
        assert first["id"] == "r1" and first["model_name"] == "IrisClassifier"
        assert first["outputs"] == [{"name": "species", "datatype": "INT64", "shape": [1], "data": [2]}]
        second = client.post("/v2/models/IrisClassifier/infer", json=matrix).json()
        assert second["outputs"][0]["data"] == [0]


def test_it_counts_requests_in_prometheus_metrics(iris, make_client):
    with make_client(iris) as client:
        client.post("/model/methods/classify", json=IRIS_SAMPLE)
        client.post("/model/methods/classify", json={"bad": 1})
        text = client.get("/metrics").text
    assert 'runner_requests_total{route="predict",status="200"}' in text
    assert 'runner_requests_total{route="predict",status="400"}' in text
    assert "runner_model_generation" in text


def test_it_aggregates_metrics_across_worker_processes(iris, start_runner):
    runner = start_runner(iris, workers=2)
    for _ in range(10):
        httpx.post(f"{runner.url}/model/methods/classify", json=IRIS_SAMPLE)
    text = httpx.get(f"{runner.url}/metrics").text
    line = next(x for x in text.splitlines() if x.startswith('runner_requests_total{route="predict",status="200"}'))
    assert float(line.split()[-1]) == 10.0


def test_it_describes_the_served_model_in_openapi(iris, make_client):
    with make_client(iris) as client:
        doc = client.get("/openapi.json").json()
        operation = doc["paths"]["/model/methods/classify"]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema["properties"]["sepal_length"] == {"type": "number", "format": "double"}
        assert doc["paths"]["/model"]["put"]["security"] == [{"adminToken": []}]
        page = client.get("/docs")
        assert page.status_code == 200 and "/model/methods/classify" in page.text
        assert client.get("/", follow_redirects=False).headers["location"] == "/docs"


def test_it_shows_the_active_model_and_its_history(iris, make_client):
    with make_client(iris) as client:
        model = client.get("/model").json()
    assert model["active"]["flavour"] == "sklearn" and model["active"]["methods"] == ["classify"]
    assert len(model["active"]["sha256"]["model"]) == 64
    assert model["history"][0]["action"] == "start"
