"""Canary and shadow candidates (runner_image.variants): routing shares and stickiness, shadow answers
recorded and never returned, a full shadow queue, promotion and abort under load, merged counts, and
everything the admin API refuses. Scale models tell the variants apart: A answers x*2, B x*3."""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from runner_image.pack import pack_bundle

from . import builders
from .conftest import Load, auth

FACTOR = {"A": 2.0, "B": 3.0, "failing": 1.0, "slow": 2.0}


# ---------------------------------------------------------------- helpers

def parts_of(bundle: Path, *names: str) -> dict:
    files = {"model": "modelpackage.zip", "proto": "model.proto", "metadata": "metadata.json"}
    return {name: (files[name], (bundle / files[name]).read_bytes()) for name in names}


def put_candidate(http, bundle: Path, mode: str, weight, *, sticky=None, parts=("model",), headers=None):
    """`http`: an in-process TestClient, or a running runner's base URL."""
    data = {"mode": mode, "weight": str(weight)}
    if sticky is not None:
        data["sticky"] = str(sticky).lower()
    return _call(http, "put", "/model/candidate", headers=auth() if headers is None else headers,
                 files=parts_of(bundle, *parts), data=data)


def _call(http, verb: str, path: str, **kwargs):
    if isinstance(http, str):
        return fresh_connections().request(verb.upper(), f"{http}{path}", **kwargs)
    return getattr(http, verb)(path, **kwargs)


@functools.cache
def fresh_connections() -> httpx.Client:
    """A client whose every request opens a new connection (Connection: close), which the kernel gives to
    any of the workers. Made once: a new httpx client costs 0.1 s (its TLS context) on a busy machine."""
    return httpx.Client(timeout=60, headers={"Connection": "close"})


@pytest.fixture(autouse=True, scope="module")
def _close_fresh_connections():
    yield
    fresh_connections().close()
    fresh_connections.cache_clear()


def candidate(http) -> dict:
    response = _call(http, "get", "/model/candidate", headers=auth())
    assert response.status_code == 200, response.text
    return response.json()


