"""Every flavour, end to end: a small real model, packed with pack_bundle, served in-process, and
answering exactly what the library itself predicts on the same rows, in JSON and in protobuf."""

from __future__ import annotations

import functools
import json
import zipfile
from pathlib import Path

import cloudpickle
import joblib
import numpy as np
import pandas as pd
import pytest
from google.protobuf import json_format
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from runner_image.errors import ModelRejected
from runner_image.pack import SignatureError, check_bundle, pack_bundle, render_metadata, render_proto
from runner_image.protos import compile_proto

PROTOBUF = "application/vnd.google.protobuf"
X, Y = load_iris(return_X_y=True)
ROWS = X[[0, 55, 70, 110, 149]]  # all three species
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SINGLE_INPUT = ",".join(f"{f}:double" for f in FEATURES)
COLUMNS_INPUT = ",".join(f"{f}:repeated double" for f in FEATURES)
PROBABILITIES = "p0:double,p1:double,p2:double"
PROBABILITY_COLUMNS = "p0:repeated double,p1:repeated double,p2:repeated double"

# One repeated sub-message: pack writes only flat fields, so this proto is written by hand.
ROWS_PROTO = """syntax = "proto3";
package flowers;

service Model {
  rpc classify (ClassifyIn) returns (ClassifyOut);
}

message Flower {
  double sepal_length = 1;
  double sepal_width = 2;
  double petal_length = 3;
  double petal_width = 4;
}

message ClassifyIn {
  repeated Flower rows = 1;
}

message ClassifyOut {
  %s
}
"""


# ---------------------------------------------------------------- requests and checks

def single_request(row) -> dict:
    return dict(zip(FEATURES, np.asarray(row).tolist(), strict=True))


def columns_request(rows) -> dict:
    return {f: rows[:, j].tolist() for j, f in enumerate(FEATURES)}


def rows_request(rows) -> dict:
    return {"rows": [single_request(r) for r in rows]}


def assert_answers(client, bundle: Path, method: str, request: dict, expected: dict) -> None:
    """The runner answers `request` with `expected`, as JSON and as protobuf binary."""
    answer = client.post(f"/model/methods/{method}", json=request)
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected

    rpc = compile_proto((bundle / "model.proto").read_text()).methods[method]
    body = json_format.ParseDict(request, rpc.input()).SerializeToString()
    answer = client.post(f"/model/methods/{method}", content=body, headers={"Content-Type": PROTOBUF})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == PROTOBUF
    assert rpc.output.FromString(answer.content) == json_format.ParseDict(expected, rpc.output())


def with_rows_proto(bundle: Path, output_fields: str) -> Path:
    """Replace pack's flat proto with the rows proto, then check it as pack does (load, answer the sample)."""
    (bundle / "model.proto").write_text(ROWS_PROTO % output_fields)
    check_bundle(bundle)
    return bundle


def set_config(bundle: Path, config: dict) -> None:
    """Rewrite the configuration inside pack's zip (pack_bundle has no option for `output`)."""
    path = bundle / "modelpackage.zip"
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(entries["runner.json"])
    manifest["config"] = config
    entries["runner.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def manifest_of(bundle: Path) -> dict:
    with zipfile.ZipFile(bundle / "modelpackage.zip") as archive:
        return json.loads(archive.read("runner.json"))


def expected_ints(values) -> list[int]:
    return [int(v) for v in np.asarray(values).ravel()]


# ---------------------------------------------------------------- models

@pytest.fixture(scope="module")
def logreg() -> LogisticRegression:
    return LogisticRegression(max_iter=300).fit(X, Y)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def logreg_joblib(logreg, models_dir) -> Path:
    path = models_dir / "logreg.joblib"
    joblib.dump(logreg, path)
    return path


# ---------------------------------------------------------------- sklearn

def test_it_serves_sklearn_joblib_one_row_per_request(logreg, logreg_joblib, tmp_path, make_client):
    bundle = pack_bundle(model=logreg_joblib, flavour="sklearn", name="Iris", method="classify",
                         inputs=SINGLE_INPUT, outputs="species:int64", out=tmp_path / "b",
                         sample=single_request(ROWS[0]))
    assert manifest_of(bundle)["serialization"] == "joblib"
    with make_client(bundle) as client:
        for row in ROWS:
            expected = {"species": int(logreg.predict(row.reshape(1, -1))[0])}
            assert_answers(client, bundle, "classify", single_request(row), expected)


def test_it_serves_sklearn_joblib_columns_as_several_rows(logreg, logreg_joblib, tmp_path, make_client):
    bundle = pack_bundle(model=logreg_joblib, flavour="sklearn", name="Iris", method="classify",
                         inputs=COLUMNS_INPUT, outputs="species:repeated int64", out=tmp_path / "b",
                         sample=columns_request(ROWS[:2]))
    with make_client(bundle) as client:
        expected = {"species": expected_ints(logreg.predict(ROWS))}
        assert_answers(client, bundle, "classify", columns_request(ROWS), expected)


def test_it_serves_sklearn_saved_with_pickle(tmp_path, make_client):
    import pickle

    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, Y)
    path = tmp_path / "tree.pkl"
    path.write_bytes(pickle.dumps(tree))
    bundle = pack_bundle(model=path, flavour="sklearn", name="Iris", method="classify", inputs=COLUMNS_INPUT,
                         outputs="species:repeated int64", out=tmp_path / "b", sample=columns_request(ROWS[:1]))
    manifest = manifest_of(bundle)
    assert (manifest["serialization"], manifest["model"]) == ("pickle", "model.pkl")
    with make_client(bundle) as client:
        expected = {"species": expected_ints(tree.predict(ROWS))}
        assert_answers(client, bundle, "classify", columns_request(ROWS), expected)


