"""A caller's own proto (/getBinary, /getBinaryJSON) is compiled in a separate, low-priority process,
within a size limit, a bounded number at once and a cache bounded in bytes: a flood of big protos
does not slow the predictions down, and legitimate callers still get their bytes."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import statistics
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from runner_image import compiler, protos
from runner_image.protos import ProtoCache, compile_proto

from .builders import IRIS_SAMPLE
from .conftest import auth

JSON_SAMPLE = json.dumps(IRIS_SAMPLE).encode()


def big_proto(tag: str, messages: int, fields: int = 50) -> bytes:
    """A valid proto3 file of about messages * fields * 17 bytes, unique for each `tag`."""
    lines = ['syntax = "proto3";', f"package flood_{tag};"]
    body = " ".join(f"double f{j} = {j + 1};" for j in range(fields))
    for i in range(messages):
        lines.append(f"message M{i} {{ {body} }}")
    lines.append("service Model { rpc classify (M0) returns (M1); }")
    return "\n".join(lines).encode()


def iris_proto(iris: Path) -> bytes:
    return (iris / "model.proto").read_bytes()


def holds_sample(content: bytes) -> bool:
    return all(struct.pack("<d", value) in content for value in IRIS_SAMPLE.values())


def get_binary_json(url: str, proto: bytes, data: bytes = JSON_SAMPLE, timeout: float = 60, **kwargs):
    return httpx.post(f"{url}/getBinaryJSON", files={"proto": ("model.proto", proto), "jsonFile": ("d.json", data)},
                      timeout=timeout, **kwargs)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def compile_workers(pid: int) -> list[int]:
    """The proto compile processes among `pid`'s children."""
    return [child for child in children(pid) if b"runner_image.compiler" in Path(f"/proc/{child}/cmdline").read_bytes()]


def niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def rss_mib(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] if q < 100 else max(samples)


# ---------------------------------------------------------------- limits, in-process


def test_it_refuses_a_caller_proto_over_the_size_limit_naming_it(iris, make_client):
    proto = iris_proto(iris) + b"// padding\n" * 200
    with make_client(iris, max_proto_bytes=1024) as client:
        response = client.post("/getBinaryJSON", files={"proto": ("model.proto", proto),
                                                        "jsonFile": ("d.json", JSON_SAMPLE)})
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert error["code"] == "payload_too_large"
        assert error["message"] == (f"model.proto is {len(proto)} bytes; "
                                    "the limit is 1024 bytes (RUNNER_MAX_PROTO_BYTES)")
        assert error["details"] == {"part": "proto", "limit_bytes": 1024, "size_bytes": len(proto)}
        # A proto just under the limit is compiled and used.
        small = client.post("/getBinaryJSON", files={"proto": ("model.proto", iris_proto(iris)),
                                                     "jsonFile": ("d.json", JSON_SAMPLE)})
        assert small.status_code == 200, small.text
        assert holds_sample(small.content)


@pytest.mark.parametrize("path", ["/proto", "/transformJSON"])
def test_it_refuses_a_swap_proto_over_the_size_limit_and_keeps_serving(iris, scale_a, make_client, path):
    proto = (scale_a / "model.proto").read_bytes() + b"// padding\n" * 200
    files = {"proto": ("model.proto", proto)}
    if path == "/transformJSON":
        files |= {"model": ("modelpackage.zip", (scale_a / "modelpackage.zip").read_bytes()),
                  "jsonFile": ("d.json", b'{"x": 1.5}')}
    method = "PUT" if path == "/proto" else "POST"
    with make_client(iris, max_proto_bytes=1024) as client:
        response = client.request(method, path, headers=auth(), files=files)
        assert response.status_code == 413, response.text
        assert "(RUNNER_MAX_PROTO_BYTES)" in response.json()["error"]["message"]
        assert client.get("/model").json()["active"]["generation"] == 1
        assert client.post("/model/methods/classify", json=IRIS_SAMPLE).json() == {"species": 0}


