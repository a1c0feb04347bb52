"""gRPC in real `serve --workers 2` processes: the Open Inference Protocol's service as tritonclient.grpc
speaks it, the model's own service through a client generated from the served proto, a proto swap under
gRPC traffic, garbage, limits, metrics, metering, and --grpc-port 0."""

from __future__ import annotations

import importlib
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from runner_image.cli import _parser
from runner_image.slot import PACKAGE_FILE, file_sha256

from . import builders
from .builders import IRIS_SAMPLE, IRIS_VIRGINICA
from .conftest import RunnerProcess, auth, free_port, runner_client
from .entitlements import DEPLOYMENT, Licensor

MODEL = "IrisClassifier"
FIELDS = list(IRIS_SAMPLE)
ROWS = [IRIS_SAMPLE, IRIS_VIRGINICA, {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 4.2, "petal_width": 1.5}]
MAX_REQUEST_BYTES = 64 << 10
MESSAGE_TIMEOUT = 3  # RUNNER_BODY_TIMEOUT: how long a call's request message may take to arrive
MAX_CALLS = 4  # RUNNER_GRPC_MAX_CONCURRENT_RPCS: calls a worker holds at once
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]  # a channel of its own: the kernel picks its worker anew


def columns(rows: list[dict]) -> dict[str, list[float]]:
    return {name: [row[name] for row in rows] for name in FIELDS}


def rest_species(runner, rows: list[dict]) -> list[int]:
    response = httpx.post(f"{runner.url}/model/methods/classify", json=columns(rows), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["species"]


def tensors(rows: list[dict]) -> list[triton.InferInput]:
    inputs = []
    for name, values in columns(rows).items():
        tensor = triton.InferInput(name, [len(values)], "FP64")
        tensor.set_data_from_numpy(np.array(values, dtype=np.float64))  # raw_input_contents, as tritonclient sends
        inputs.append(tensor)
    return inputs


def worker_of(call) -> int:
    return int(dict(call.trailing_metadata())["x-runner-worker"])


def channels_to_every_worker(runner, workers: int = 2, timeout: float = 60) -> dict[int, object]:
    """pid -> a channel whose connection that worker holds. New connections land on either worker as the
    kernel's SO_REUSEPORT hash says; this opens them until each worker has answered one."""
    found: dict[int, object] = {}
    deadline = time.monotonic() + timeout
    while len(found) < workers and time.monotonic() < deadline:
        channel = grpc.insecure_channel(f"127.0.0.1:{runner.grpc_port}", options=OWN_CONNECTION)
        live = channel.unary_unary("/inference.GRPCInferenceService/ServerLive")
        try:
            _, call = live.with_call(b"", timeout=5)
        except grpc.RpcError:  # that worker is not listening yet
            channel.close()
            time.sleep(0.1)
            continue
        pid = worker_of(call)
        if pid in found:
            channel.close()
        else:
            found[pid] = channel
    assert len(found) == workers, f"only workers {sorted(found)} answered gRPC in {timeout}s"
    return found


def start_grpc_runner(bundle: Path, state_dir: Path, **kwargs) -> RunnerProcess:
    runner = RunnerProcess(bundle, state_dir, workers=2, grpc_port=free_port(), **kwargs)
    try:
        runner.channels = channels_to_every_worker(runner)
    except BaseException:
        runner.stop()
        raise
    return runner


def stop_grpc_runner(runner: RunnerProcess) -> None:
    for channel in runner.channels.values():
        channel.close()
    runner.stop()


@pytest.fixture(scope="module")
def iris_rows(tmp_path_factory) -> Path:
    """Iris with repeated fields: a request holds any number of rows."""
    return builders.iris_bundle(tmp_path_factory.mktemp("iris-rows"), repeated=True)


@pytest.fixture(scope="module")
def runner(iris_rows, tmp_path_factory):
    """One two-worker runner for the tests that change nothing (the swap test starts its own)."""
    started = start_grpc_runner(iris_rows, tmp_path_factory.mktemp("grpc") / "state",
                                env={"RUNNER_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
                                     "RUNNER_BODY_TIMEOUT": str(MESSAGE_TIMEOUT),
                                     "RUNNER_GRPC_MAX_CONCURRENT_RPCS": str(MAX_CALLS)})
    yield started
    stop_grpc_runner(started)


@pytest.fixture
def client(runner):
    with triton.InferenceServerClient(f"127.0.0.1:{runner.grpc_port}") as connected:
        yield connected


# ---------------------------------------------------------------- the client generated from the served proto

def generate_client(proto_text: str, out: Path) -> Path:
    """`python -m grpc_tools.protoc` on the proto the runner serves: model_pb2 and model_pb2_grpc in `out`."""
    out.mkdir(parents=True)
    (out / "model.proto").write_text(proto_text)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{out}", f"--python_out={out}",
                    f"--grpc_python_out={out}", "model.proto"], check=True, capture_output=True, timeout=60)
    return out