def test_it_serves_sklearn_pickle_when_told_so_whatever_the_file_is_called(tmp_path, make_client):
    import pickle

    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, Y)
    path = tmp_path / "tree.bin"
    path.write_bytes(pickle.dumps(tree))
    bundle = pack_bundle(model=path, flavour="sklearn", name="Iris", method="classify", inputs=SINGLE_INPUT,
                         outputs="species:int64", out=tmp_path / "b", sample=single_request(ROWS[0]),
                         serialization="pickle")
    assert manifest_of(bundle)["serialization"] == "pickle"
    with make_client(bundle) as client:
        assert_answers(client, bundle, "classify", single_request(ROWS[3]),
                       {"species": int(tree.predict(ROWS[3:4])[0])})


def test_it_passes_a_data_frame_to_an_estimator_fitted_on_one(tmp_path, make_client):
    frame = pd.DataFrame(X, columns=FEATURES)
    names = np.array(["setosa", "versicolor", "virginica"])[Y]
    model = LogisticRegression(max_iter=300).fit(frame, names)
    path = tmp_path / "named.joblib"
    joblib.dump(model, path)
    bundle = pack_bundle(model=path, flavour="sklearn", name="Iris", method="classify", inputs=COLUMNS_INPUT,
                         outputs="species:repeated string", out=tmp_path / "b", sample=columns_request(ROWS[:1]))
    expected = model.predict(pd.DataFrame(ROWS, columns=FEATURES)).tolist()
    with make_client(bundle) as client:
        assert_answers(client, bundle, "classify", columns_request(ROWS), {"species": expected})


def test_it_serves_predict_proba_of_one_row_into_one_field_per_class(logreg, logreg_joblib, tmp_path, make_client):
    bundle = pack_bundle(model=logreg_joblib, flavour="sklearn", name="Iris", method="classify", inputs=SINGLE_INPUT,
                         outputs=PROBABILITIES, out=tmp_path / "b", sample=single_request(ROWS[0]),
                         call="predict_proba")
    with make_client(bundle) as client:
        for row in ROWS[[1, 2]]:
            p0, p1, p2 = logreg.predict_proba(row.reshape(1, -1))[0].tolist()
            assert_answers(client, bundle, "classify", single_request(row), {"p0": p0, "p1": p1, "p2": p2})


def test_it_serves_predict_proba_of_several_rows_into_repeated_fields(logreg, logreg_joblib, tmp_path, make_client):
    bundle = pack_bundle(model=logreg_joblib, flavour="sklearn", name="Iris", method="classify", inputs=COLUMNS_INPUT,
                         outputs=PROBABILITY_COLUMNS, out=tmp_path / "b", sample=columns_request(ROWS[:2]),
                         call="predict_proba")
    proba = logreg.predict_proba(ROWS)
    with make_client(bundle) as client:
        assert_answers(client, bundle, "classify", columns_request(ROWS),
                       {"p0": proba[:, 0].tolist(), "p1": proba[:, 1].tolist(), "p2": proba[:, 2].tolist()})