def test_it_passes_the_compile_errors_of_a_caller_proto_through_whole(iris, make_client):
    broken = b'syntax = "proto3";\nmessage A {\n  double x = 1\n}\nservice Model { rpc classify (A) returns (A); }\n'
    with make_client(iris) as client:
        response = client.post("/getBinaryJSON", files={"proto": ("model.proto", broken),
                                                        "jsonFile": ("d.json", b'{"x": 1}')})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_proto"
        assert 'model.proto:4:1: Expected ";"' in error["message"]
        assert error["details"]["protoc"] in error["message"]
        data_error = client.post("/getBinaryJSON", files={"proto": ("model.proto", iris_proto(iris)),
                                                          "jsonFile": ("d.json", b'{"sepal_length": "wide"}')})
        assert data_error.status_code == 400, data_error.text
        assert "sepal_length" in data_error.json()["error"]["message"]


# ---------------------------------------------------------------- the byte-bounded cache


def test_the_cache_is_bounded_in_bytes_and_drops_the_least_recently_used(monkeypatch):
    compiled = [compile_proto(big_proto(f"cache{i}", messages=20, fields=5)) for i in range(4)]
    weight = compiled[0].weight
    assert all(abs(c.weight - weight) < 64 for c in compiled)
    assert weight > 1500  # the descriptors' size, not a count
    cache = ProtoCache(max_bytes=int(weight * 2.5))
    cache.put(compiled[0])
    cache.put(compiled[1])
    assert cache.get(compiled[0].sha256) is compiled[0]  # now the most recently used
    cache.put(compiled[2])
    assert len(cache) == 2 and cache.used_bytes <= cache.max_bytes
    assert cache.get(compiled[1].sha256) is None
    assert cache.get(compiled[0].sha256) is compiled[0]
    assert cache.get(compiled[2].sha256) is compiled[2]
    cache.put(compile_proto(big_proto("cachehuge", messages=200, fields=5)))  # bigger than the budget: not kept
    assert len(cache) == 2
    cache.resize(weight + 10)
    assert len(cache) == 1 and cache.get(compiled[2].sha256) is compiled[2]


def test_compile_proto_uses_the_process_cache_within_its_budget(monkeypatch):
    monkeypatch.setattr(protos, "cache", ProtoCache(max_bytes=1))
    text = big_proto("uncached", messages=3, fields=2)
    assert compile_proto(text) is not compile_proto(text)  # over budget: compiled each time
    monkeypatch.setattr(protos, "cache", ProtoCache(max_bytes=1 << 20))
    assert compile_proto(text) is compile_proto(text)


# ---------------------------------------------------------------- the compile process, for real


def test_it_compiles_caller_protos_in_one_low_priority_process_and_keeps_none_in_the_server(iris, start_runner):
    runner = start_runner(iris)
    assert descendants(runner.proc.pid) == []  # started on first use only
    answer = get_binary_json(runner.url, iris_proto(iris))
    assert answer.status_code == 200, answer.text
    assert holds_sample(answer.content)
    compile_processes = compile_workers(runner.proc.pid)
    assert len(compile_processes) == 1
    assert niceness(compile_processes[0]) == niceness(runner.proc.pid) + 10
    server_before = rss_mib(runner.proc.pid)
    for i in range(3):  # 0.6 MiB each: some 20 MiB of classes apiece if they were built in the server
        response = get_binary_json(runner.url, big_proto(f"held{i}", messages=700), b'{"f0": 1}')
        assert response.status_code == 200, response.text
        assert response.content == struct.pack("<Bd", 9, 1.0)
    assert compile_workers(runner.proc.pid) == compile_processes  # the same process, reused
    assert rss_mib(runner.proc.pid) - server_before < 15


