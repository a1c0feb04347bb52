"""Swaps in a real `serve` process with several workers, under concurrent load."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from . import builders
from .conftest import Load, auth


def put_model(runner, bundle: Path) -> httpx.Response:
    files = {"model": ("modelpackage.zip", (bundle / "modelpackage.zip").read_bytes())}
    return httpx.put(f"{runner.url}/model", headers=auth(), files=files, timeout=60)


def worker_generations(state_dir: Path) -> set:
    return {json.loads(p.read_text())["active"] for p in (state_dir / "workers").glob("*.json")}


def fresh_connection_tags(url: str, n: int = 12) -> set[str]:
    """New connections are spread over the workers by the kernel; each must answer the same model."""
    return {httpx.post(f"{url}/model/methods/scale", json={"x": 1.0}).json()["tag"] for _ in range(n)}


def test_it_swaps_under_load_with_zero_failed_requests(scale_a, scale_b, start_runner, tmp_path):
    runner = start_runner(scale_a, workers=2)
    state_dir = tmp_path / "runner-state-0"
    with Load(runner.url) as load:
        time.sleep(0.3)
        for i in range(10):
            bundle, tag = (scale_b, "B") if i % 2 == 0 else (scale_a, "A")
            response = put_model(runner, bundle)
            assert response.status_code == 200, response.text
            assert response.json()["workers"] == 2
            generation = response.json()["generation"]
            # The call returned: every worker already serves the new model.
            assert worker_generations(state_dir) == {generation}
            assert fresh_connection_tags(runner.url) == {tag}
    assert load.errors == []
    assert len(load.answers) > 100
    assert load.tags() == {"A", "B"}  # each answer wholly one model's


def test_it_rejects_a_bad_candidate_on_every_worker(scale_a, start_runner, tmp_path):
    runner = start_runner(scale_a, workers=2)
    failing = builders.failing_bundle(tmp_path / "failing", fail_on_sample=True)
    response = put_model(runner, failing)
    assert response.status_code == 422, response.text
    assert fresh_connection_tags(runner.url) == {"A"}
    assert worker_generations(tmp_path / "runner-state-0") == {1}


def test_it_keeps_the_swapped_model_across_a_restart(scale_a, scale_b, start_runner, tmp_path):
    state_dir = tmp_path / "kept-state"
    runner = start_runner(scale_a, state_dir=state_dir)
    assert put_model(runner, scale_b).status_code == 200
    runner.stop()
    again = start_runner(scale_a, state_dir=state_dir)
    assert fresh_connection_tags(again.url, n=2) == {"B"}
    assert httpx.get(f"{again.url}/model").json()["active"]["generation"] == 2


def once_only_bundle(out: Path, marker: Path) -> Path:
    """A model that loads in the first process that tries and fails in any other one."""
    import cloudpickle

    from runner_image.pack import pack_bundle

    def rebuild(marker_path):
        import os

        os.close(os.open(marker_path, os.O_CREAT | os.O_EXCL))  # FileExistsError on a second load

        def scale(x: float):
            return {"tag": "once", "y": x}

        return scale

    class OnceOnly:
        def __reduce__(self):
            return rebuild, (str(marker),)

    pickled = out.parent / "once.pkl"
    pickled.write_bytes(cloudpickle.dumps(OnceOnly()))
    return pack_bundle(model=pickled, flavour="python", name="Scaler", method="scale", inputs="x:double",
                       outputs="tag:string,y:double", out=out, check=False)


def test_it_aborts_everywhere_when_another_worker_cannot_load_the_candidate(scale_a, start_runner, tmp_path):
    runner = start_runner(scale_a, workers=2)
    bundle = once_only_bundle(tmp_path / "once", tmp_path / "loaded-once")
    response = put_model(runner, bundle)
    assert response.status_code == 422, response.text
    # The workers load the candidate at the same time: whichever comes second fails, the leader or another.
    message = response.json()["error"]["message"]
    assert "could not load the candidate" in message or "failed to load" in message
    assert "FileExistsError" in message
    assert fresh_connection_tags(runner.url) == {"A"}
    assert worker_generations(tmp_path / "runner-state-0") == {1}


def test_it_logs_swaps_from_worker_processes(scale_a, scale_b, start_runner):
    runner = start_runner(scale_a, workers=2)
    assert put_model(runner, scale_b).status_code == 200
    assert "swapped to generation 2 (model)" in runner.log_path.read_text()


def test_a_rollback_reaches_every_worker(scale_a, scale_b, start_runner, tmp_path):
    runner = start_runner(scale_a, workers=2)
    assert put_model(runner, scale_b).status_code == 200
    assert fresh_connection_tags(runner.url) == {"B"}
    response = httpx.post(f"{runner.url}/model/rollback", headers=auth(), json={"generation": 1}, timeout=60)
    assert response.status_code == 200, response.text
    assert set(response.json()["phases_ms"]) == {"load_and_check", "others_loaded", "all_switched"}
    assert fresh_connection_tags(runner.url) == {"A"}
    assert worker_generations(tmp_path / "runner-state-0") == {1}