def test_it_serves_predict_proba_of_one_row_into_one_repeated_field(logreg, logreg_joblib, tmp_path, make_client):
    bundle = pack_bundle(model=logreg_joblib, flavour="sklearn", name="Iris", method="classify", inputs=SINGLE_INPUT,
                         outputs="probabilities:repeated double", out=tmp_path / "b", sample=single_request(ROWS[0]),
                         call="predict_proba")
    with make_client(bundle) as client:
        expected = logreg.predict_proba(ROWS[2:3])[0].tolist()
        assert_answers(client, bundle, "classify", single_request(ROWS[2]), {"probabilities": expected})


def test_it_turns_predict_proba_into_labels_with_argmax(logreg, logreg_joblib, tmp_path, make_client):
    bundle = pack_bundle(model=logreg_joblib, flavour="sklearn", name="Iris", method="classify", inputs=COLUMNS_INPUT,
                         outputs="species:repeated int64", out=tmp_path / "b", sample=columns_request(ROWS[:1]),
                         call="predict_proba", postprocess="argmax")
    with make_client(bundle) as client:
        assert_answers(client, bundle, "classify", columns_request(ROWS),
                       {"species": expected_ints(logreg.predict_proba(ROWS).argmax(axis=1))})


def test_it_rejects_a_call_the_estimator_does_not_have(logreg_joblib, tmp_path):
    with pytest.raises(ModelRejected, match="has no method 'transform_all'"):
        pack_bundle(model=logreg_joblib, flavour="sklearn", name="Iris", method="classify", inputs=SINGLE_INPUT,
                    outputs="species:int64", out=tmp_path / "b", call="transform_all")


# ---------------------------------------------------------------- xgboost

@pytest.fixture(scope="module")
def xgb_multiclass(models_dir):
    import xgboost

    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "nthread": 1, "seed": 0}
    booster = xgboost.train(params, xgboost.DMatrix(X, label=Y), num_boost_round=4)
    path = models_dir / "xgb.json"
    booster.save_model(path)
    return booster, path


def test_it_serves_an_xgboost_json_booster_with_argmax(xgb_multiclass, tmp_path, make_client):
    import xgboost

    booster, path = xgb_multiclass
    bundle = pack_bundle(model=path, flavour="xgboost", name="Iris", method="classify", inputs=COLUMNS_INPUT,
                         outputs="species:repeated int64", out=tmp_path / "b", sample=columns_request(ROWS[:2]),
                         postprocess="argmax")
    assert manifest_of(bundle)["model"] == "model.json"
    expected = expected_ints(booster.predict(xgboost.DMatrix(ROWS)).argmax(axis=1))
    with make_client(bundle) as client:
        assert_answers(client, bundle, "classify", columns_request(ROWS), {"species": expected})


def test_it_serves_xgboost_probabilities_of_one_row(xgb_multiclass, tmp_path, make_client):
    import xgboost

    booster, path = xgb_multiclass
    bundle = pack_bundle(model=path, flavour="xgboost", name="Iris", method="classify", inputs=SINGLE_INPUT,
                         outputs=PROBABILITIES, out=tmp_path / "b", sample=single_request(ROWS[0]))
    p0, p1, p2 = booster.predict(xgboost.DMatrix(ROWS[2:3]))[0].tolist()
    with make_client(bundle) as client:
        assert_answers(client, bundle, "classify", single_request(ROWS[2]), {"p0": p0, "p1": p1, "p2": p2})


def test_it_serves_a_binary_xgboost_booster_with_argmax_on_one_probability(tmp_path, make_client):
    import xgboost

    is_virginica = (Y == 2).astype(int)
    params = {"objective": "binary:logistic", "max_depth": 2, "nthread": 1, "seed": 0}
    booster = xgboost.train(params, xgboost.DMatrix(X, label=is_virginica), num_boost_round=3)
    path = tmp_path / "binary.json"
    booster.save_model(path)
    bundle = pack_bundle(model=path, flavour="xgboost", name="Virginica", method="classify", inputs=COLUMNS_INPUT,
                         outputs="virginica:repeated int64", out=tmp_path / "b", sample=columns_request(ROWS[:1]),
                         postprocess="argmax")
    expected = expected_ints(booster.predict(xgboost.DMatrix(ROWS)) > 0.5)
    assert 0 < sum(expected) < len(expected)
    with make_client(bundle) as client:
        assert_answers(client, bundle, "classify", columns_request(ROWS), {"virginica": expected})


# ---------------------------------------------------------------- lightgbm

