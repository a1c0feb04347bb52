"""metadata.json (Acumos model schema 0.4 to 0.6) and license.json (licence profile) checks: what
is accepted, and what is refused with the path of the field at fault."""

from __future__ import annotations

import copy
import json

import pytest

from onboarding import validation
from onboarding.validation import Invalid

from .test_faults import VALID_LICENCE

PROTO = """syntax = "proto3";
package irisclassifier;

service Model {
  rpc classify (ClassifyIn) returns (ClassifyOut);
}

message ClassifyIn {
  double sepal_length = 1;
  double sepal_width = 2;
  double petal_length = 3;
  double petal_width = 4;
}

message ClassifyOut {
  int64 species = 1;
}
"""
PYTHON_RUNTIME = {"name": "python", "version": "3.11.7", "toolkit": "sklearn",
                  "dependencies": {"pip": {"indexes": [], "requirements": [{"name": "scikit-learn", "version": "1.5"}]},
                                   "conda": {"channels": [], "requirements": []}}}
# As the Acumos clients wrote them: 0.4 names the messages; 0.5 and 0.6 describe them.
METADATA = {
    "0.4.0": {"schema": "acumos.schema.model:0.4.0", "name": "IrisClassifier",
              "runtime": {**PYTHON_RUNTIME, "encoding": "protobuf"},
              "methods": {"classify": {"input": "ClassifyIn", "output": "ClassifyOut", "description": ""}}},
    "0.5.0": {"schema": "acumos.schema.model:0.5.0", "name": "IrisClassifier", "runtime": PYTHON_RUNTIME,
              "methods": {"classify": {"input": {"name": "ClassifyIn", "media_type": "application/vnd.google.protobuf"},
                                       "output": {"name": "ClassifyOut"}, "description": "species"}}},
    "0.6.0": {"schema": "acumos.schema.model:0.6.0", "name": "IrisClassifier", "modelVersion": "1.0.0",
              "description": "Iris species", "runtime": PYTHON_RUNTIME,
              "methods": {"classify": {
                  "input": {"name": "ClassifyIn", "media_type": ["application/vnd.google.protobuf"], "metadata": {},
                            "description": ""},
                  "output": {"name": "ClassifyOut", "media_type": ["application/vnd.google.protobuf"],
                             "metadata": {}, "description": ""},
                  "description": "species"}}},
}


def write_json(tmp_path, document, name: str = "document.json"):
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def metadata(version: str = "0.6.0", **changes) -> dict:
    document = copy.deepcopy(METADATA[version])
    document.update(changes)
    return document


def refused(check, *args) -> Invalid:
    with pytest.raises(Invalid) as caught:
        check(*args)
    return caught.value


def fields(invalid: Invalid) -> list[str]:
    return [error["field"] for error in invalid.errors]


@pytest.fixture
def proto_path(tmp_path):
    path = tmp_path / "model.proto"
    path.write_text(PROTO)
    return path


# ---------------------------------------------------------------- metadata

@pytest.mark.parametrize("version", list(METADATA))
def test_it_accepts_metadata_of_schema(version, tmp_path, proto_path):
    document = validation.validate_metadata(write_json(tmp_path, metadata(version)))
    assert document == METADATA[version]
    proto = validation.validate_proto(proto_path, document)  # message names match, string or object
    assert proto.service_name == "Model" and list(proto.methods) == ["classify"]
    spec = document["methods"]["classify"]
    assert (validation.message_name(spec["input"]), validation.message_name(spec["output"])) == (
        "ClassifyIn", "ClassifyOut")


def test_it_refuses_metadata_of_schema_0_3_with_the_field_path(tmp_path):
    invalid = refused(validation.validate_metadata, write_json(tmp_path, metadata(schema="acumos.schema.model:0.3.0")))
    assert invalid.part == "metadata"
    assert fields(invalid) == ["schema"]
    assert invalid.message.startswith("metadata.json does not match the schema: schema: 'acumos.schema.model:0.3.0'")


