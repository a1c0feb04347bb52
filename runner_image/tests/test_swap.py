"""Hot swap: model, proto and configuration replaced at run time, rollback, and history."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest

from runner_image.pack import pack_bundle
from runner_image.package import ExtractLimits
from runner_image.runtime import inherit, stage_package
from runner_image.slot import METADATA_FILE, PROTO_FILE

from . import builders
from .builders import IRIS_SAMPLE, IRIS_VIRGINICA
from .conftest import auth


def files_of(bundle, *names):
    parts = {"model": "modelpackage.zip", "proto": "model.proto", "metadata": "metadata.json"}
    return {name: (parts[name], (bundle / parts[name]).read_bytes()) for name in names}


def scale(client, x):
    response = client.post("/model/methods/scale", json={"x": x})
    assert response.status_code == 200, response.text
    return response.json()


def test_it_swaps_the_model_and_records_it(scale_a, scale_b, make_client):
    with make_client(scale_a) as client:
        assert scale(client, 1.5) == {"tag": "A", "y": 3.0}
        response = client.put("/model", headers=auth(), files=files_of(scale_b, "model"))
        assert response.status_code == 200, response.text
        swap = response.json()
        assert swap["generation"] == 2 and swap["previous_generation"] == 1
        assert swap["checked_with"] == "package sample" and swap["answers"] == {"scale": {"tag": "B", "y": 6.0}}
        assert set(swap["phases_ms"]) == {"build", "load_and_check", "others_loaded", "all_switched"}
        handled_ms = float(response.headers["server-timing"].removeprefix("app;dur="))
        assert handled_ms >= swap["duration_ms"]  # the request's handling, the upload's reading included
        assert "server-timing" not in client.post("/model/methods/scale", json={"x": 1.0}).headers  # admin only
        assert scale(client, 1.5) == {"tag": "B", "y": 4.5}
        model = client.get("/model").json()
        assert model["active"]["generation"] == 2
        assert model["active"]["sha256"]["model"] == swap["sha256"]["model"]
        assert [h["action"] for h in model["history"]] == ["model", "start"]


def test_it_swaps_to_a_model_with_another_interface(scale_a, text, make_client):
    with make_client(scale_a) as client:
        response = client.put("/model", headers=auth(), files=files_of(text, "model", "proto", "metadata"))
        assert response.status_code == 200, response.text
        answer = client.post("/model/methods/measure", json={"text": "four"})
        assert answer.json() == {"length": 4, "tag": "text"}
        assert client.post("/model/methods/scale", json={"x": 1}).status_code == 404
        assert "rpc measure" in client.get("/model/artifacts/protobuf").text
        assert client.get("/model/artifacts/metadata").json()["name"] == "TextMeasure"


def test_it_replaces_the_proto_alone_and_checks_it_with_the_given_sample(iris, make_client):
    renamed = (iris / "model.proto").read_text().replace("rpc classify", "rpc species")
    renamed = renamed.replace("(ClassifyIn)", "(ClassifyIn)")
    with make_client(iris) as client:
        response = client.put("/proto", headers=auth(), files={
            "proto": ("model.proto", renamed), "sample": ("sample.json", json.dumps(IRIS_VIRGINICA))})
        assert response.status_code == 200, response.text
        assert response.json()["checked_with"] == "request"
        assert client.post("/model/methods/species", json=IRIS_VIRGINICA).json() == {"species": 2}
        assert client.post("/model/methods/classify", json=IRIS_SAMPLE).status_code == 404


def test_it_rejects_a_proto_the_model_cannot_answer_and_keeps_serving(iris, make_client):
    # The model has 4 features; a proto with 2 input fields makes it fail its sample.
    proto = (iris / "model.proto").read_text()
    narrow = proto.replace("  double petal_length = 3;\n  double petal_width = 4;\n", "")
    with make_client(iris) as client:
        sample = {"sepal_length": 5.1, "sepal_width": 3.5}
        response = client.put("/proto", headers=auth(), files={
            "proto": ("model.proto", narrow), "sample": ("sample.json", json.dumps(sample))})
        assert response.status_code == 422, response.text
        assert "sample" in response.json()["error"]["message"]
        assert client.post("/model/methods/classify", json=IRIS_SAMPLE).json() == {"species": 0}
        assert client.get("/model").json()["active"]["generation"] == 1


def configurable_bundle(out):
    def scale(x: float, config: dict):
        return {"tag": "cfg", "y": x * config.get("k", 1)}

    return pack_bundle(model=scale, flavour="python", name="Scaler", method="scale", inputs="x:double",
                       outputs="tag:string,y:double", out=out, sample={"x": 1.0}, params={"k": 2})


@pytest.mark.parametrize("as_multipart", [True, False])
def test_it_replaces_the_configuration(tmp_path, make_client, as_multipart):
    config = {"methods": {}, "params": {"k": 10}}
    with make_client(configurable_bundle(tmp_path / "b")) as client:
        assert scale(client, 3) == {"tag": "cfg", "y": 6.0}
        if as_multipart:
            response = client.put("/model/configuration", headers=auth(),
                                  files={"modelConfig": ("config.json", json.dumps(config))})
        else:
            response = client.put("/model/configuration", headers=auth(), json=config)
        assert response.status_code == 200, response.text
        assert scale(client, 3) == {"tag": "cfg", "y": 30.0}
        assert client.get("/model").json()["active"]["config"] == config


def test_it_rejects_a_configuration_that_breaks_the_model(iris, make_client):
    # predict_proba returns three numbers where the proto has one int64: the sample check fails.
    config = {"methods": {"classify": {"call": "predict_proba"}}}
    with make_client(iris) as client:
        response = client.put("/model/configuration", headers=auth(), json=config)
        assert response.status_code == 422, response.text
        assert client.post("/model/methods/classify", json=IRIS_SAMPLE).json() == {"species": 0}


def test_it_rolls_back_to_the_previous_and_to_a_chosen_generation(scale_a, scale_b, text, make_client):
    with make_client(scale_a) as client:
        client.put("/model", headers=auth(), files=files_of(scale_b, "model"))
        client.put("/model", headers=auth(), files=files_of(text, "model", "proto", "metadata"))
        back = client.post("/model/rollback", headers=auth())
        assert back.status_code == 200, back.text
        assert back.json()["generation"] == 2 and back.json()["action"] == "rollback"
        assert scale(client, 1) == {"tag": "B", "y": 3.0}
        chosen = client.post("/model/rollback", headers=auth(), json={"generation": 1})
        assert chosen.status_code == 200, chosen.text
        assert scale(client, 1) == {"tag": "A", "y": 2.0}
        actions = [h["action"] for h in client.get("/model").json()["history"]]
        assert actions == ["rollback", "rollback", "model", "model", "start"]


def test_it_keeps_only_the_configured_number_of_generations(scale_a, scale_b, make_client):
    with make_client(scale_a, keep_generations=2) as client:
        for bundle in (scale_b, scale_a, scale_b):
            assert client.put("/model", headers=auth(), files=files_of(bundle, "model")).status_code == 200
        state = client.app.state.runtime.state
        assert state.existing_generations() == [3, 4]
        gone = client.post("/model/rollback", headers=auth(), json={"generation": 1})
        assert gone.status_code == 404


def test_it_refuses_a_second_swap_while_one_runs(scale_a, scale_b, make_client):
    with make_client(scale_a) as client:
        runtime = client.app.state.runtime
        with runtime.state.swap_lock():  # another worker leading a swap holds this lock
            response = client.put("/model", headers=auth(), files=files_of(scale_b, "model"))
        assert response.status_code == 409
        assert scale(client, 1)["tag"] == "A"


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_it_transforms_with_a_new_model_and_installs_it(scale_a, text, make_client, kind):
    data = "text\nabcdef\n" if kind == "csv" else json.dumps({"text": "abcdef"})
    part = "csvFile" if kind == "csv" else "jsonFile"
    endpoint = "/transformCSV" if kind == "csv" else "/transformJSON"
    with make_client(scale_a) as client:
        response = client.post(endpoint, headers={**auth(), "Accept": "application/json"},
                               files={**files_of(text, "model", "proto", "metadata"), part: ("data", data)})
        assert response.status_code == 200, response.text
        assert response.json() == {"length": 6, "tag": "text"}
        assert client.post("/model/methods/measure", json={"text": "ab"}).json()["length"] == 2
        assert client.get("/model").json()["history"][0]["action"] == "transform"


def test_it_does_not_install_a_transform_whose_data_fails(scale_a, tmp_path, make_client):
    failing = builders.failing_bundle(tmp_path / "failing")
    with make_client(scale_a) as client:
        response = client.post("/transformJSON", headers=auth(), files={
            **files_of(failing, "model"), "jsonFile": ("data.json", json.dumps({"x": -1}))})
        assert response.status_code == 422, response.text
        assert "negative input" in response.json()["error"]["message"]
        assert scale(client, 1) == {"tag": "A", "y": 2.0}


def test_a_worker_follows_another_workers_swap_while_its_periodic_steps_are_stuck(scale_a, scale_b, make_client):
    """Following swaps is all the swap watcher does: a statistics flush (100-500 ms under load, measured) in the
    same thread held a ring's answer back, and with it every swap."""
    with make_client(scale_a) as client:
        runtime = client.app.state.runtime
        inside, release = threading.Event(), threading.Event()
        runtime.stats.flush = lambda *args, **kwargs: (inside.set(), release.wait(60))
        try:
            assert inside.wait(10), "the periodic steps never ran"
            candidate, _, _ = runtime.stage("model", package_builder(scale_b), None)

            # What another worker leading a swap writes: the generation staged, then active.
            runtime.state.set_control(active=runtime.active().generation, staged=candidate.generation)
            assert wait_for(lambda: own_report(runtime).get("prepared") == candidate.generation)
            runtime.state.set_control(active=candidate.generation, staged=None)
            assert wait_for(lambda: own_report(runtime).get("active") == candidate.generation)
            assert scale(client, 1.0) == {"tag": "B", "y": 3.0}
            assert inside.is_set() and not release.is_set()  # all of it while the flush was stuck
        finally:
            release.set()


def package_builder(bundle):
    def build(directory, current):
        shutil.copyfile(bundle / "modelpackage.zip", directory / ".incoming.zip")
        stage_package(directory, directory / ".incoming.zip", ExtractLimits())
        inherit(directory, current, (PROTO_FILE, METADATA_FILE))

    return build


def own_report(runtime) -> dict:
    return runtime.state.live_workers().get(runtime.pid, {})


def wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()