@pytest.fixture(scope="module")
def lgb_multiclass(models_dir):
    import lightgbm

    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 4, "min_data_in_leaf": 5,
              "num_threads": 1, "verbose": -1, "seed": 0, "deterministic": True}
    booster = lightgbm.train(params, lightgbm.Dataset(X, label=Y), num_boost_round=5)
    path = models_dir / "lgb.txt"
    booster.save_model(str(path))
    return booster, path


def test_it_serves_a_lightgbm_text_model_on_rows_of_a_sub_message(lgb_multiclass, tmp_path, make_client):
    booster, path = lgb_multiclass
    bundle = pack_bundle(model=path, flavour="lightgbm", name="Iris", method="classify", inputs=COLUMNS_INPUT,
                         outputs="species:repeated int64", out=tmp_path / "b", sample=rows_request(ROWS[:2]),
                         postprocess="argmax", check=False)
    with_rows_proto(bundle, "repeated int64 species = 1;")
    assert manifest_of(bundle)["model"] == "model.txt"
    with make_client(bundle) as client:
        assert_answers(client, bundle, "classify", rows_request(ROWS),
                       {"species": expected_ints(booster.predict(ROWS).argmax(axis=1))})


def test_it_serves_lightgbm_probabilities_for_columns(lgb_multiclass, tmp_path, make_client):
    booster, path = lgb_multiclass
    bundle = pack_bundle(model=path, flavour="lightgbm", name="Iris", method="classify", inputs=COLUMNS_INPUT,
                         outputs=PROBABILITY_COLUMNS, out=tmp_path / "b", sample=columns_request(ROWS[:1]))
    proba = booster.predict(ROWS)
    with make_client(bundle) as client:
        assert_answers(client, bundle, "classify", columns_request(ROWS),
                       {"p0": proba[:, 0].tolist(), "p1": proba[:, 1].tolist(), "p2": proba[:, 2].tolist()})


# ---------------------------------------------------------------- onnx

@pytest.fixture(scope="module")
def onnx_logreg(logreg, models_dir):
    import onnxruntime
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    graph = convert_sklearn(logreg, initial_types=[("input", FloatTensorType([None, 4]))],
                            options={id(logreg): {"zipmap": False}}, target_opset=17)
    path = models_dir / "logreg.onnx"
    path.write_bytes(graph.SerializeToString())
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]), path


def test_it_serves_an_onnx_graph_converted_from_sklearn(onnx_logreg, tmp_path, make_client):
    session, path = onnx_logreg
    bundle = pack_bundle(model=path, flavour="onnx", name="Iris", method="classify", inputs=COLUMNS_INPUT,
                         outputs="species:repeated int64", out=tmp_path / "b", sample=columns_request(ROWS[:2]))
    (labels,) = session.run(["label"], {"input": ROWS.astype(np.float32)})
    with make_client(bundle) as client:
        assert_answers(client, bundle, "classify", columns_request(ROWS), {"species": expected_ints(labels)})


def test_it_serves_the_onnx_output_the_configuration_picks(onnx_logreg, tmp_path, make_client):
    session, path = onnx_logreg
    bundle = pack_bundle(model=path, flavour="onnx", name="Iris", method="classify", inputs=SINGLE_INPUT,
                         outputs="p0:float,p1:float,p2:float", out=tmp_path / "b", check=False)
    set_config(bundle, {"methods": {"classify": {"output": "probabilities"}}, "params": {}})
    check_bundle(bundle)
    (proba,) = session.run(["probabilities"], {"input": ROWS[3:4].astype(np.float32)})
    p0, p1, p2 = proba[0].tolist()
    with make_client(bundle) as client:
        assert_answers(client, bundle, "classify", single_request(ROWS[3]), {"p0": p0, "p1": p1, "p2": p2})


def test_it_rejects_an_onnx_output_the_graph_does_not_have(onnx_logreg, tmp_path):
    _, path = onnx_logreg
    bundle = pack_bundle(model=path, flavour="onnx", name="Iris", method="classify", inputs=SINGLE_INPUT,
                         outputs="species:int64", out=tmp_path / "b", check=False)
    set_config(bundle, {"methods": {"classify": {"output": "scores"}}, "params": {}})
    with pytest.raises(ModelRejected, match="no output 'scores' \\(has: label, probabilities\\)"):
        check_bundle(bundle)