def test_a_compile_process_that_dies_is_replaced_and_none_outlives_the_runner(iris, start_runner):
    runner = start_runner(iris)
    assert get_binary_json(runner.url, iris_proto(iris)).status_code == 200
    [first] = compile_workers(runner.proc.pid)
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{first}").exists() or b"Z" in Path(f"/proc/{first}/stat").read_bytes()[:64])
    answer = get_binary_json(runner.url, iris_proto(iris))  # not the dead one's fault: a new process answers
    assert answer.status_code == 200, answer.text
    assert holds_sample(answer.content)
    [second] = compile_workers(runner.proc.pid)
    assert second != first
    os.kill(runner.proc.pid, signal.SIGKILL)  # the server dies without a word: its worker reads end-of-file
    wait_until(lambda: not Path(f"/proc/{second}").exists(), timeout=10)


def test_a_compile_that_takes_too_long_is_stopped_with_its_protoc(iris, make_client, monkeypatch):
    monkeypatch.setattr(compiler, "JOB_TIMEOUT_SECONDS", 0.3)
    slow = big_proto("toolong", messages=1100)  # about 1 s in protoc
    with make_client(iris) as client:
        response = client.post("/getBinaryJSON", files={"proto": ("model.proto", slow), "jsonFile": ("d.json", b"{}")})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["message"] == "compiling model.proto took longer than 0.3 s"
        assert running_protocs() == []
        monkeypatch.setattr(compiler, "JOB_TIMEOUT_SECONDS", 60)  # a new worker starts: time to import
        answer = client.post("/getBinaryJSON", files={"proto": ("model.proto", iris_proto(iris)),
                                                      "jsonFile": ("d.json", JSON_SAMPLE)})
        assert answer.status_code == 200, answer.text


def running_protocs() -> list[int]:
    found = []
    for pid in descendants(os.getpid()):
        with contextlib.suppress(FileNotFoundError):
            alive = b") Z " not in Path(f"/proc/{pid}/stat").read_bytes()
            if alive and b"grpc_tools.protoc" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