@pytest.mark.parametrize(("document", "field", "says"), [
    ([1, 2, 3], "(root)", "is not of type 'object'"),
    ("metadata", "(root)", "is not of type 'object'"),
    ({}, "(root)", "'schema' is a required property"),
    ({**METADATA["0.6.0"], "schema": "model:0.6.0"}, "schema", "does not match"),
    ({**METADATA["0.6.0"], "name": ""}, "name", "should be non-empty"),
    ({**METADATA["0.6.0"], "methods": []}, "methods", "is not of type 'object'"),
    ({**METADATA["0.6.0"], "methods": {}}, "methods", "should be non-empty"),
    ({**METADATA["0.6.0"], "methods": {"classify": {"output": "ClassifyOut"}}}, "methods.classify",
     "'input' is a required property"),
    ({**METADATA["0.6.0"], "methods": {"classify": {"input": {"media_type": []}}}}, "methods.classify.input",
     "is not valid under any of the given schemas"),
    ({**METADATA["0.6.0"], "runtime": {"name": "python"}}, "runtime", "is not valid under any of the given schemas"),
], ids=["list", "string", "empty", "schema", "name", "methods-list", "no-methods", "no-input", "input-object",
        "runtime-version"])
def test_it_refuses_garbage_metadata_with_the_field_path(document, field, says, tmp_path):
    invalid = refused(validation.validate_metadata, write_json(tmp_path, document))
    assert invalid.part == "metadata"
    assert fields(invalid)[0] == field
    assert says in invalid.errors[0]["message"]
    assert invalid.message.startswith(f"metadata.json does not match the schema: {field}: ")


def test_it_lists_every_metadata_error_and_counts_the_rest_in_the_message(tmp_path):
    document = metadata(name="", modelVersion="not a version", methods=[])
    invalid = refused(validation.validate_metadata, write_json(tmp_path, document))
    assert fields(invalid) == ["methods", "modelVersion", "name"]
    assert invalid.message.endswith("(and 2 more)")


def test_it_refuses_metadata_that_is_not_json(tmp_path):
    path = tmp_path / "metadata.json"
    path.write_text('{"schema": ')
    invalid = refused(validation.validate_metadata, path)
    assert invalid.part == "metadata" and invalid.message.startswith("metadata is not valid JSON: Expecting value")
    assert invalid.errors == [{"field": "", "message": "Expecting value: line 1 column 12 (char 11)"}]


def test_it_refuses_metadata_larger_than_a_mebibyte(tmp_path):
    document = metadata(description="x" * validation.MAX_JSON_BYTES)
    invalid = refused(validation.validate_metadata, write_json(tmp_path, document))
    assert invalid.message == f"metadata is larger than {validation.MAX_JSON_BYTES} bytes"


def test_it_accepts_a_runtime_given_as_an_array(tmp_path):
    other = {"name": "h2o", "version": "3.46"}
    document = validation.validate_metadata(write_json(tmp_path, metadata(runtime=[PYTHON_RUNTIME, other])))
    assert validation.runtime_of(document) == PYTHON_RUNTIME
    assert validation.runtime_of(metadata()) == PYTHON_RUNTIME  # and as an object


def test_it_refuses_an_empty_runtime_array(tmp_path):
    invalid = refused(validation.validate_metadata, write_json(tmp_path, metadata(runtime=[])))
    assert fields(invalid) == ["runtime"]


@pytest.mark.parametrize("version", ["1.0.0", "2", "1.2.3-rc.1+build.5", "2024.11", "v3", "A" * 50])
def test_it_accepts_a_model_version(version, tmp_path):
    assert validation.validate_metadata(write_json(tmp_path, metadata(modelVersion=version)))["modelVersion"] == version


@pytest.mark.parametrize("version", ["", "-1.0", ".1", "1.0 beta", "1/0", "1_0", "A" * 51, "1.0\n"])
def test_it_refuses_a_model_version_outside_the_pattern(version, tmp_path):
    invalid = refused(validation.validate_metadata, write_json(tmp_path, metadata(modelVersion=version)))
    assert fields(invalid) == ["modelVersion"]
    assert "does not match" in invalid.errors[0]["message"]


def test_it_refuses_a_method_name_that_cannot_be_an_rpc(tmp_path):
    document = metadata(methods={"classify-iris": METADATA["0.6.0"]["methods"]["classify"]})
    invalid = refused(validation.validate_metadata, write_json(tmp_path, document))
    assert fields(invalid) == ["methods"]
    assert "'classify-iris' does not match" in invalid.errors[0]["message"]


def test_it_refuses_metadata_0_4_naming_a_message_the_rpc_does_not_take(tmp_path, proto_path):
    document = metadata("0.4.0")
    document["methods"]["classify"]["input"] = "IrisDataFrame"
    invalid = refused(validation.validate_proto, proto_path, document)
    assert invalid.part == "schema"
    assert invalid.errors == [{"field": "methods.classify.input", "message": (
        "method 'classify' input is ClassifyIn in the proto but IrisDataFrame in metadata.json")}]