@pytest.fixture(scope="module")
def onnx_two_inputs(models_dir):
    """y = 2a + b and z = a - b, from two graph inputs named like the message fields."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 1]) for n in ("a", "b")]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 1]) for n in ("y", "z")]
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    nodes = [helper.make_node("Mul", ["a", "two"], ["twice_a"]), helper.make_node("Add", ["twice_a", "b"], ["y"]),
             helper.make_node("Sub", ["a", "b"], ["z"])]
    graph = helper.make_graph(nodes, "two_inputs", inputs, outputs, initializer=[two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = models_dir / "two.onnx"
    path.write_bytes(model.SerializeToString())
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]), path


def test_it_feeds_each_field_to_the_onnx_input_of_its_name(onnx_two_inputs, tmp_path, make_client):
    session, path = onnx_two_inputs
    # The fields are declared b first: inputs are matched by name, not by position.
    bundle = pack_bundle(model=path, flavour="onnx", name="Two", method="combine",
                         inputs="b:repeated double,a:repeated double", outputs="y:repeated float", out=tmp_path / "b",
                         sample={"a": [1.0], "b": [2.0]})
    a, b = np.array([0.5, -1.25, 3.0]), np.array([10.0, 0.125, -7.5])
    (y,) = session.run(["y"], {"a": a.astype(np.float32).reshape(-1, 1), "b": b.astype(np.float32).reshape(-1, 1)})
    with make_client(bundle) as client:
        assert_answers(client, bundle, "combine", {"a": a.tolist(), "b": b.tolist()}, {"y": y.ravel().tolist()})


def test_it_serves_one_row_through_a_multi_input_onnx_graph(onnx_two_inputs, tmp_path, make_client):
    session, path = onnx_two_inputs
    bundle = pack_bundle(model=path, flavour="onnx", name="Two", method="combine", inputs="a:float,b:float",
                         outputs="z:double", out=tmp_path / "b", check=False)
    set_config(bundle, {"methods": {"combine": {"output": "z"}}, "params": {}})
    (z,) = session.run(["z"], {"a": np.array([[4.5]], np.float32), "b": np.array([[1.25]], np.float32)})
    with make_client(bundle) as client:
        assert_answers(client, bundle, "combine", {"a": 4.5, "b": 1.25}, {"z": z.item()})


# ---------------------------------------------------------------- python functions

def two_functions() -> dict:
    def add(a: float, b: float):
        return {"total": a + b, "terms": 2}

    def describe(words: list, blob: bytes, config: dict):
        return {"summary": config["sep"].join(w.upper() for w in words), "size": len(blob)}

    return {"add": add, "describe": describe}


def test_it_serves_a_dict_of_python_functions_as_two_methods(tmp_path, make_client):
    functions = two_functions()
    params = {"sep": "+"}
    bundle = pack_bundle(model=functions, flavour="python", name="Tools", method="add", inputs="a:double,b:double",
                         outputs="total:double,terms:int64", out=tmp_path / "b", sample={"a": 1, "b": 2},
                         params=params, check=False)
    from runner_image.pack import parse_signature

    methods = {"add": (parse_signature("a:double,b:double"), parse_signature("total:double,terms:int64")),
               "describe": (parse_signature("words:repeated string,blob:bytes"),
                            parse_signature("summary:string,size:int64"))}
    (bundle / "model.proto").write_text(render_proto("tools", methods))
    metadata = render_metadata("Tools", "python", methods, [], version=None, description="")
    (bundle / "metadata.json").write_text(json.dumps(metadata))
    check_bundle(bundle)

    with make_client(bundle) as client:
        assert_answers(client, bundle, "add", {"a": 1.5, "b": -4.25}, functions["add"](a=1.5, b=-4.25))
        words, blob = ["red", "green"], b"\x00\x01\x02"
        expected = functions["describe"](words=words, blob=blob, config=params)
        assert expected == {"summary": "RED+GREEN", "size": 3}
        request = {"words": words, "blob": "AAEC"}
        assert_answers(client, bundle, "describe", request, expected)


def test_it_hands_config_params_to_a_function_that_takes_config(tmp_path, make_client):
    def make():
        def scale(x: float, config: dict):
            return x * config["factor"] + config.get("shift", 0)

        return scale

    scale = make()
    bundle = pack_bundle(model=scale, flavour="python", name="Scaler", method="scale", inputs="x:double",
                         outputs="y:double", out=tmp_path / "b", sample={"x": 1.0}, params={"factor": 3.0, "shift": 1})
    with make_client(bundle) as client:
        assert_answers(client, bundle, "scale", {"x": 2.5}, {"y": scale(2.5, config={"factor": 3.0, "shift": 1})})


def test_it_serves_a_partial_function(tmp_path, make_client):
    def power(x: float, exponent: int):
        return {"y": x**exponent}

    cube = functools.partial(power, exponent=3)
    bundle = pack_bundle(model=cube, flavour="python", name="Cube", method="cube", inputs="x:double",
                         outputs="y:double", out=tmp_path / "b", sample={"x": 2.0})
    with make_client(bundle) as client:
        assert_answers(client, bundle, "cube", {"x": 1.5}, cube(x=1.5))


def test_it_serves_an_object_whose_attributes_are_named_after_the_methods(tmp_path, make_client):
    def make():
        class Counter:
            def count(self, values: list):
                return {"n": len(values), "total": sum(values)}

        return Counter()

    model = make()
    path = tmp_path / "counter.pkl"
    path.write_bytes(cloudpickle.dumps(model))
    bundle = pack_bundle(model=path, flavour="python", name="Counter", method="count", inputs="values:repeated int64",
                         outputs="n:int64,total:int64", out=tmp_path / "b", sample={"values": [1, 2]})
    with make_client(bundle) as client:
        assert_answers(client, bundle, "count", {"values": [5, 7, 2**40]}, model.count(values=[5, 7, 2**40]))


def test_it_rejects_a_python_model_without_the_method(tmp_path):
    with pytest.raises(ModelRejected, match="no function for method 'missing'"):
        pack_bundle(model=two_functions(), flavour="python", name="Tools", method="missing", inputs="a:double",
                    outputs="b:double", out=tmp_path / "b")


def test_it_refuses_a_model_path_for_flavour_python_that_does_not_exist(tmp_path):
    with pytest.raises(SignatureError, match="does not exist"):
        pack_bundle(model=tmp_path / "nope.pkl", flavour="python", name="X", method="m", inputs="a:double",
                    outputs="b:double", out=tmp_path / "b")


# ---------------------------------------------------------------- mlflow

def test_it_serves_an_mlflow_sklearn_model_directory(tmp_path, make_client):
    import mlflow.pyfunc
    import mlflow.sklearn

    # Fitted on a DataFrame, as the runner hands MLflow models a DataFrame with the field names.
    model = LogisticRegression(max_iter=300).fit(pd.DataFrame(X, columns=FEATURES), Y)
    directory = tmp_path / "mlflow-model"
    mlflow.sklearn.save_model(model, str(directory), pip_requirements=["scikit-learn"])
    bundle = pack_bundle(model=directory, flavour="mlflow", name="Iris", method="classify", inputs=COLUMNS_INPUT,
                         outputs="species:repeated int64", out=tmp_path / "b", sample=columns_request(ROWS[:1]))
    assert manifest_of(bundle)["model"] == "model"
    expected = mlflow.pyfunc.load_model(str(directory)).predict(pd.DataFrame(ROWS, columns=FEATURES))
    with make_client(bundle) as client:
        assert_answers(client, bundle, "classify", columns_request(ROWS), {"species": expected_ints(expected)})


def test_it_fills_output_fields_from_the_columns_of_an_mlflow_data_frame(tmp_path, make_client):
    import mlflow.pyfunc

    def make():
        class Summary(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
                # Columns in another order than the output message: they are matched by name.
                return pd.DataFrame({"ratio": model_input["petal_length"] / model_input["sepal_length"],
                                     "wide": (model_input["sepal_width"] > 3.0).astype("int64")})

        return Summary()

    directory = tmp_path / "mlflow-custom"
    mlflow.pyfunc.save_model(str(directory), python_model=make(), pip_requirements=["pandas"])
    bundle = pack_bundle(model=directory, flavour="mlflow", name="Iris", method="classify", inputs=COLUMNS_INPUT,
                         outputs="wide:repeated int64,ratio:repeated double", out=tmp_path / "b",
                         sample=rows_request(ROWS[:1]), check=False)
    with_rows_proto(bundle, "repeated int64 wide = 1;\n  repeated double ratio = 2;")
    frame = mlflow.pyfunc.load_model(str(directory)).predict(pd.DataFrame(ROWS, columns=FEATURES))
    expected = {"wide": expected_ints(frame["wide"]), "ratio": frame["ratio"].tolist()}
    assert 0 < sum(expected["wide"]) < len(ROWS)
    with make_client(bundle) as client:
        assert_answers(client, bundle, "classify", rows_request(ROWS), expected)
