"""Feedback: ground truth joined by request id with the answer given (by either of two workers), the running
quality (accuracy, MAE, RMSE), unknown and duplicate ids, bad input, and what /metrics shows of it."""

from __future__ import annotations

import http.client
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

from runner_image import feedback

from . import builders
from .conftest import auth

IRIS = load_iris()
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def iris_columns(tmp_path_factory) -> Path:
    return builders.iris_bundle(tmp_path_factory.mktemp("iris-columns"), repeated=True)


def call(port: int, method: str, path: str, body=None, headers=None) -> tuple[int, dict, dict]:
    """One request on its own connection: the two workers share the socket, so both take some."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, json.dumps(body) if body is not None else None,
                           {"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read() or b"null")
    finally:
        connection.close()


def eventually(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def quality_field(report: dict, name: str, **where) -> dict:
    groups = [g for g in report["groups"] if all(g[k] == v for k, v in where.items())]
    assert len(groups) == 1, report
    return groups[0]["fields"][name]


def predict(client, path: str, body: dict) -> tuple[str, dict]:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.headers["x-request-id"], response.json()


# ---------------------------------------------------------------- two workers

def test_feedback_joins_answers_given_by_either_worker(iris, start_runner, tmp_path):
    runner = start_runner(iris, workers=2, state_dir=tmp_path / "state")
    rows = list(range(0, 150, 1))
    answered = {}
    for i in rows:
        status, headers, body = call(runner.port, "POST", "/model/methods/classify",
                                     dict(zip(FEATURES, map(float, IRIS.data[i]), strict=True)))
        assert status == 200, body
        answered[headers["x-request-id"]] = (body["species"], int(IRIS.target[i]))
    ids = list(answered)
    results = []
    for start in range(0, len(ids), 10):  # at once, no pause: some answers may still be in the other's batch
        items = [{"request_id": i, "truth": answered[i][1]} for i in ids[start:start + 10]]
        status, _, body = call(runner.port, "POST", "/model/feedback", items)
        assert status == 200, body
        results.append(body)
    assert sum(r["joined"] for r in results) == 150
    assert all(r["unknown"] == [] and r["duplicates"] == [] for r in results)
    windows = tmp_path / "state" / "stats" / "windows"  # a worker writes its window every 0.5 s at most
    assert eventually(lambda: len([d for d in windows.iterdir() if d.is_dir()]) == 2), \
        "both workers should have answered"
    status, _, report = call(runner.port, "GET", "/model/quality", headers=auth())
    species = quality_field(report, "species", method="classify", generation=1, variant="live")
    correct = sum(a == t for a, t in answered.values())
    assert species == {"kind": "integer", "metric": "accuracy", "count": 150, "correct": correct,
                       "accuracy": correct / 150}
    assert report["feedback"] == {"joined": 150, "duplicate": 0, "unknown": 0}
    again = [{"request_id": i, "truth": answered[i][1]} for i in ids[:5]]
    status, _, body = call(runner.port, "POST", "/model/feedback", again)  # whichever worker: still duplicates
    assert body["duplicates"] == ids[:5] and body["joined"] == 0


# ---------------------------------------------------------------- in-process

def test_mae_and_rmse_for_a_float_output(scale_a, make_client):
    with make_client(scale_a) as client:
        errors = [0.5, -1.0, 0.25, 2.0, -0.75, 0.0]
        items = []
        for x, error in enumerate(errors):
            request_id, answer = predict(client, "/model/methods/scale", {"x": float(x)})
            assert answer == {"tag": "A", "y": 2.0 * x}  # python model: y is a double, tag a string
            items.append({"request_id": request_id, "truth": {"y": 2.0 * x + error, "tag": "A" if x else "B"}})
        response = client.post("/model/feedback", json=items)
        assert response.status_code == 200, response.text
        assert response.json()["joined"] == 6
        report = client.get("/model/quality", headers=auth()).json()
    y = quality_field(report, "y", method="scale")
    assert y["metric"] == "mae" and y["count"] == 6
    assert y["mae"] == pytest.approx(np.mean(np.abs(errors)), rel=1e-12)
    assert y["rmse"] == pytest.approx(math.sqrt(np.mean(np.square(errors))), rel=1e-12)
    tag = quality_field(report, "tag", method="scale")
    assert tag["metric"] == "accuracy" and tag["accuracy"] == pytest.approx(5 / 6)


def test_unknown_and_duplicate_ids_are_reported_and_counted_once(iris, make_client):
    with make_client(iris) as client:
        request_id, answer = predict(client, "/model/methods/classify", builders.IRIS_SAMPLE)
        assert answer == {"species": 0}
        first = client.post("/model/feedback", json=[{"request_id": request_id, "truth": 0},
                                                     {"request_id": request_id, "truth": 1},
                                                     {"request_id": "never-answered", "truth": 0}])
        assert first.status_code == 200, first.text
        assert first.json() == {"received": 3, "joined": 1, "duplicates": [request_id],
                                "unknown": ["never-answered"], "too_large": []}
        second = client.post("/model/feedback", json={"request_id": request_id, "truth": 1})
        assert second.json()["duplicates"] == [request_id] and second.json()["joined"] == 0
        report = client.get("/model/quality", headers=auth()).json()
    assert report["feedback"] == {"joined": 1, "duplicate": 2, "unknown": 1}
    species = quality_field(report, "species", method="classify")
    assert species["count"] == 1 and species["accuracy"] == 1.0  # the first truth (0) counted, once
    group = report["groups"][0]
    assert (group["joined"], group["duplicates"]) == (1, 2)


def test_a_callers_own_request_id_joins(iris, make_client):
    with make_client(iris) as client:
        response = client.post("/model/methods/classify", json=builders.IRIS_VIRGINICA,
                               headers={"X-Request-Id": "order-42:line-1"})
        assert response.headers["x-request-id"] == "order-42:line-1"
        answered = response.json()["species"]
        joined = client.post("/model/feedback", json={"request_id": "order-42:line-1", "truth": 2})
        assert joined.json()["joined"] == 1
        report = client.get("/model/quality", headers=auth()).json()
    assert quality_field(report, "species", method="classify")["correct"] == int(answered == 2)


def test_repeated_outputs_are_compared_element_by_element(iris_columns, make_client):
    rows = [0, 60, 120, 10, 70]
    with make_client(iris_columns) as client:
        body = {f: [float(IRIS.data[i][j]) for i in rows] for j, f in enumerate(FEATURES)}
        request_id, answer = predict(client, "/model/methods/classify", body)
        truth = [int(IRIS.target[i]) for i in rows]
        short = client.post("/model/feedback", json={"request_id": request_id, "truth": truth[:3]})
        assert short.status_code == 400
        assert "5 values for 'species'" in short.json()["error"]["message"]
        response = client.post("/model/feedback", json={"request_id": request_id, "truth": truth})
        assert response.json()["joined"] == 1
        report = client.get("/model/quality", headers=auth()).json()
    species = quality_field(report, "species", method="classify")
    assert species["count"] == 5
    assert species["correct"] == sum(a == t for a, t in zip(answer["species"], truth, strict=True))


def test_bad_feedback_gets_a_clear_400_and_records_nothing(iris, scale_a, make_client):
    with make_client(iris) as client:
        request_id, _ = predict(client, "/model/methods/classify", builders.IRIS_SAMPLE)
        cases = [
            (b"{not json", "not valid JSON"),
            (b"[]", "non-empty"),
            (json.dumps([{"request_id": request_id, "truth": 0}] * (feedback.MAX_ITEMS + 1)).encode(), "at most 1000"),
            (json.dumps([{"request_id": request_id, "truth": 0}, {"request_id": request_id}]).encode(),
             "items[1].truth is missing"),
            (json.dumps({"request_id": 12, "truth": 0}).encode(), "request_id must be"),
            (json.dumps({"request_id": "has spaces in it", "truth": 0}).encode(), "request_id must be"),
            (json.dumps({"request_id": request_id, "truth": 0, "weight": 2}).encode(), "unknown key(s) weight"),
            (json.dumps([{"request_id": request_id, "truth": {"species": "setosa"}}]).encode(),
             "items[0].truth.species: expected an integer"),
            (json.dumps({"request_id": request_id, "truth": 1.5}).encode(), "truth.species: expected an integer"),
            (json.dumps({"request_id": request_id, "truth": True}).encode(), "expected an integer, got True"),
            (json.dumps({"request_id": request_id, "truth": {"colour": 1}}).encode(), "no field 'colour'"),
            (json.dumps({"request_id": request_id, "truth": [0, 1]}).encode(), "expected an integer"),
            (json.dumps("just a string").encode(), "must be a JSON object"),
        ]
        for body, expected in cases:
            response = client.post("/model/feedback", content=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 400, (body[:80], response.text)
            assert expected in response.json()["error"]["message"], (body[:80], response.json())
        too_big = client.post("/model/feedback", content=b" " * (feedback.MAX_BODY_BYTES + 1))
        assert too_big.status_code == 413
        report = client.get("/model/quality", headers=auth()).json()
        assert report["feedback"] == {"joined": 0, "duplicate": 0, "unknown": 0} and report["groups"] == []
    with make_client(scale_a) as client:
        request_id, _ = predict(client, "/model/methods/scale", {"x": 1.0})
        response = client.post("/model/feedback", json={"request_id": request_id, "truth": 2.0})
        assert response.status_code == 400
        assert "several fields (tag, y)" in response.json()["error"]["message"]
        response = client.post("/model/feedback", json={"request_id": request_id, "truth": {"y": "two"}})
        assert "truth.y: expected a finite number" in response.json()["error"]["message"]


def test_answers_kept_for_feedback_are_bounded(iris, make_client):
    with make_client(iris, feedback_keep_answers=20) as client:
        ids = [predict(client, "/model/methods/classify", builders.IRIS_SAMPLE)[0] for _ in range(60)]
        stats = client.app.state.runtime.stats
        stats.flush_answers()
        stats.answers.prune()  # what every worker's housekeeping does every 2 s
        report = client.get("/model/quality", headers=auth()).json()
        assert report["answers_kept"] == 20
        response = client.post("/model/feedback", json=[{"request_id": ids[0], "truth": 0},
                                                        {"request_id": ids[-1], "truth": 0}])
    assert response.json()["unknown"] == [ids[0]] and response.json()["joined"] == 1


def test_answers_older_than_the_max_age_are_forgotten(iris, make_client):
    with make_client(iris, feedback_max_age=1.0) as client:
        old = predict(client, "/model/methods/classify", builders.IRIS_SAMPLE)[0]
        time.sleep(1.2)
        young = predict(client, "/model/methods/classify", builders.IRIS_SAMPLE)[0]
        stats = client.app.state.runtime.stats
        stats.flush_answers()
        stats.answers.prune()
        response = client.post("/model/feedback", json=[{"request_id": old, "truth": 0},
                                                        {"request_id": young, "truth": 0}])
    assert response.json()["unknown"] == [old] and response.json()["joined"] == 1


def test_a_request_id_used_twice_joins_its_latest_answer(iris, make_client):
    with make_client(iris) as client:
        for body in (builders.IRIS_SAMPLE, builders.IRIS_VIRGINICA):
            response = client.post("/model/methods/classify", json=body, headers={"X-Request-Id": "same-id"})
        latest = response.json()["species"]
        assert latest != 0  # the two answers differ: the test tells which one was joined
        client.post("/model/feedback", json={"request_id": "same-id", "truth": latest})
        report = client.get("/model/quality", headers=auth()).json()
    assert quality_field(report, "species", method="classify")["accuracy"] == 1.0


def test_metrics_show_scores_and_quality_but_not_the_distributions(make_client, tmp_path):
    bundle = builders.text_bundle(tmp_path / "text")
    with make_client(bundle) as client:
        reference = [{"text": "zebra-reference-value"}] * 40 + [{"text": "okapi-reference-value"}] * 40
        assert client.put("/model/statistics/reference", headers=auth(), json=reference).status_code == 200
        ids = [predict(client, "/model/methods/measure", {"text": "secret-input-value"})[0] for _ in range(40)]
        client.post("/model/feedback", json=[{"request_id": i, "truth": {"length": 18}} for i in ids])
        text = client.get("/metrics").text
    labels = '{field="text",generation="1",method="measure",side="input",variant="live"}'
    js = float(next(line for line in text.splitlines() if line.startswith(f"runner_drift_js{labels}")).split()[-1])
    assert js == pytest.approx(math.sqrt(math.log(2)))  # nothing in common with the reference
    assert 'runner_drift_drifted{field="text",generation="1",method="measure",side="input",variant="live"} 1.0' in text
    assert 'runner_feature_count{field="text",generation="1",method="measure",side="input",variant="live"} 40.0' in text
    assert 'runner_quality_accuracy{field="length",generation="1",method="measure",variant="live"} 1.0' in text
    assert 'runner_feedback_total{result="joined"} 40.0' in text
    for private in ("secret-input-value", "zebra-reference-value", "p95", "quantile"):
        assert private not in text
