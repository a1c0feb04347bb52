"""The `pack` command: from a model file and a signature to a bundle the runner serves."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from importlib import metadata as pkg_metadata
from pathlib import Path

import cloudpickle
import joblib
import numpy as np
import pytest
from google.protobuf.descriptor import FieldDescriptor as FD
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from runner_image import cli
from runner_image.protos import compile_proto

IRIS_INPUT = "sepal_length:double,sepal_width:double,petal_length:double,petal_width:double"
IRIS_ROW = {"sepal_length": 6.3, "sepal_width": 2.9, "petal_length": 5.6, "petal_width": 1.8}


@pytest.fixture(scope="module")
def iris_model() -> LogisticRegression:
    iris = load_iris()
    return LogisticRegression(max_iter=300).fit(iris.data, iris.target)


@pytest.fixture(scope="module")
def model_file(iris_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "iris.joblib"
    joblib.dump(iris_model, path)
    return path


@pytest.fixture(scope="module")
def adder_file(tmp_path_factory) -> Path:
    def make():
        def add_numbers(a: float, b: float):
            return a + b

        return add_numbers

    path = tmp_path_factory.mktemp("adder") / "adder.pkl"
    path.write_bytes(cloudpickle.dumps(make()))
    return path


def iris_args(model: Path, out: Path, *extra: str) -> list[str]:
    return ["pack", "--model", str(model), "--flavour", "sklearn", "--name", "Iris Classifier", "--method", "classify",
            "--input", IRIS_INPUT, "--output", "species:int64", "--out", str(out), *extra]


def adder_args(model: Path, out: Path, *extra: str) -> list[str]:
    return ["pack", "--model", str(model), "--flavour", "python", "--name", "Adder", "--method", "add_numbers",
            "--input", "a:double,b:double", "--output", "value:double", "--out", str(out), *extra]


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner_image", *args], capture_output=True, text=True, timeout=120,
                          check=False)


def write_sample(tmp_path: Path, sample: dict) -> Path:
    path = tmp_path / "sample.json"
    path.write_text(json.dumps(sample))
    return path


def runner_json(bundle: Path) -> dict:
    with zipfile.ZipFile(bundle / "modelpackage.zip") as archive:
        return json.loads(archive.read("runner.json"))


def predicted_species(model, row: dict) -> int:
    return int(model.predict(np.array([list(row.values())]))[0])


# ---------------------------------------------------------------- the command

def test_it_writes_the_three_files_from_a_subprocess(model_file, tmp_path):
    out = tmp_path / "bundle"
    result = run_cli(iris_args(model_file, out, "--sample", str(write_sample(tmp_path, IRIS_ROW))))
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "model.proto", "modelpackage.zip"]
    manifest = runner_json(out)
    assert manifest["flavour"] == "sklearn"
    assert manifest["serialization"] == "joblib"
    assert manifest["samples"] == {"classify": IRIS_ROW}


def test_it_writes_the_three_files_from_cli_main(model_file, tmp_path, capsys):
    out = tmp_path / "bundle"
    assert cli.main(iris_args(model_file, out)) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert all((out / name).is_file() for name in ("metadata.json", "model.proto", "modelpackage.zip"))
    with zipfile.ZipFile(out / "modelpackage.zip") as archive:
        assert sorted(archive.namelist()) == ["model.joblib", "runner.json"]
        assert archive.read("model.joblib") == model_file.read_bytes()


def test_it_names_messages_and_service_as_acumos_does(adder_file, tmp_path):
    out = tmp_path / "bundle"
    assert cli.main(adder_args(adder_file, out)) == 0
    text = (out / "model.proto").read_text()
    assert 'syntax = "proto3";' in text
    assert "package adder;" in text
    assert "service Model {" in text
    assert "rpc add_numbers (AddNumbersIn) returns (AddNumbersOut);" in text
    compiled = compile_proto(text)
    assert compiled.service_name == "Model"
    method = compiled.methods["add_numbers"]
    assert method.input.DESCRIPTOR.name == "AddNumbersIn"
    assert method.output.DESCRIPTOR.name == "AddNumbersOut"
    assert [(f.name, f.type) for f in method.input.DESCRIPTOR.fields] == [("a", FD.TYPE_DOUBLE), ("b", FD.TYPE_DOUBLE)]
    assert [(f.name, f.type) for f in method.output.DESCRIPTOR.fields] == [("value", FD.TYPE_DOUBLE)]


def test_it_makes_a_proto_package_from_the_model_name(model_file, tmp_path):
    out = tmp_path / "bundle"
    assert cli.main(iris_args(model_file, out)) == 0
    text = (out / "model.proto").read_text()
    assert "package iris_classifier;" in text
    assert "rpc classify (ClassifyIn) returns (ClassifyOut);" in text


def test_it_writes_acumos_metadata(model_file, tmp_path):
    out = tmp_path / "bundle"
    args = iris_args(model_file, out, "--model-version", "2.1.0", "--description", "iris species",
                     "--requirement", "numpy==1.26.4")
    assert cli.main(args) == 0
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["schema"] == "acumos.schema.model:0.6.0"
    assert meta["name"] == "Iris Classifier"
    assert meta["modelVersion"] == "2.1.0"
    assert meta["runtime"]["name"] == "python"
    assert meta["runtime"]["toolkit"] == "sklearn"
    requirements = {r["name"]: r["version"] for r in meta["runtime"]["dependencies"]["pip"]["requirements"]}
    assert requirements["scikit-learn"] == pkg_metadata.version("scikit-learn")
    assert requirements["joblib"] == pkg_metadata.version("joblib")
    assert requirements["numpy"] == "1.26.4"
    method = meta["methods"]["classify"]
    assert method["input"]["name"] == "ClassifyIn"
    assert method["output"]["name"] == "ClassifyOut"
    assert method["description"] == "iris species"
    assert meta["description"] == "iris species"  # the marketplace's model page starts from it
    assert runner_json(out)["requirements"] == ["numpy==1.26.4"]


def test_it_omits_the_model_version_when_none_is_given(model_file, tmp_path):
    assert cli.main(iris_args(model_file, tmp_path / "b")) == 0
    meta = json.loads((tmp_path / "b" / "metadata.json").read_text())
    assert "modelVersion" not in meta and "description" not in meta


@pytest.mark.parametrize("signature", ["a:repeated double,b:repeated int64", "repeated a:double, repeated b:int64",
                                       "a: repeated double , repeated b : int64"])
def test_it_accepts_repeated_on_either_side_of_the_colon(adder_file, tmp_path, signature):
    out = tmp_path / "bundle"
    args = ["pack", "--model", str(adder_file), "--flavour", "python", "--name", "Adder", "--method", "add_numbers",
            "--input", signature, "--output", "value:repeated double", "--out", str(out), "--no-check"]
    assert cli.main(args) == 0
    text = (out / "model.proto").read_text()
    assert "repeated double a = 1;" in text
    assert "repeated int64 b = 2;" in text
    assert "repeated double value = 1;" in text
    fields = compile_proto(text).methods["add_numbers"].input.DESCRIPTOR.fields
    assert [f.name for f in fields] == ["a", "b"]


def test_it_keeps_config_for_call_and_postprocess(model_file, tmp_path):
    out = tmp_path / "bundle"
    args = iris_args(model_file, out, "--call", "predict_proba", "--postprocess", "argmax")
    assert cli.main(args) == 0
    assert runner_json(out)["config"] == {"methods": {"classify": {"call": "predict_proba", "postprocess": "argmax"}},
                                          "params": {}}


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("case", [
    ("--input", "a:decimal", "field a has type 'decimal'; allowed: double, float, int64"),
    ("--input", "1a:double", "'1a' is not a valid field name"),
    ("--input", "my-field:double", "'my-field' is not a valid field name"),
    ("--input", "a:double,b:int64,a:string", "--input declares a more than once"),
    ("--input", "a double", "'a double' must be name:type"),
    ("--input", " , ", "--input declares no fields"),
    ("--output", "label", "--output: 'label' must be name:type"),
    ("--output", "label:repeated", "type 'repeated'"),
])
def test_it_rejects_a_bad_signature_with_exit_code_2(model_file, tmp_path, capsys, case):
    option, signature, words = case
    args = iris_args(model_file, tmp_path / "bundle")
    args[args.index(option) + 1] = signature
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert words in err
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize("check", [[], ["--no-check"]])
def test_it_rejects_a_method_name_that_cannot_be_an_rpc(model_file, tmp_path, capsys, check):
    args = iris_args(model_file, tmp_path / "bundle", *check)
    args[args.index("--method") + 1] = "classify-v2"
    assert cli.main(args) == 2
    assert "--method 'classify-v2' is not a valid method name" in capsys.readouterr().err
    assert not (tmp_path / "bundle").exists()


def test_it_rejects_a_bad_signature_from_a_subprocess(model_file, tmp_path):
    args = iris_args(model_file, tmp_path / "bundle")
    args[args.index("--input") + 1] = "x:complex"
    result = run_cli(args)
    assert result.returncode == 2
    assert "error: --input: field x has type 'complex'" in result.stderr
    assert "Traceback" not in result.stderr


def test_it_rejects_a_model_file_that_does_not_exist(tmp_path, capsys):
    assert cli.main(iris_args(tmp_path / "missing.joblib", tmp_path / "bundle")) == 2
    assert f"--model {tmp_path / 'missing.joblib'} does not exist" in capsys.readouterr().err


def test_it_requires_the_model_option(tmp_path, capsys):
    args = iris_args(Path("unused"), tmp_path / "bundle")
    del args[1:3]
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    assert "--model" in capsys.readouterr().err


def test_it_wants_a_directory_for_mlflow(model_file, tmp_path, capsys):
    args = iris_args(model_file, tmp_path / "bundle")
    args[args.index("--flavour") + 1] = "mlflow"
    assert cli.main(args) == 2
    assert "must be a directory" in capsys.readouterr().err


def test_it_rejects_a_sample_the_model_cannot_answer(model_file, tmp_path, capsys):
    sample = write_sample(tmp_path, {"sepal_length": "long"})
    assert cli.main(iris_args(model_file, tmp_path / "bundle", "--sample", str(sample))) == 2
    err = capsys.readouterr().err
    assert "does not fit the input message" in err
    assert "field 'sepal_length'" in err


# ---------------------------------------------------------------- check and serve

def test_it_writes_a_bundle_that_serves_and_answers_its_sample(model_file, iris_model, tmp_path, make_client):
    out = tmp_path / "bundle"
    assert cli.main(iris_args(model_file, out, "--sample", str(write_sample(tmp_path, IRIS_ROW)))) == 0
    sample = runner_json(out)["samples"]["classify"]
    with make_client(out) as client:
        answer = client.post("/model/methods/classify", json=sample)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"species": predicted_species(iris_model, IRIS_ROW)}
        metadata = client.get("/model/artifacts/metadata").json()
        assert metadata["methods"]["classify"]["input"]["name"] == "ClassifyIn"


def test_it_serves_the_acumos_named_function(adder_file, tmp_path, make_client):
    out = tmp_path / "bundle"
    assert cli.main(adder_args(adder_file, out, "--sample", str(write_sample(tmp_path, {"a": 1, "b": 2})))) == 0
    with make_client(out) as client:
        assert client.post("/model/methods/add_numbers", json={"a": 1.25, "b": 2.5}).json() == {"value": 3.75}


def test_it_loads_the_model_to_check_the_bundle(tmp_path, capsys):
    junk = tmp_path / "junk.joblib"
    junk.write_bytes(b"this is not a joblib file")
    assert cli.main(iris_args(junk, tmp_path / "bundle")) == 2
    assert "the sklearn model failed to load" in capsys.readouterr().err


def test_it_skips_loading_with_no_check(tmp_path):
    junk = tmp_path / "junk.joblib"
    junk.write_bytes(b"this is not a joblib file")
    out = tmp_path / "bundle"
    assert cli.main(iris_args(junk, out, "--no-check")) == 0
    assert all((out / name).is_file() for name in ("metadata.json", "model.proto", "modelpackage.zip"))


def test_it_reports_an_unreadable_sample_file_cleanly(tmp_path, capsys):
    from runner_image.cli import main

    bad = tmp_path / "sample.json"
    bad.write_text("{not json")
    code = main(["pack", "--model", str(tmp_path / "m.pkl"), "--flavour", "python", "--name", "N",
                 "--method", "m", "--input", "x:double", "--output", "y:double", "--sample", str(bad),
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert "--sample" in capsys.readouterr().err


def test_it_removes_the_bundle_when_its_check_fails(tmp_path):
    import pytest

    from runner_image.errors import RunnerError
    from runner_image.pack import pack_bundle

    def broken(x: float):
        raise ValueError("always broken")

    out = tmp_path / "out"
    with pytest.raises(RunnerError):
        pack_bundle(model=broken, flavour="python", name="Broken", method="m", inputs="x:double",
                    outputs="y:double", out=out, sample={"x": 1.0})
    assert not any(out.iterdir())