def wait_until(check, timeout: float = 30.0, what: str = "condition"):
    """Poll `check` until it returns something true (counts reach the state dir every quarter second)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def scale(http, x: float, key: str | None = None) -> dict:
    headers = {"X-Routing-Key": key} if key else {}
    response = _call(http, "post", "/model/methods/scale", json={"x": x}, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["y"] == x * FACTOR[answer["tag"]], answer  # wholly one model's answer
    return answer


def fresh_tags(url: str, n: int = 12) -> set[str]:
    """Tags from new connections, which the kernel spreads over the workers."""
    return {scale(url, 1.0)["tag"] for _ in range(n)}


def hammer(url: str, total: int, threads: int = 6, key=None) -> list[dict]:
    """`total` predictions from several threads, each on its own keep-alive connection."""
    answers: list[dict] = []
    errors: list[str] = []

    def run(seed: int) -> None:
        with httpx.Client(timeout=30) as client:
            for i in range(seed, total, threads):
                try:
                    answers.append(scale(client_url(client, url), float(i)))
                except (AssertionError, httpx.HTTPError) as exc:
                    errors.append(str(exc))

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert errors == []
    return answers


class client_url:  # noqa: N801 (a tiny adapter: scale() on a keep-alive client)
    def __init__(self, client: httpx.Client, url: str):
        self.client, self.url = client, url

    def post(self, path, **kwargs):
        return self.client.post(f"{self.url}{path}", **kwargs)


def binomial_tolerance(n: int, p: float, sigmas: float = 5.0) -> float:
    return sigmas * math.sqrt(n * p * (1 - p))


def history_actions(http) -> list[str]:
    return [entry["action"] for entry in _call(http, "get", "/model").json()["history"]]


def worker_generations(state_dir: Path) -> set:
    return {json.loads(p.read_text())["active"] for p in (state_dir / "workers").glob("*.json")}


def slow_bundle(out: Path, seconds: float) -> Path:
    """The scale interface, answering like A but taking `seconds` per call."""

    def scale_slowly(x: float):
        import time as clock

        clock.sleep(seconds)
        return {"tag": "slow", "y": x * 2.0}

    return pack_bundle(model=scale_slowly, flavour="python", name="Scaler", method="scale", inputs="x:double",
                       outputs="tag:string,y:double", out=out, sample={"x": 2.0})


def slow_loading_bundle(out: Path, seconds: float) -> Path:
    """A model that takes `seconds` to load (unpickle): a swap to it holds the swap lock that long."""
    import cloudpickle

    def rebuild(delay):
        import time as clock

        clock.sleep(delay)

        def scale_b(x: float):
            return {"tag": "B", "y": x * 3.0}

        return scale_b

    class SlowToLoad:
        def __reduce__(self):
            return rebuild, (seconds,)

    pickled = out.parent / "slow-to-load.pkl"
    pickled.write_bytes(cloudpickle.dumps(SlowToLoad()))
    return pack_bundle(model=pickled, flavour="python", name="Scaler", method="scale", inputs="x:double",
                       outputs="tag:string,y:double", out=out, check=False)


def scraped(runner, line_start: str) -> float | None:
    """One sample's value from the runner's /metrics, or None."""
    for line in fresh_connections().get(f"{runner.url}/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


# ---------------------------------------------------------------- canary

def test_a_canary_takes_its_weight_of_the_traffic_on_every_worker(scale_a, scale_b, start_runner, tmp_path):
    runner = start_runner(scale_a, workers=2)
    response = put_candidate(runner.url, scale_b, "canary", 30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["candidate"]["mode"] == "canary" and body["candidate"]["weight"] == 30
    assert body["workers"] == {"total": 2, "holding": 2}  # answered once every worker holds it
    assert body["answers"] == {"scale": {"tag": "B", "y": 6.0}}

    n = 3000
    answers = hammer(runner.url, n)
    to_b = Counter(answer["tag"] for answer in answers)["B"]
    assert abs(to_b - 0.3 * n) <= binomial_tolerance(n, 0.3), f"{to_b} of {n} went to the canary"

    # Every worker's counts, merged: what the clients saw, to the request.
    def merged():
        figures = candidate(runner.url)["metrics"]
        done = figures.get("canary", {}).get("requests", 0) + figures.get("live", {}).get("requests", 0)
        return figures if done == n else None

    figures = wait_until(merged, what="the workers' counts")
    assert figures["canary"]["requests"] == to_b and figures["live"]["requests"] == n - to_b
    assert figures["canary"]["errors"] == 0 and figures["canary"]["latency_ms"]["p50"] > 0
    assert figures["live"]["latency_ms"]["p99"] >= figures["live"]["latency_ms"]["p50"]
    # /metrics merges the same way (whichever worker answers it: poll, the other's file may lag a moment).
    wait_until(lambda: scraped(runner, 'runner_variant_requests_total{variant="canary"}') == to_b, what="/metrics")
    assert scraped(runner, 'runner_candidate_weight_percent{generation="2",mode="canary"}') == 30

    # A step up: PATCH answers once every worker routes with the new weight.
    raised = _call(runner.url, "patch", "/model/candidate", headers=auth(), json={"weight": 100})
    assert raised.status_code == 200, raised.text
    assert raised.json()["candidate"]["weight"] == 100 and raised.json()["candidate"]["revision"] == 2
    assert fresh_tags(runner.url) == {"B"}
    assert history_actions(runner.url)[:2] == ["weight", "candidate"]


def test_a_sticky_canary_sends_each_routing_key_to_one_variant(scale_a, scale_b, start_runner):
    runner = start_runner(scale_a, workers=2)
    assert put_candidate(runner.url, scale_b, "canary", 30, sticky=True).status_code == 200
    keys = [f"user-{i}" for i in range(100)]
    seen = {key: {scale(runner.url, 1.0, key=key)["tag"] for _ in range(3)} for key in keys}  # new connections
    assert all(len(tags) == 1 for tags in seen.values()), {k: v for k, v in seen.items() if len(v) > 1}
    to_b = sum(tags == {"B"} for tags in seen.values())
    assert abs(to_b - 30) <= binomial_tolerance(100, 0.3), f"{to_b} of 100 keys went to the canary"
    # Raising the weight only moves keys to the canary: a key that was on it stays.
    assert _call(runner.url, "patch", "/model/candidate", headers=auth(), json={"weight": 60}).status_code == 200
    for key, tags in seen.items():
        if tags == {"B"}:
            assert scale(runner.url, 1.0, key=key)["tag"] == "B", key
    # Without a key, a sticky canary splits at random.
    assert {scale(runner.url, 1.0)["tag"] for _ in range(40)} == {"A", "B"}


def test_a_canary_that_fails_answers_the_caller_with_its_error(scale_a, tmp_path, make_client):
    failing = builders.failing_bundle(tmp_path / "failing")
    with make_client(scale_a) as client:
        assert put_candidate(client, failing, "canary", 100).status_code == 200
        response = client.post("/model/methods/scale", json={"x": -1.0})
        assert response.status_code == 500 and response.json()["error"]["code"] == "prediction_failed", response.text
        assert scale(client, 1.0)["tag"] == "failing"
        # The other doors choose the same way: the Open Inference Protocol answers with the canary too.
        infer = client.post("/v2/models/Scaler/infer", json={"inputs": [{"name": "x", "datatype": "FP64",
                                                                          "shape": [1], "data": [2.0]}]})
        assert infer.status_code == 200, infer.text
        assert {o["name"]: o["data"] for o in infer.json()["outputs"]}["tag"] == ["failing"]
        figures = candidate(client)["metrics"]
        assert figures["canary"]["requests"] == 3 and figures["canary"]["errors"] == 1
        assert "live" not in figures  # weight 100: the live model answered nothing

        # In shadow mode the same failure is only counted: the caller gets the live model's answer.
        assert client.patch("/model/candidate", headers=auth(), json={"mode": "shadow"}).status_code == 200
        assert scale(client, -1.0) == {"tag": "A", "y": -2.0}
        shadow = wait_until(lambda: candidate(client)["metrics"].get("shadow", {}).get("requests"), what="shadow")
        assert shadow == 1
        assert candidate(client)["metrics"]["shadow"]["errors"] == 1


def test_batched_predictions_are_counted_per_variant(iris, make_client):
    from runner_image.codec import message_from_dict, message_to_dict
    from runner_image.serving import Call

    with make_client(iris) as client:
        assert put_candidate(client, iris, "canary", 100).status_code == 200
        slot, variant = client.app.state.runtime.variants.choose(Call("classify", "r1"))
        assert variant == "canary" and slot.batchable  # what runner_image.batching calls predict_batch on
        classify_in = slot.rpc("classify").input
        msgs = [message_from_dict(classify_in, sample) for sample in (builders.IRIS_SAMPLE, builders.IRIS_VIRGINICA)]
        answers = slot.predict_batch("classify", msgs)
        assert [message_to_dict(answer) for answer in answers] == [{"species": 0}, {"species": 2}]
        assert candidate(client)["metrics"]["canary"]["requests"] == 2


# ---------------------------------------------------------------- shadow

def test_a_shadow_answers_in_the_background_and_is_compared_never_returned(scale_a, scale_b, start_runner):
    runner = start_runner(scale_a, workers=2)
    assert put_candidate(runner.url, scale_b, "shadow", 100).status_code == 200
    n = 300
    answers = hammer(runner.url, n, threads=4)
    assert {answer["tag"] for answer in answers} == {"A"}  # every answer is the live model's

    def shadow_done():
        figures = candidate(runner.url)["metrics"]
        shadow = figures.get("shadow", {})
        return figures if shadow.get("requests", 0) + shadow.get("dropped", 0) == n else None

    figures = wait_until(shadow_done, what="the shadow answers")
    shadow = figures["shadow"]
    assert figures["live"]["requests"] == n
    assert shadow["compared"] == shadow["requests"] > 0 and shadow["errors"] == 0
    assert shadow["agreed"] == 0 and shadow["agreement_rate"] == 0.0  # B never agrees with A
    wait_until(lambda: scraped(runner, "runner_shadow_compared_total") == shadow["compared"], what="/metrics")
    assert scraped(runner, "runner_shadow_agreement_ratio") == 0.0

    # The same model as a shadow agrees every time; a new candidate's counts start at zero.
    assert _call(runner.url, "delete", "/model/candidate", headers=auth()).status_code == 200
    assert put_candidate(runner.url, scale_a, "shadow", 100).status_code == 200
    assert candidate(runner.url)["metrics"] == {}
    hammer(runner.url, 60, threads=2)

    def agreed():
        shadow = candidate(runner.url)["metrics"].get("shadow", {})
        return shadow if shadow.get("requests", 0) + shadow.get("dropped", 0) == 60 else None

    shadow = wait_until(agreed, what="the second shadow's answers")
    assert shadow["compared"] > 0 and shadow["agreed"] == shadow["compared"] and shadow["agreement_rate"] == 1.0


def test_a_full_shadow_queue_drops_and_counts_instead_of_slowing_requests(scale_a, start_runner, tmp_path):
    runner = start_runner(scale_a, env={"RUNNER_SHADOW_QUEUE_SIZE": "2"})
    slow = slow_bundle(tmp_path / "slow", 0.3)
    assert put_candidate(runner.url, slow, "shadow", 100).status_code == 200
    n = 30
    started = time.monotonic()
    with httpx.Client(timeout=30) as client:
        answers = [scale(client_url(client, runner.url), float(i)) for i in range(n)]
    elapsed = time.monotonic() - started
    assert {answer["tag"] for answer in answers} == {"A"}
    # Had a request waited for the shadow, these would have taken n * 0.3 = 9 s at least.
    assert elapsed < n * 0.3 / 2, f"{n} requests took {elapsed:.1f} s"

    def drained():
        shadow = candidate(runner.url)["metrics"].get("shadow", {})
        return shadow if shadow.get("requests", 0) + shadow.get("dropped", 0) == n else None

    shadow = wait_until(drained, what="the shadow queue to drain")
    assert shadow["dropped"] > 0 and shadow["requests"] >= 1
    assert shadow["agreed"] == 0  # tag 'slow' differs from 'A'
    assert scraped(runner, "runner_shadow_dropped_total") == shadow["dropped"]


# ---------------------------------------------------------------- promote and abort

def test_abort_then_promote_under_load_fail_no_request(scale_a, scale_b, start_runner, tmp_path):
    runner = start_runner(scale_a, workers=2)
    state_dir = tmp_path / "runner-state-0"
    with Load(runner.url) as load:
        time.sleep(0.3)
        assert put_candidate(runner.url, scale_b, "canary", 50).status_code == 200
        time.sleep(0.5)
        aborted = _call(runner.url, "delete", "/model/candidate", headers=auth())
        assert aborted.status_code == 200, aborted.text
        assert aborted.json()["candidate"]["state"] == "aborted"
        assert aborted.json()["workers"]["holding"] == 0  # answered once every worker dropped it
        assert fresh_tags(runner.url) == {"A"}
        assert (state_dir / "generations" / "000002").is_dir()  # kept for the normal pruning
        time.sleep(0.3)

        for mode in ("shadow", "canary"):  # a shadow is promoted to live just the same
            assert put_candidate(runner.url, scale_b, mode, 50).status_code == 200
            time.sleep(0.5)
            raised = _call(runner.url, "patch", "/model/candidate", headers=auth(), json={"weight": 80})
            assert raised.status_code == 200, raised.text
            time.sleep(0.3)
            if mode == "shadow":
                assert _call(runner.url, "delete", "/model/candidate", headers=auth()).status_code == 200
        promoted = _call(runner.url, "post", "/model/candidate/promote", headers=auth())
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["action"] == "promote" and promoted.json()["generation"] == 4
        assert promoted.json()["candidate"]["state"] == "promoted"
        # The call returned: every worker serves B as its live model, and nothing routes to a candidate.
        assert worker_generations(state_dir) == {4}
        assert fresh_tags(runner.url) == {"B"}
        time.sleep(0.3)
    assert load.errors == []
    assert len(load.answers) > 100
    assert load.tags() == {"A", "B"}
    actions = history_actions(runner.url)
    assert actions == ["promote", "weight", "candidate", "abort", "weight", "candidate", "abort", "candidate",
                       "start"]
    entry = _call(runner.url, "get", "/model").json()["history"][0]
    assert entry["previous_generation"] == 1 and entry["generation"] == 4
    assert _call(runner.url, "get", "/model").json()["active"]["generation"] == 4
    assert candidate(runner.url)["workers"]["holding"] == 0


def test_a_swap_drops_the_candidate(scale_a, scale_b, start_runner):
    runner = start_runner(scale_a, workers=2)
    assert put_candidate(runner.url, scale_b, "canary", 100).status_code == 200
    assert fresh_tags(runner.url) == {"B"}
    swapped = _call(runner.url, "put", "/model", headers=auth(), files=parts_of(scale_a, "model"))
    assert swapped.status_code == 200, swapped.text
    assert fresh_tags(runner.url) == {"A"}  # at once: the candidate stood beside a live model that is gone
    dropped = wait_until(lambda: (c := candidate(runner.url)["candidate"])["state"] == "dropped" and c,
                         what="the candidate to be marked dropped")
    assert "generation 3 replaced the live model (generation 1)" in dropped["reason"]
    assert history_actions(runner.url)[:2] == ["drop", "model"]
    missing = _call(runner.url, "patch", "/model/candidate", headers=auth(), json={"weight": 5})
    assert missing.status_code == 404 and "no candidate" in missing.json()["error"]["message"]


def test_a_candidate_a_worker_cannot_load_is_refused_and_removed_everywhere(scale_a, start_runner, tmp_path):
    from .test_swap_workers import once_only_bundle

    runner = start_runner(scale_a, workers=2)
    bundle = once_only_bundle(tmp_path / "once", tmp_path / "loaded-once")
    response = put_candidate(runner.url, bundle, "canary", 50)
    assert response.status_code == 422, response.text
    assert "could not load the candidate" in response.json()["error"]["message"]
    assert "FileExistsError" in response.json()["error"]["message"]
    described = candidate(runner.url)
    assert described["candidate"]["state"] == "failed" and described["workers"]["holding"] == 0
    assert fresh_tags(runner.url) == {"A"}
    assert not (tmp_path / "runner-state-0" / "generations" / "000002").exists()
    assert history_actions(runner.url) == ["start"]


def test_a_candidate_cannot_be_set_while_a_swap_runs(scale_a, scale_b, start_runner, tmp_path):
    runner = start_runner(scale_a)
    slow = slow_loading_bundle(tmp_path / "slow-load", 4.0)
    swap: dict = {}
    thread = threading.Thread(target=lambda: swap.setdefault("response", _call(
        runner.url, "put", "/model", headers=auth(), files=parts_of(slow, "model"))))
    thread.start()
    try:
        wait_until((tmp_path / "runner-state-0" / "generations" / "000002" / "model").exists,
                   what="the swap to start")
        response = put_candidate(runner.url, scale_b, "canary", 10)
        assert response.status_code == 409, response.text
        assert "another swap is in progress" in response.json()["error"]["message"]
    finally:
        thread.join(timeout=60)
    assert swap["response"].status_code == 200, swap["response"].text
    # And the other way round: a swap while a candidate is set is allowed, and drops it (above).


def test_a_candidate_and_its_counts_survive_a_restart(scale_a, scale_b, start_runner, tmp_path):
    state_dir = tmp_path / "kept-state"
    runner = start_runner(scale_a, state_dir=state_dir)
    assert put_candidate(runner.url, scale_b, "canary", 100).status_code == 200
    for i in range(5):
        assert scale(runner.url, float(i))["tag"] == "B"

    def flushed():  # a worker writes its counts every quarter second
        reports = [json.loads(p.read_text()) for p in (state_dir / "variants").glob("*.json")]
        return sum(r["counts"].get("canary", {}).get("requests", 0) for r in reports) == 5

    wait_until(flushed, what="the counts in the state directory")
    runner.stop()
    again = start_runner(scale_a, state_dir=state_dir)
    assert fresh_tags(again.url, n=3) == {"B"}  # the new worker holds the candidate again
    figures = candidate(again.url)["metrics"]
    assert figures["canary"]["requests"] == 8  # the dead worker's last counts and the new one's


def test_a_configuration_alone_can_be_the_candidate(tmp_path, make_client):
    from .test_swap import configurable_bundle

    with make_client(configurable_bundle(tmp_path / "configurable")) as client:
        config = json.dumps({"methods": {}, "params": {"k": 10}})
        response = client.put("/model/candidate", headers=auth(), files={"modelConfig": ("config.json", config)},
                              data={"mode": "canary", "weight": "100"})
        assert response.status_code == 200, response.text
        assert client.post("/model/methods/scale", json={"x": 3}).json() == {"tag": "cfg", "y": 30.0}
        live = client.get("/model").json()["active"]
        assert response.json()["candidate"]["sha256"]["model"] == live["sha256"]["model"]  # the same package
        assert live["config"]["params"] == {"k": 2}


# ---------------------------------------------------------------- refusals

def test_a_kept_generation_can_be_the_candidate(scale_a, scale_b, make_client):
    with make_client(scale_a) as client:
        assert client.put("/model", headers=auth(), files=parts_of(scale_b, "model")).status_code == 200
        assert client.post("/model/rollback", headers=auth()).status_code == 200  # A live again (gen 1)
        response = client.put("/model/candidate", headers=auth(),
                              json={"generation": 2, "mode": "canary", "weight": 100, "sticky": False})
        assert response.status_code == 200, response.text
        assert response.json()["candidate"]["source"] == "kept"
        assert scale(client, 1.0)["tag"] == "B"
        shown = client.get("/model").json()["candidate"]  # GET /model says what stands beside the live model
        assert (shown["generation"], shown["mode"], shown["weight"]) == (2, "canary", 100)
        live = client.put("/model/candidate", headers=auth(), json={"generation": 1, "mode": "canary", "weight": 1})
        assert live.status_code == 409  # one candidate at a time
        assert client.delete("/model/candidate", headers=auth()).status_code == 200
        assert client.get("/model").json()["candidate"] is None
        assert client.put("/model/candidate", headers=auth(),
                          json={"generation": 1, "mode": "canary", "weight": 1}).status_code == 409  # the live one
        missing = client.put("/model/candidate", headers=auth(), json={"generation": 9, "mode": "canary", "weight": 1})
        assert missing.status_code == 404 and "not kept" in missing.json()["error"]["message"]


def test_a_candidate_with_another_interface_is_refused(scale_a, text, make_client):
    with make_client(scale_a) as client:
        response = put_candidate(client, text, "canary", 10, parts=("model", "proto"))
        assert response.status_code == 409, response.text
        assert "interface" in response.json()["error"]["message"]
        # A kept generation of another interface: swapped in, rolled back, then asked for as a candidate.
        swapped = client.put("/model", headers=auth(), files=parts_of(text, "model", "proto", "metadata"))
        assert swapped.status_code == 200, swapped.text
        assert client.post("/model/rollback", headers=auth()).status_code == 200
        kept = client.put("/model/candidate", headers=auth(), json={"generation": 2, "mode": "shadow", "weight": 5})
        assert kept.status_code == 409, kept.text
        assert "proto's sha256" in kept.json()["error"]["message"]
        assert candidate(client)["candidate"] is None


@pytest.mark.parametrize("case", [
    ({"mode": "blue", "weight": "10"}, "mode", "one of canary, shadow"),
    ({"weight": "10"}, "mode", "required"),
    ({"mode": "canary"}, "weight", "required"),
    ({"mode": "canary", "weight": "150"}, "weight", "from 0 to 100"),
    ({"mode": "canary", "weight": "-1"}, "weight", "from 0 to 100"),
    ({"mode": "canary", "weight": "ten"}, "weight", "from 0 to 100"),
    ({"mode": "canary", "weight": "nan"}, "weight", "from 0 to 100"),
    ({"mode": "canary", "weight": "1e400"}, "weight", "from 0 to 100"),
    ({"mode": "canary", "weight": "10", "sticky": "maybe"}, "sticky", "true/false"),
    ({"mode": "canary", "weight": "10", "colour": "red"}, "colour", "unknown part"),
])
def test_bad_fields_are_refused_naming_the_field(scale_a, scale_b, make_client, case):
    data, field, words = case
    with make_client(scale_a) as client:
        response = client.put("/model/candidate", headers=auth(), files=parts_of(scale_b, "model"), data=data)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert words in error["message"] and error["details"]["field"] == field
        assert candidate(client)["candidate"] is None


def test_bad_json_and_missing_parts_are_refused(scale_a, scale_b, make_client):
    with make_client(scale_a) as client:
        cases = [
            ({"generation": 1, "mode": "canary", "weight": True}, "weight"),
            ({"generation": 1, "mode": "canary", "weight": "30"}, "weight"),
            ({"generation": 1, "mode": "canary", "weight": 10**400}, "weight"),
            ({"generation": 10**400, "mode": "canary", "weight": 30}, "generation"),
            ({"generation": 1, "mode": "canary", "weight": 30, "sticky": "yes"}, "sticky"),
            ({"generation": 0, "mode": "canary", "weight": 30}, "generation"),
            ({"generation": "2", "mode": "canary", "weight": 30}, "generation"),
            ({"mode": "canary", "weight": 30}, "generation"),
            ({"generation": 2, "mode": "canary", "weight": 30, "extra": 1}, "extra"),
        ]
        for body, field in cases:
            response = client.put("/model/candidate", headers=auth(), json=body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["error"]["details"]["field"] == field, body
        no_model = client.put("/model/candidate", headers=auth(), files=parts_of(scale_b, "proto"),
                              data={"mode": "canary", "weight": "5"})
        assert no_model.status_code == 400 and "'model'" in no_model.json()["error"]["message"]
        metadata = client.put("/model/candidate", headers=auth(), files=parts_of(scale_b, "model", "metadata"),
                              data={"mode": "canary", "weight": "5"})
        assert metadata.status_code == 400 and metadata.json()["error"]["details"]["field"] == "metadata"
        plain = client.put("/model/candidate", headers={**auth(), "Content-Type": "text/plain"}, content=b"x")
        assert plain.status_code == 415

        for verb, path in (("patch", "/model/candidate"), ("delete", "/model/candidate"),
                           ("post", "/model/candidate/promote")):
            kwargs = {"json": {"weight": 5}} if verb == "patch" else {}
            response = getattr(client, verb)(path, headers=auth(), **kwargs)
            assert response.status_code == 404 and "no candidate" in response.json()["error"]["message"], verb

        assert put_candidate(client, scale_b, "canary", 10).status_code == 200
        again = put_candidate(client, scale_b, "shadow", 10)
        assert again.status_code == 409 and "already set" in again.json()["error"]["message"]
        for body in ({}, {"weight": 101}, {"mode": "blue"}, {"weight": 5, "generation": 3}, [5]):
            assert client.patch("/model/candidate", headers=auth(), json=body).status_code == 400, body
        assert candidate(client)["candidate"]["weight"] == 10


def test_every_candidate_route_needs_the_admin_token(scale_a, scale_b, make_client):
    with make_client(scale_a) as client:
        for verb, path in (("put", "/model/candidate"), ("patch", "/model/candidate"), ("get", "/model/candidate"),
                           ("delete", "/model/candidate"), ("post", "/model/candidate/promote")):
            for headers in ({}, auth("wrong-token-but-long-enough-1234")):
                response = getattr(client, verb)(path, headers=headers)
                assert response.status_code == 401, (verb, path, response.text)
        refused = put_candidate(client, scale_b, "canary", 50, headers={})
        assert refused.status_code == 401
        assert {scale(client, 1.0)["tag"] for _ in range(10)} == {"A"}


def test_waiting_shadow_requests_are_answered_by_one_call_and_each_compared(iris, tmp_path):
    """The shadow thread takes every request waiting and, for a batchable model, asks the candidate once."""
    from types import SimpleNamespace

    from runner_image.codec import message_from_dict
    from runner_image.package import ExtractLimits
    from runner_image.runtime import seed
    from runner_image.slot import load_slot
    from runner_image.state import StateDir
    from runner_image.variants import Meter, ShadowJob, Variants

    state = StateDir(tmp_path / "state")
    generation = seed(state, iris, ExtractLimits())
    slot = load_slot(state.generation_dir(generation), generation)
    rows = [builders.IRIS_SAMPLE, builders.IRIS_VIRGINICA] * 5
    msgs = [message_from_dict(slot.rpc("classify").input, row) for row in rows]
    live_outs = [slot.predict("classify", m) for m in msgs]
    live_outs[3] = slot.predict("classify", msgs[4])  # one live answer the candidate will disagree with
    calls = []
    real = slot.model.call

    def counting(method, spec, table, params):
        calls.append(table.n_rows)
        return real(method, spec, table, params)

    object.__setattr__(slot, "model", SimpleNamespace(**{**vars(slot.model), "call": counting},
                                                      tabular=True, row_independent=True))
    meter = Meter("epoch")
    held = SimpleNamespace(slot=slot, meter=meter)
    jobs = [ShadowJob(held, "classify", m, out) for m, out in zip(msgs, live_outs, strict=True)]
    Variants._answer_shadow_batch(held, "classify", jobs)
    assert calls == [len(rows)]  # one call for the ten of them
    counts = meter.snapshot()["shadow"]
    assert (counts["requests"], counts["errors"], counts["compared"], counts["agreed"]) == (10, 0, 10, 9)
