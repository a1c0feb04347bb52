"""Dynamic batching (runner_image.batching, ModelSlot.predict_batch): one model call for the requests of
one event-loop turn, with answers equal to one call each, and a bad request failing only itself."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from runner_image.batching import Batcher
from runner_image.codec import message_from_dict, message_to_dict
from runner_image.errors import BadRequest, PredictionFailed
from runner_image.package import ExtractLimits
from runner_image.runtime import seed
from runner_image.slot import load_slot
from runner_image.state import StateDir

from . import builders
from .builders import IRIS_SAMPLE, IRIS_VIRGINICA

ROWS = [IRIS_SAMPLE, IRIS_VIRGINICA, {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 4.2,
                                      "petal_width": 1.5}] * 4


def _slot(bundle, state_dir):
    state = StateDir(state_dir)
    generation = seed(state, bundle, ExtractLimits())
    return load_slot(state.generation_dir(generation), generation)


@pytest.fixture(scope="module")
def iris_slot(iris, tmp_path_factory):
    return _slot(iris, tmp_path_factory.mktemp("batch-iris"))


@pytest.fixture(scope="module")
def columns_slot(tmp_path_factory):
    bundle = builders.iris_bundle(tmp_path_factory.mktemp("iris-columns"), repeated=True)
    return _slot(bundle, tmp_path_factory.mktemp("batch-columns"))


def _requests(slot, rows):
    return [message_from_dict(slot.rpc("classify").input, row) for row in rows]


def test_a_batch_answers_as_one_call_each(iris_slot):
    msgs = _requests(iris_slot, ROWS)
    alone = [message_to_dict(iris_slot.predict("classify", m)) for m in msgs]
    together = [message_to_dict(a) for a in iris_slot.predict_batch("classify", msgs)]
    assert together == alone
    assert {a["species"] for a in alone} == {0, 1, 2}  # the rows really differ: a shuffled split would show


def test_requests_of_several_rows_are_split_back_by_their_own_row_counts(columns_slot):
    rows = [{k: [r[k] for r in ROWS[:n]] for k in IRIS_SAMPLE} for n in (1, 3, 2, 5)]
    msgs = _requests(columns_slot, rows)
    alone = [message_to_dict(columns_slot.predict("classify", m)) for m in msgs]
    together = [message_to_dict(a) for a in columns_slot.predict_batch("classify", msgs)]
    assert together == alone
    assert [len(a["species"]) for a in together] == [1, 3, 2, 5]


def test_a_bad_request_in_a_batch_fails_alone(columns_slot):
    good = {k: [IRIS_SAMPLE[k]] for k in IRIS_SAMPLE}
    ragged = {**good, "sepal_length": [5.1, 6.0]}  # columns of unequal length: the caller's fault
    answers = columns_slot.predict_batch("classify", _requests(columns_slot, [good, ragged, good]))
    assert isinstance(answers[1], BadRequest) and "same length" in answers[1].message
    assert message_to_dict(answers[0]) == message_to_dict(answers[2]) == {"species": [0]}


def test_a_model_whose_joint_call_fails_is_asked_one_request_at_a_time(iris_slot, monkeypatch):
    calls = []
    real = iris_slot.model.call

    def refuses_more_than_one_row(method, spec, table, params):
        calls.append(table.n_rows)
        if table.n_rows > 1:
            raise ValueError("one row at a time")
        return real(method, spec, table, params)

    monkeypatch.setattr(iris_slot.model, "call", refuses_more_than_one_row)
    answers = iris_slot.predict_batch("classify", _requests(iris_slot, ROWS[:3]))
    assert calls == [3, 1, 1, 1]
    assert [message_to_dict(a)["species"] for a in answers] == [0, 2, 1]


def test_an_answer_that_does_not_split_by_rows_falls_back(iris_slot, monkeypatch):
    real = iris_slot.model.call

    def aggregates_when_stacked(method, spec, table, params):
        answer = real(method, spec, table, params)
        return answer[:1] if table.n_rows > 1 else answer  # one answer for several rows: cannot be split

    monkeypatch.setattr(iris_slot.model, "call", aggregates_when_stacked)
    answers = iris_slot.predict_batch("classify", _requests(iris_slot, ROWS[:3]))
    assert [message_to_dict(a)["species"] for a in answers] == [0, 2, 1]


def test_one_turn_of_the_event_loop_is_one_model_call(iris_slot, monkeypatch):
    sizes = []
    real = iris_slot.model.call

    def counting(method, spec, table, params):
        sizes.append(table.n_rows)
        return real(method, spec, table, params)

    monkeypatch.setattr(iris_slot.model, "call", counting)
    msgs = _requests(iris_slot, ROWS)

    async def all_at_once(batcher):
        return await asyncio.gather(*(batcher.predict(iris_slot, "classify", m) for m in msgs))

    answers = asyncio.run(all_at_once(Batcher(max_rows=64)))
    assert sizes == [len(ROWS)]
    assert [message_to_dict(a) for a in answers] == [message_to_dict(iris_slot.predict("classify", m)) for m in msgs]
    sizes.clear()
    asyncio.run(all_at_once(Batcher(max_rows=5)))
    assert sizes == [5, 5, 2]  # bounded: a full batch closes and the rest start the next
    sizes.clear()
    asyncio.run(all_at_once(Batcher(max_rows=1)))  # batching off
    assert sizes == [1] * len(ROWS)


def test_a_failing_model_fails_every_request_of_its_batch_with_its_own_error(scale_a, tmp_path):
    slot = _slot(builders.failing_bundle(tmp_path / "failing", fail_on_sample=True), tmp_path / "state")
    assert not slot.batchable  # python models run arbitrary code: never batched

    async def two():
        batcher = Batcher(max_rows=64)
        msg = message_from_dict(slot.rpc("scale").input, {"x": 1.0})
        return await asyncio.gather(batcher.predict(slot, "scale", msg), batcher.predict(slot, "scale", msg),
                                    return_exceptions=True)

    results = asyncio.run(two())
    assert all(isinstance(r, PredictionFailed) for r in results)


def test_concurrent_clients_of_a_real_runner_get_their_own_answers(iris, start_runner):
    runner = start_runner(iris, workers=1)
    expected = {}
    with httpx.Client(timeout=30) as client:
        for row in ROWS[:3]:
            expected[tuple(row.values())] = client.post(f"{runner.url}/model/methods/classify", json=row).json()
    wrong, errors = [], []

    def hammer(row):
        with httpx.Client(timeout=30) as client:
            for _ in range(40):
                response = client.post(f"{runner.url}/model/methods/classify", json=row)
                if response.status_code != 200:
                    errors.append(response.text)
                elif response.json() != expected[tuple(row.values())]:
                    wrong.append((row, response.json()))

    threads = [threading.Thread(target=hammer, args=(ROWS[i % 3],)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and not wrong
    metrics = httpx.get(f"{runner.url}/metrics").text
    count = next(line for line in metrics.splitlines() if line.startswith("runner_batch_requests_count"))
    assert float(count.split()[-1]) <= 12 * 40  # every request answered by some call, some of them shared