def wait_until(condition, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_it_answers_503_with_retry_after_when_the_compile_slots_stay_taken(iris, start_runner):
    # The others arrive 0.05 s after the slow one and wait 0.1 s for its slot: they are turned away as
    # long as its compile takes more than 0.15 s (about 1 s here; an idle machine once compiled it in
    # under the 0.45 s the test allowed before).
    runner = start_runner(iris, env={"RUNNER_PROTO_COMPILE_WAIT": "0.1"})
    get_binary_json(runner.url, iris_proto(iris))  # the compile process is up
    slow = big_proto("slow", messages=1100)  # 0.9 MiB: about 1 s in protoc
    with ThreadPoolExecutor(max_workers=12) as pool:
        first = pool.submit(get_binary_json, runner.url, slow, b'{"f0": 2}')
        time.sleep(0.05)
        others = [pool.submit(get_binary_json, runner.url, iris_proto(iris)) for _ in range(11)]
        answers = [future.result() for future in others]
        assert first.result().status_code == 200, first.result().text
    busy = [answer for answer in answers if answer.status_code == 503]
    assert busy, [answer.status_code for answer in answers]
    for answer in busy:
        error = answer.json()["error"]
        assert error["code"] == "busy"
        assert "RUNNER_PROTO_COMPILE_CONCURRENCY=1" in error["message"]
        assert answer.headers["retry-after"] == "1" == str(error["details"]["retry_after_seconds"])
    assert all(answer.status_code in (200, 503) for answer in answers)
    again = get_binary_json(runner.url, iris_proto(iris))
    assert again.status_code == 200 and holds_sample(again.content)


def _flood(url: str, tag: str, stop, statuses) -> None:
    """One flooding client: new big protos back to back until told to stop. It runs in its own
    process at a lower priority: an attacker's CPU is not the runner's, only sharing this machine."""
    os.nice(10)
    with httpx.Client(timeout=120) as client:
        sent = 0
        while not stop.is_set():
            proto = big_proto(f"{tag}n{sent}", messages=1100)  # 0.9 MiB, under the 1 MiB limit
            try:
                response = client.post(f"{url}/getBinaryJSON", files={"proto": ("model.proto", proto),
                                                                       "jsonFile": ("d.json", b"{}")})
                statuses.put(response.status_code)
            except httpx.HTTPError as exc:
                statuses.put(type(exc).__name__)
            sent += 1


def probe(client: httpx.Client, url: str, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.post(f"{url}/model/methods/classify", json=IRIS_SAMPLE)
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200 and response.json() == {"species": 0}, response.text
        time.sleep(0.005)
    return latencies


def figures(latencies: list[float]) -> dict:
    return {"n": len(latencies), "p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "p99_ms": round(percentile(latencies, 99) * 1000, 2), "max_ms": round(max(latencies) * 1000, 2)}


FLOODERS = 4
ROUNDS = 2
ISSUE_P99_MS = 50


def flood_round(runner, client, round_: int, context, statuses) -> tuple[list[float], list[float], float]:
    """Quiet predictions, then predictions while FLOODERS clients send new big protos back to back;
    returns both latency lists and the server process's RSS growth during the flood, in MiB."""
    quiet = probe(client, runner.url, 400)
    stop = context.Event()
    flooders = [context.Process(target=_flood, args=(runner.url, f"r{round_}c{i}", stop, statuses), daemon=True)
                for i in range(FLOODERS)]
    for flooder in flooders:
        flooder.start()
    try:
        deadline = time.monotonic() + 60
        while not compile_workers(runner.proc.pid) and time.monotonic() < deadline:  # the flood has arrived
            time.sleep(0.05)
        time.sleep(1)
        server_rss = rss_mib(runner.proc.pid)
        flooded = probe(client, runner.url, 700)
        growth = rss_mib(runner.proc.pid) - server_rss
    finally:
        stop.set()
        for flooder in flooders:  # each waits for its last answer: the runner is idle again after
            flooder.join(timeout=150)
            if flooder.is_alive():
                flooder.kill()
    return quiet, flooded, growth


def test_predictions_keep_their_latency_while_clients_flood_the_runner_with_big_protos(iris, start_runner):
    """The issue's figure: predict p99 under 50 ms while clients send new 0.9 MiB protos back to back.

    Quiet and flooded windows alternate (ROUNDS times) on the same runner, so both see the same
    machine. On a quiet machine (quiet p99 well under 50 ms) the bound is the issue's 50 ms; when
    other work on the machine already makes the quiet p99 high, it is three times the quiet p99.
    Compiling in the event loop, as before, gave a p99 of 4,210 ms here (while 4 clients flooded)."""
    runner = start_runner(iris, env={"RUNNER_PROTO_COMPILE_WAIT": "3"})  # flooders that stop, stop sooner
    context = multiprocessing.get_context("spawn")
    statuses = context.Queue()
    quiet, flooded, growth = [], [], []
    with httpx.Client(timeout=30) as client:
        probe(client, runner.url, 50)  # warm up
        for round_ in range(ROUNDS):
            round_quiet, round_flooded, round_growth = flood_round(runner, client, round_, context, statuses)
            quiet += round_quiet
            flooded += round_flooded
            growth.append(round_growth)
    outcome = []
    while not statuses.empty():
        outcome.append(statuses.get())
    baseline, during = figures(quiet), figures(flooded)
    bound = max(ISSUE_P99_MS, round(3 * baseline["p99_ms"], 2))
    print(f"\nproto flood ({FLOODERS} clients, {ROUNDS} rounds): quiet {baseline}; flooded {during}; "
          f"bound {bound} ms; flood answers {({s: outcome.count(s) for s in set(outcome)})}; "
          f"server RSS growth per round {[round(g, 1) for g in growth]} MiB; load {os.getloadavg()[0]:.1f}")
    assert outcome.count(200) >= 2 * ROUNDS, outcome  # the runner really was compiling
    assert set(outcome) <= {200, 503}, outcome
    assert during["p99_ms"] < bound, (baseline, during)
    assert max(growth) < 30, growth  # the classes of callers' protos stay out of the server