@pytest.fixture(scope="module")
def generated(runner, tmp_path_factory):
    """The generated modules, imported here once: a second proto declaring the same messages cannot join
    this process's descriptor pool, so a client of another proto runs in a subprocess (run_generated)."""
    proto = httpx.get(f"{runner.url}/model/artifacts/protobuf", timeout=30).text
    out = generate_client(proto, tmp_path_factory.mktemp("generated") / "v1")
    sys.path.insert(0, str(out))
    try:
        pb2, pb2_grpc = importlib.import_module("model_pb2"), importlib.import_module("model_pb2_grpc")
    finally:
        sys.path.remove(str(out))
        sys.modules.pop("model_pb2", None)
        sys.modules.pop("model_pb2_grpc", None)
    return pb2, pb2_grpc


GENERATED_CALL = """
import json, sys
import grpc
sys.path.insert(0, sys.argv[1])
import model_pb2, model_pb2_grpc
stub = model_pb2_grpc.ModelStub(grpc.insecure_channel(sys.argv[2]))
answer = getattr(stub, sys.argv[3])(model_pb2.ClassifyIn(**json.loads(sys.argv[4])), timeout=30)
print(json.dumps(list(answer.species)))
"""


def run_generated(out: Path, address: str, method: str, request: dict) -> list[int]:
    done = subprocess.run([sys.executable, "-c", GENERATED_CALL, str(out), address, method, json.dumps(request)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# ---------------------------------------------------------------- the Open Inference Protocol (tritonclient)

def test_tritonclient_sees_a_live_ready_server_and_the_models_metadata(runner, client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1")
    assert client.get_server_metadata().name == "acumos-runner"
    metadata = client.get_model_metadata(MODEL, as_json=True)
    over_http = httpx.get(f"{runner.url}/v2/models/{MODEL}", timeout=30).json()
    assert {k: metadata[k] for k in ("name", "versions", "platform")} == {
        "name": MODEL, "versions": ["1"], "platform": "acumos-sklearn"}
    for key in ("inputs", "outputs"):  # the same tensors as over HTTP (the JSON form writes int64 as text)
        assert [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in metadata[key]] == [
            (t["name"], t["datatype"], t["shape"]) for t in over_http[key]]
    assert [t["name"] for t in metadata["inputs"]] == FIELDS


@pytest.mark.parametrize(("name", "version"), [("Other", ""), (MODEL, "7")])
def test_an_unknown_model_or_version_is_not_found(client, name, version):
    with pytest.raises(InferenceServerException) as raised:
        client.is_model_ready(name, version)
    assert raised.value.status() == "StatusCode.NOT_FOUND"
    assert ("no model named 'Other'" if name == "Other" else "no version '7' serving here") in raised.value.message()


def test_tritonclient_infer_answers_as_rest_does_for_the_same_rows(runner, client):
    answer = client.infer(MODEL, tensors(ROWS), request_id="rows-1")
    assert answer.as_numpy("species").tolist() == rest_species(runner, ROWS) == [0, 2, 1]
    response = answer.get_response()
    assert (response.id, response.model_name, response.model_version) == ("rows-1", MODEL, "1")
    assert response.parameters["method"].string_param == "classify"
    over_v2 = httpx.post(f"{runner.url}/v2/models/{MODEL}/infer", timeout=30, json={"inputs": [
        {"name": k, "datatype": "FP64", "shape": [len(v)], "data": v} for k, v in columns(ROWS).items()]}).json()
    assert over_v2["outputs"][0]["data"] == [0, 2, 1]
    # One [n, 4] tensor: its columns are the fields in order.
    matrix = triton.InferInput("features", [len(ROWS), 4], "FP64")
    matrix.set_data_from_numpy(np.array([[row[f] for f in FIELDS] for row in ROWS], dtype=np.float64))
    assert client.infer(MODEL, [matrix]).as_numpy("species").tolist() == [0, 2, 1]


def test_requested_outputs_are_honoured_and_an_unknown_one_is_refused(client):
    wanted = client.infer(MODEL, tensors(ROWS[:1]), outputs=[triton.InferRequestedOutput("species")])
    assert wanted.as_numpy("species").tolist() == [0]
    with pytest.raises(InferenceServerException) as raised:
        client.infer(MODEL, tensors(ROWS[:1]), outputs=[triton.InferRequestedOutput("colour")])
    assert raised.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "unknown outputs ['colour']" in raised.value.message() and "species" in raised.value.message()


def test_typed_contents_are_read_like_raw_contents(runner):
    """Triton's own generated messages (tritonclient's service_pb2): `contents` instead of raw bytes."""
    request = service_pb2.ModelInferRequest(model_name=MODEL)
    for name, values in columns(ROWS).items():
        tensor = request.inputs.add(name=name, datatype="FP64", shape=[len(values)])
        tensor.contents.fp64_contents.extend(values)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(runner.channels[min(runner.channels)])
    response = stub.ModelInfer(request, timeout=30)
    assert [o.name for o in response.outputs] == ["species"] and response.outputs[0].datatype == "INT64"
    assert np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist() == [0, 2, 1]
    # Too few values for the shape: the field to use and the count are named.
    request.inputs[0].contents.fp64_contents.pop()
    with pytest.raises(grpc.RpcError) as raised:
        stub.ModelInfer(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "inputs[0]: shape [3] holds 3 values; contents.fp64_contents" in raised.value.details()


def test_a_bad_tensor_gets_the_message_http_gives(runner, client):
    short = [[row[f] for f in FIELDS[:3]] for row in ROWS[:1]]
    over_http = httpx.post(f"{runner.url}/v2/models/{MODEL}/infer", timeout=30, json={"inputs": [
        {"name": "features", "datatype": "FP64", "shape": [1, 3], "data": short}]})
    assert over_http.status_code == 400
    matrix = triton.InferInput("features", [1, 3], "FP64")
    matrix.set_data_from_numpy(np.array(short, dtype=np.float64))
    with pytest.raises(InferenceServerException) as raised:
        client.infer(MODEL, [matrix])
    assert raised.value.status() == "StatusCode.INVALID_ARGUMENT"
    error = over_http.json()["error"]  # the OIP's body has the message as `error`; the house's, inside it
    assert raised.value.message() == (error if isinstance(error, str) else error["message"])
    assert "shape [n, 4]" in raised.value.message()


def test_an_unknown_method_parameter_is_not_found(client):
    with pytest.raises(InferenceServerException) as raised:
        client.infer(MODEL, tensors(ROWS[:1]), parameters={"method": "predict_colour"})
    assert raised.value.status() == "StatusCode.NOT_FOUND"
    assert "unknown method 'predict_colour'" in raised.value.message() and "classify" in raised.value.message()


# ---------------------------------------------------------------- the model's own service

def test_a_generated_client_calls_classify_with_the_request_id_both_ways(runner, generated):
    pb2, pb2_grpc = generated
    stub = pb2_grpc.ModelStub(runner.channels[max(runner.channels)])
    answer, call = stub.classify.with_call(pb2.ClassifyIn(**columns(ROWS)), metadata=[("x-request-id", "gen-42")],
                                           timeout=30)
    assert list(answer.species) == rest_species(runner, ROWS)
    assert dict(call.trailing_metadata())["x-request-id"] == "gen-42"
    _, call = stub.classify.with_call(pb2.ClassifyIn(**columns(ROWS[:1])), timeout=30)
    assert len(dict(call.trailing_metadata())["x-request-id"]) == 32  # none given: one is made


def test_both_workers_answer_grpc(runner, generated):
    pb2, pb2_grpc = generated
    main_pid = runner.proc.pid
    for pid, channel in runner.channels.items():
        _, call = pb2_grpc.ModelStub(channel).classify.with_call(pb2.ClassifyIn(**columns(ROWS)), timeout=30)
        assert worker_of(call) == pid
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert parent == main_pid  # a uvicorn worker of this runner
    assert len(runner.channels) == 2


def test_an_unknown_method_is_unimplemented_and_lists_the_served_ones(runner):
    channel = runner.channels[min(runner.channels)]
    with pytest.raises(grpc.RpcError) as raised:
        channel.unary_unary("/irisclassifier.Model/paint")(b"", timeout=30)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "/irisclassifier.Model/classify" in raised.value.details()
    assert "/inference.GRPCInferenceService/" in raised.value.details()
    with pytest.raises(grpc.RpcError) as raised:  # one of Triton's calls this runner does not answer
        service_pb2_grpc.GRPCInferenceServiceStub(channel).RepositoryIndex(service_pb2.RepositoryIndexRequest())
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("path", ["/irisclassifier.Model/classify", "/inference.GRPCInferenceService/ModelInfer"])
def test_garbage_bytes_are_invalid_argument_and_the_worker_keeps_serving(runner, generated, path):
    pb2, pb2_grpc = generated
    for pid, channel in runner.channels.items():
        with pytest.raises(grpc.RpcError) as raised:
            channel.unary_unary(path)(b"\xff\xff\xff\xff garbage \x00\x01", timeout=30)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "is not a valid protobuf" in raised.value.details()
        assert dict(raised.value.trailing_metadata())["x-error-code"] == "bad_request"
        _, call = pb2_grpc.ModelStub(channel).classify.with_call(pb2.ClassifyIn(**columns(ROWS[:1])), timeout=30)
        assert worker_of(call) == pid
    assert httpx.get(f"{runner.url}/v2/health/ready", timeout=30).status_code == 200


def test_a_message_over_the_request_limit_is_refused_and_serving_goes_on(runner, generated):
    pb2, pb2_grpc = generated
    stub = pb2_grpc.ModelStub(runner.channels[min(runner.channels)])
    huge = pb2.ClassifyIn(sepal_length=[1.0] * (MAX_REQUEST_BYTES // 8 + 1))
    with pytest.raises(grpc.RpcError) as raised:
        stub.classify(huge, timeout=30)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert list(stub.classify(pb2.ClassifyIn(**columns(ROWS[:1])), timeout=30).species) == [0]


def test_calls_that_never_send_their_message_are_cut_and_cannot_take_more_than_the_slots(runner, generated):
    pb2, pb2_grpc = generated
    channel = runner.channels[min(runner.channels)]  # one connection: one worker, whose slots are counted
    stub = pb2_grpc.ModelStub(channel)
    release = threading.Event()

    def never_sends():
        release.wait(60)
        yield from ()

    classify = channel.stream_unary("/irisclassifier.Model/classify")
    try:
        stalled = [classify.future(never_sends(), timeout=60) for _ in range(MAX_CALLS)]
        # The probes below take a slot while they run: one racing a stalled call still on its way would get
        # that call refused. The stalled calls are on an open channel: they arrive within milliseconds.
        time.sleep(0.5)
        refused = None
        deadline = time.monotonic() + MESSAGE_TIMEOUT
        while refused is None and time.monotonic() < deadline:  # once the stalled calls hold every slot
            try:
                stub.classify(pb2.ClassifyIn(**columns(ROWS[:1])), timeout=30)
            except grpc.RpcError as exc:
                refused = exc
            time.sleep(0.05)
        assert refused is not None and refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused
        for call in stalled:
            cut = call.exception(timeout=60)
            assert cut.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert f"the request message did not arrive within {MESSAGE_TIMEOUT} s" in cut.details()
        assert eventually(lambda: list(stub.classify(pb2.ClassifyIn(**columns(ROWS[:1])), timeout=30).species)) == [0]
    finally:
        release.set()  # the stalled callers' generators end (their calls were cut long ago)
    with pytest.raises(grpc.RpcError) as raised:  # a call that ends without a message
        classify(iter(()), timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "carried no request message" in raised.value.details()


def eventually(call, timeout: float = 30):
    """call()'s answer once the worker has freed the slots of the calls it cut (a moment after it cut them)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def test_grpc_calls_are_in_the_metrics(runner, client, generated):
    pb2, pb2_grpc = generated
    client.infer(MODEL, tensors(ROWS[:1]))
    pb2_grpc.ModelStub(runner.channels[max(runner.channels)]).classify(pb2.ClassifyIn(**columns(ROWS[:1])))
    scraped = httpx.get(f"{runner.url}/metrics", timeout=30).text
    for route in ("grpc_infer", "grpc_model", "grpc_v2"):
        assert f'runner_requests_total{{route="{route}",status="200"}}' in scraped
    assert 'runner_request_seconds_count{route="grpc_model"}' in scraped
    assert 'runner_predictions_total{method="classify"}' in scraped


# ---------------------------------------------------------------- a proto swap under gRPC traffic

def test_a_proto_swap_under_grpc_traffic_fails_no_call_and_serves_the_new_method(iris_rows, tmp_path, generated):
    pb2, pb2_grpc = generated
    swapped = start_grpc_runner(iris_rows, tmp_path / "state")
    try:
        old_proto = httpx.get(f"{swapped.url}/model/artifacts/protobuf", timeout=30).text
        new_proto = old_proto.replace("  rpc classify (ClassifyIn) returns (ClassifyOut);\n",
                                      "  rpc classify (ClassifyIn) returns (ClassifyOut);\n"
                                      "  rpc species (ClassifyIn) returns (ClassifyOut);\n")
        assert new_proto != old_proto
        hammer = Hammer([pb2_grpc.ModelStub(c) for c in swapped.channels.values()] * 2, pb2.ClassifyIn(**columns(ROWS)))
        hammer.start()
        hammer.wait_for(20)  # calls under way before the swap
        response = httpx.put(f"{swapped.url}/proto", headers=auth(), timeout=120, files={
            "proto": ("model.proto", new_proto), "sample": ("sample.json", json.dumps(columns(ROWS[:1])))})
        assert response.status_code == 200, response.text
        during = hammer.count()
        hammer.wait_for(during + 20)  # and after it
        hammer.stop()
        assert hammer.failures == []
        assert hammer.answers == {(0, 2, 1)} and hammer.workers == set(swapped.channels)

        address = f"127.0.0.1:{swapped.grpc_port}"
        served = httpx.get(f"{swapped.url}/model/artifacts/protobuf", timeout=30).text
        assert "rpc species" in served
        out = generate_client(served, tmp_path / "generated-v2")
        for _ in range(4):  # new connections, so both workers are asked
            assert run_generated(out, address, "species", columns(ROWS)) == [0, 2, 1]
        for pid, channel in swapped.channels.items():  # connections open since before the swap
            species = channel.unary_unary("/irisclassifier.Model/species")
            _, call = species.with_call(pb2.ClassifyIn(**columns(ROWS[:1])).SerializeToString(), timeout=30)
            assert worker_of(call) == pid
    finally:
        stop_grpc_runner(swapped)


class Hammer:
    """Threads calling classify without pause, each on its own connection, recording what came back."""

    def __init__(self, stubs, request):
        self.stubs, self.request = stubs, request
        self.failures: list[str] = []
        self.answers: set[tuple] = set()
        self.workers: set[int] = set()
        self._done = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(stub,)) for stub in stubs]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _run(self, stub) -> None:
        while not self._stop.is_set():
            try:
                answer, call = stub.classify.with_call(self.request, timeout=30)
            except Exception as exc:  # noqa: BLE001 (every failure is what the test counts)
                with self._lock:
                    self.failures.append(repr(exc))
                continue
            with self._lock:
                self.answers.add(tuple(answer.species))
                self.workers.add(worker_of(call))
                self._done += 1

    def count(self) -> int:
        with self._lock:
            return self._done

    def wait_for(self, calls: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < calls and not self.failures and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


# ---------------------------------------------------------------- metering

def test_metered_grpc_predictions_take_units_and_refusals_give_them_back(tmp_path):
    """In-process (the app with its lifespan, as a worker runs it): the meter is the same across doors."""
    licensor = Licensor()
    bundle = builders.iris_bundle(tmp_path / "iris")
    port = free_port()
    with runner_client(bundle, tmp_path / "state", grpc_port=port, require_entitlement=True,
                       deployment_id=DEPLOYMENT, entitlement_keys=licensor.keys()) as http:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        classify = channel.unary_unary("/irisclassifier.Model/classify")
        row = b"".join(bytes([(i << 3) | 1]) + np.float64(IRIS_VIRGINICA[f]).tobytes() for i, f in enumerate(FIELDS, 1))

        def refusal(raw: bytes):
            with pytest.raises(grpc.RpcError) as raised:
                classify(raw, timeout=30)
            return raised.value.code(), dict(raised.value.trailing_metadata())["x-error-code"], raised.value.details()

        code, error, message = refusal(row)
        assert (code, error) == (grpc.StatusCode.PERMISSION_DENIED, "agreement_not_found")
        assert "no entitlement installed yet" in message

        document = licensor.document([file_sha256(bundle / PACKAGE_FILE)], predictions=2)
        assert http.put("/model/entitlement", headers=auth(), json=document).status_code == 200
        assert refusal(b"\xff garbage")[0] == grpc.StatusCode.INVALID_ARGUMENT  # its unit goes back
        assert classify(row, timeout=30) == b"\x08\x02"  # species 2
        with triton.InferenceServerClient(f"127.0.0.1:{port}") as client:
            assert client.infer("IrisClassifier", [_single(f, IRIS_VIRGINICA[f]) for f in FIELDS]).as_numpy(
                "species").tolist() == [2]
        code, error, message = refusal(row)
        assert (code, error) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "usage_exhausted")
        assert "used the 2 predictions its entitlement allows" in message
        usage = http.get("/model/usage", headers=auth()).json()
        assert (usage["used"], usage["refused"]) == (2, 1)  # counted from the install: the garbage's unit came back
        channel.close()


def _single(name: str, value: float) -> triton.InferInput:
    tensor = triton.InferInput(name, [1], "FP64")
    tensor.set_data_from_numpy(np.array([value], dtype=np.float64))
    return tensor


# ---------------------------------------------------------------- the port

def test_grpc_port_0_turns_grpc_off_whatever_the_environment_says(iris, tmp_path):
    port = free_port()
    runner = RunnerProcess(iris, tmp_path / "state", workers=1, env={"RUNNER_GRPC_PORT": str(port)}, grpc_port=0)
    try:
        assert httpx.get(f"{runner.url}/v2/health/ready", timeout=30).status_code == 200
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        assert "gRPC is off" in runner.log_path.read_text()
    finally:
        runner.stop()


def test_the_serve_command_defaults_to_port_3331_and_checks_the_port(monkeypatch, capsys):
    monkeypatch.delenv("RUNNER_GRPC_PORT", raising=False)
    assert _parser().parse_args(["serve", "bundle"]).grpc_port == 3331
    monkeypatch.setenv("RUNNER_GRPC_PORT", "4444")
    assert _parser().parse_args(["serve", "bundle"]).grpc_port == 4444
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "bundle", "--grpc-port", "70000"])
    assert "a port is a whole number from 0 to 65535" in capsys.readouterr().err


def test_a_grpc_port_another_program_holds_stops_the_runner_at_once_and_says_so(iris, tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "runner_image", "serve", str(iris), "--port", str(free_port()),
                               "--grpc-port", str(port), "--state-dir", str(tmp_path / "state")],
                              capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert f"gRPC cannot listen on 127.0.0.1:{port}" in done.stderr and "--grpc-port" in done.stderr


def test_a_second_runner_never_shares_the_first_ones_grpc_port(iris, scale_a, tmp_path):
    """The workers of one runner share their port (SO_REUSEPORT), which a second runner of the same user could
    too: then the kernel would spread one deployment's calls over two models. The second one must refuse."""
    port = free_port()
    first = RunnerProcess(iris, tmp_path / "first", workers=2, grpc_port=port)
    try:
        assert httpx.get(f"{first.url}/v2/health/ready", timeout=30).status_code == 200
        done = subprocess.run([sys.executable, "-m", "runner_image", "serve", str(scale_a), "--port", str(free_port()),
                               "--grpc-port", str(port), "--state-dir", str(tmp_path / "second")],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode != 0
        assert f"gRPC cannot listen on 127.0.0.1:{port}" in done.stderr
    finally:
        first.stop()
