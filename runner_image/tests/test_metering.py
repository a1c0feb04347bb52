"""Metering in a real `serve --workers 2` process: the limit holds across workers, renewal and
revocation take effect on every worker without a restart, and usage reads back right."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict

from runner_image.slot import PACKAGE_FILE, file_sha256

from .conftest import auth
from .entitlements import DEPLOYMENT, Licensor, iso


@pytest.fixture(scope="module")
def licensor() -> Licensor:
    return Licensor()


def metering_env(licensor: Licensor) -> dict:
    return {"RUNNER_REQUIRE_ENTITLEMENT": "1", "RUNNER_DEPLOYMENT_ID": DEPLOYMENT,
            "RUNNER_ENTITLEMENT_KEYS": licensor.keys_env()}


def burst(url: str, n: int, threads: int = 12) -> list[httpx.Response]:
    """`n` predictions at once, each on a new connection, so the kernel spreads them over the workers."""
    answers: list[httpx.Response] = []
    lock = threading.Lock()
    todo = iter(range(n))

    def run():
        for i in todo:
            response = httpx.post(f"{url}/model/methods/scale", json={"x": float(i)}, timeout=30)
            with lock:
                answers.append(response)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return answers


def outcomes(answers: list[httpx.Response]) -> Counter:
    return Counter(r.status_code if r.status_code == 200 else r.json()["error"]["code"] for r in answers)


def served_by_worker(state_dir: Path) -> dict[int, float]:
    """Predictions answered 200, per worker pid, from prometheus' per-process files."""
    served = {}
    for path in (state_dir / "metrics").glob("counter_*.db"):
        samples = [(json.loads(key), value) for key, value, *_ in MmapedDict.read_all_values_from_file(str(path))]
        served[int(path.stem.split("_")[1])] = sum(  # a key is [metric, sample name, labels, help]
            value for key, value in samples
            if key[1] == "runner_requests_total" and key[2] == {"route": "predict", "status": "200"})
    return served


def worker_pids(state_dir: Path) -> set[int]:
    return {int(p.stem) for p in (state_dir / "workers").glob("*.json")}


def put(runner, document) -> httpx.Response:
    return httpx.put(f"{runner.url}/model/entitlement", headers=auth(), json=document, timeout=30)


def usage(runner) -> dict:
    return httpx.get(f"{runner.url}/model/usage", headers=auth(), timeout=30).json()


def test_the_limit_holds_across_workers_and_renewal_and_revocation_need_no_restart(
        scale_a, start_runner, tmp_path, licensor):
    state_dir = tmp_path / "metered-state"
    runner = start_runner(scale_a, state_dir=state_dir, workers=2, env=metering_env(licensor))
    model = file_sha256(scale_a / PACKAGE_FILE)
    pids = worker_pids(state_dir)
    assert len(pids) == 2

    # Nothing installed yet: every worker refuses.
    assert outcomes(burst(runner.url, 6)) == {"agreement_not_found": 6}

    # A limit of 40: exactly 40 answers, from both workers, then usage_exhausted.
    first = licensor.document([model], predictions=40)
    assert put(runner, first).json() == {"id": first["entitlement"]["id"], "predictions": 40,
                                         "not_after": first["entitlement"]["not_after"]}
    assert outcomes(burst(runner.url, 70)) == {200: 40, "usage_exhausted": 30}
    served = served_by_worker(state_dir)
    assert sum(served.values()) == 40 and all(served[pid] > 0 for pid in pids), served
    read = usage(runner)
    assert (read["used"], read["refused"], read["limit"]) == (40, 30, 40)
    assert read["entitlement"] == first["entitlement"] and read["previous"] == []
    assert httpx.get(f"{runner.url}/model/entitlement", headers=auth()).json() == read

    # A renewal: a new document, taken at once by both workers, the same processes.
    renewed = licensor.document([model], predictions=25, issued=iso(_issued(first) + 1))
    assert put(runner, renewed).status_code == 200
    assert outcomes(burst(runner.url, 30)) == {200: 25, "usage_exhausted": 5}
    assert worker_pids(state_dir) == pids
    assert httpx.get(f"{runner.url}/model").json()["workers"] == 2
    read = usage(runner)
    assert (read["used"], read["refused"]) == (25, 5)
    assert read["entitlement"]["id"] == renewed["entitlement"]["id"]
    assert [(p["id"], p["used"], p["refused"], p["reason"]) for p in read["previous"]] == [
        (first["entitlement"]["id"], 40, 30, "replaced")]

    # The first document again (a replay of an older one) is refused; the renewal keeps counting.
    replay = put(runner, first)
    assert replay.status_code == 409 and replay.json()["error"]["details"]["reason"] == "replay"
    assert usage(runner)["entitlement"]["id"] == renewed["entitlement"]["id"]

    # Metrics: the shared count and the refusals, by code.
    scraped = httpx.get(f"{runner.url}/metrics").text
    assert "runner_entitlement_used 25.0" in scraped
    assert 'runner_entitlement_refused_total{code="usage_exhausted"} 35.0' in scraped
    assert 'runner_entitlement_refused_total{code="agreement_not_found"} 6.0' in scraped

    # Revocation: every worker refuses from the moment DELETE answers.
    third = licensor.document([model], predictions=100, issued=iso(_issued(renewed) + 1))
    put(runner, third)
    assert outcomes(burst(runner.url, 10)) == {200: 10}
    revoked = httpx.delete(f"{runner.url}/model/entitlement", headers=auth())
    assert revoked.json() == {"revoked": third["entitlement"]["id"], "used": 10}
    assert outcomes(burst(runner.url, 20)) == {"right_to_use_revoked": 20}
    read = usage(runner)
    assert read["entitlement"] is None and read["revoked"]["id"] == third["entitlement"]["id"]
    assert [(p["id"], p["used"], p["reason"]) for p in read["previous"]][:2] == [
        (third["entitlement"]["id"], 10, "revoked"), (renewed["entitlement"]["id"], 25, "replaced")]
    assert worker_pids(state_dir) == pids