def test_it_accepts_a_package_qualified_message_name(tmp_path, proto_path):
    document = metadata("0.4.0")
    document["methods"]["classify"]["output"] = "irisclassifier.ClassifyOut"
    assert validation.validate_proto(proto_path, document).service_name == "Model"


# ---------------------------------------------------------------- licence profile

def test_it_accepts_a_licence_profile(tmp_path):
    assert validation.validate_licence(write_json(tmp_path, VALID_LICENCE, "license.json")) == VALID_LICENCE


def test_it_accepts_a_minimal_licence_profile(tmp_path):
    minimal = {"keyword": "MIT", "licenseName": "MIT License", "copyright": {"year": 2019, "company": "A"}}
    assert validation.validate_licence(write_json(tmp_path, minimal, "license.json")) == minimal


@pytest.mark.parametrize(("change", "field", "says"), [
    ({"keyword": ""}, "keyword", "should be non-empty"),
    ({"licenseName": 7}, "licenseName", "is not of type 'string'"),
    ({"copyright": {"year": 1800, "company": "A"}}, "copyright.year", "is less than the minimum of 1900"),
    ({"copyright": {"year": 2020}}, "copyright", "'company' is a required property"),
    ({"contact": {"email": ["a@b"]}}, "contact.email", "is not of type 'string'"),
    ({"rtuRequired": "no"}, "rtuRequired", "is not of type 'boolean'"),
], ids=["keyword", "name", "year", "company", "email", "rtu"])
def test_it_refuses_a_licence_profile_with_the_field_path(change, field, says, tmp_path):
    invalid = refused(validation.validate_licence, write_json(tmp_path, {**VALID_LICENCE, **change}, "license.json"))
    assert invalid.part == "license"
    assert fields(invalid) == [field]
    assert says in invalid.errors[0]["message"]
    assert invalid.message.startswith(f"license.json does not match the schema: {field}: ")


def test_it_refuses_a_licence_that_is_not_an_object(tmp_path):
    invalid = refused(validation.validate_licence, write_json(tmp_path, ["Apache-2.0"], "license.json"))
    assert fields(invalid) == ["(root)"]


def test_it_refuses_a_licence_with_an_unknown_spdx_id_naming_it(tmp_path):
    document = {**VALID_LICENCE, "spdx": "Apache-2.0 OR Apache-2"}
    invalid = refused(validation.validate_licence, write_json(tmp_path, document, "license.json"))
    assert invalid.part == "license"
    assert fields(invalid) == ["spdx"]
    assert invalid.message.startswith("license.json: spdx: unknown licence id 'Apache-2' in the SPDX expression")
    assert "https://spdx.org/licenses/ or LicenseRef-<name>" in invalid.message


def test_it_answers_a_licence_with_its_spdx_in_canonical_form(tmp_path):
    document = {**VALID_LICENCE, "spdx": "apache-2.0 or mit"}
    licence = validation.validate_licence(write_json(tmp_path, document, "license.json"))
    assert licence == {**VALID_LICENCE, "spdx": "Apache-2.0 OR MIT"}


@pytest.mark.parametrize(("name", "named"), [
    pytest.param("nul\x00byte", "U+0000 NULL", id="nul"),
    pytest.param("CRLF\r\nSet-Cookie: pwn=1", "U+000D CARRIAGE RETURN", id="crlf"),
    pytest.param("Модель ☃ 模型 \u202egpj.exe", "U+202E RIGHT-TO-LEFT OVERRIDE", id="rtl-override"),
    pytest.param("Iris\u200bClassifier", "U+200B ZERO WIDTH SPACE", id="zero-width-space"),
    pytest.param("Iris\u2067Classifier", "U+2067 RIGHT-TO-LEFT ISOLATE", id="isolate"),
])
def test_it_refuses_a_model_name_with_hidden_characters_naming_it(name, named, tmp_path):
    document = {**METADATA["0.6.0"], "name": name}
    with pytest.raises(Invalid) as caught:
        validation.validate_metadata(write_json(tmp_path, document))
    message = f"contains {named}; control and direction characters are not allowed"
    assert str(caught.value) == f"metadata.json: name: {message}"
    assert caught.value.errors == [{"field": "name", "message": message}]


def test_it_accepts_a_model_name_in_any_script(tmp_path):
    document = {**METADATA["0.6.0"], "name": "Модель ☃ 模型 Iris (v2)"}
    assert validation.validate_metadata(write_json(tmp_path, document))["name"] == document["name"]