def _issued(document) -> float:
    return datetime.fromisoformat(document["entitlement"]["issued"]).timestamp()


def test_the_count_survives_a_restart(scale_a, start_runner, tmp_path, licensor):
    state_dir = tmp_path / "kept-state"
    model = file_sha256(scale_a / PACKAGE_FILE)
    runner = start_runner(scale_a, state_dir=state_dir, workers=2, env=metering_env(licensor))
    put(runner, licensor.document([model], predictions=8))
    assert outcomes(burst(runner.url, 5)) == {200: 5}
    runner.stop()
    again = start_runner(scale_a, state_dir=state_dir, workers=2, env=metering_env(licensor))
    assert outcomes(burst(again.url, 5)) == {200: 3, "usage_exhausted": 2}


def test_a_tampered_document_is_refused_with_the_reason(scale_a, start_runner, licensor):
    runner = start_runner(scale_a, workers=2, env=metering_env(licensor))
    document = licensor.document([file_sha256(scale_a / PACKAGE_FILE)], predictions=10)
    document["entitlement"]["predictions"] = 10_000_000
    response = put(runner, document)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_entitlement" and error["details"]["reason"] == "signature"
    assert "changed after it was signed" in error["message"]
    assert outcomes(burst(runner.url, 3)) == {"agreement_not_found": 3}


def test_nothing_is_metered_without_require_entitlement(scale_a, start_runner, licensor):
    env = {"RUNNER_DEPLOYMENT_ID": DEPLOYMENT, "RUNNER_ENTITLEMENT_KEYS": licensor.keys_env()}
    runner = start_runner(scale_a, workers=2, env=env)
    assert outcomes(burst(runner.url, 20)) == {200: 20}
    refused = put(runner, licensor.document([file_sha256(scale_a / PACKAGE_FILE)]))
    assert refused.status_code == 409 and "RUNNER_REQUIRE_ENTITLEMENT" in refused.json()["error"]["message"]
    assert usage(runner) == {"metered": False, "entitlement": None, "revoked": None, "problem": None, "used": 0,
                             "refused": 0, "limit": None, "previous": []}
    assert "\nrunner_entitlement_used " not in httpx.get(f"{runner.url}/metrics").text


def test_a_metering_runner_without_keys_does_not_start(scale_a, start_runner):
    with pytest.raises(RuntimeError, match="needs RUNNER_DEPLOYMENT_ID and RUNNER_ENTITLEMENT_KEYS"):
        start_runner(scale_a, env={"RUNNER_REQUIRE_ENTITLEMENT": "1"})
