"""PROTOBUF.json and TGIF.json, in the shapes Acumos's Design Studio reads, for a proto with a
repeated field, nested messages (dotted tags "1.2") and two rpcs that share their input."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from marketplace import descriptors
from runner_image.protos import compile_proto

PROTO = """syntax = "proto3";
package shop;

service Model {
  rpc score (Basket) returns (Scores);
  rpc explain (Basket) returns (Explanation);
}

message Basket {
  message Item {
    string sku = 1;
    repeated double features = 2;
  }
  string customer = 1;
  repeated Item items = 2;
  Point origin = 3;
}

message Point {
  double x = 1;
  double y = 2;
}

message Scores {
  repeated double score = 1;
}

message Explanation {
  string text = 1;
  repeated Basket.Item top_items = 2;
}
"""

ITEM_FIELDS = [{"name": "sku", "role": "", "tag": "{}.1", "type": "string"},
               {"name": "features", "role": "repeated", "tag": "{}.2", "type": "double"}]


def item_arguments(tag: str) -> list[dict]:
    return [{**argument, "tag": argument["tag"].format(tag)} for argument in ITEM_FIELDS]


BASKET = {"messageName": "Basket", "messageargumentList": [
    {"name": "customer", "role": "", "tag": "1", "type": "string"},
    {"name": "items", "role": "repeated", "tag": "2", "type": "Item",
     "complexType": {"messageName": "Item", "messageargumentList": item_arguments("2")}},
    {"name": "origin", "role": "", "tag": "3", "type": "Point",
     "complexType": {"messageName": "Point", "messageargumentList": [
         {"name": "x", "role": "", "tag": "3.1", "type": "double"},
         {"name": "y", "role": "", "tag": "3.2", "type": "double"}]}},
]}
SCORES = {"messageName": "Scores", "messageargumentList": [
    {"name": "score", "role": "repeated", "tag": "1", "type": "double"}]}
EXPLANATION = {"messageName": "Explanation", "messageargumentList": [
    {"name": "text", "role": "", "tag": "1", "type": "string"},
    {"name": "top_items", "role": "repeated", "tag": "2", "type": "Item",
     "complexType": {"messageName": "Item", "messageargumentList": item_arguments("2")}}]}


@pytest.fixture(scope="module")
def proto():
    return compile_proto(PROTO)


@pytest.fixture
def revision():
    return SimpleNamespace(version="1.2.0", description="Scores a basket", solution=SimpleNamespace(name="Shop"))


def test_it_describes_the_proto_as_protobuf_json(proto):
    assert descriptors.protobuf_json(proto) == {
        "syntax": "proto3",
        "packageName": "shop",
        "listOfOption": [],
        "listOfMessages": [BASKET, SCORES, EXPLANATION],  # each message once, though two rpcs take Basket
        "service": {"name": "Model", "listOfOperations": [
            {"operationType": "rpc", "operationName": "score",
             "listOfInputMessages": [{"inputMessageName": "Basket"}],
             "listOfOutputMessages": [{"outPutMessageName": "Scores"}]},
            {"operationType": "rpc", "operationName": "explain",
             "listOfInputMessages": [{"inputMessageName": "Basket"}],
             "listOfOutputMessages": [{"outPutMessageName": "Explanation"}]},
        ]},
    }


def test_it_describes_the_model_as_tgif_json(proto, revision):
    def exchange(message: dict) -> dict:
        return {"request": {"format": [message], "version": ""}, "response": {"format": [], "version": ""}}

    assert descriptors.tgif_json(proto, revision) == {
        "self": {"version": "1.2.0", "name": "Shop", "description": "Scores a basket", "component_type": "Docker"},
        "streams": {},
        "services": {
            # What each rpc accepts (the model's input ports) ...
            "provides": [{"route": "score", **exchange(BASKET)}, {"route": "explain", **exchange(BASKET)}],
            # ... and what it sends on (its output ports, linked to the next model's input).
            "calls": [{"config_key": "score", **exchange(SCORES)},
                      {"config_key": "explain", **exchange(EXPLANATION)}],
        },
        "parameters": [],
        "auxiliary": {},
        "artifacts": [],
    }


def test_it_writes_descriptors_that_are_plain_json(proto, revision):
    for document in (descriptors.protobuf_json(proto), descriptors.tgif_json(proto, revision)):
        assert json.loads(json.dumps(document)) == document


def test_it_stops_expanding_a_recursive_message():
    recursive = compile_proto("""syntax = "proto3";
package tree;
service Model { rpc walk (Node) returns (Node); }
message Node { string label = 1; repeated Node children = 2; }
""")
    document = descriptors.protobuf_json(recursive)
    depth, arguments = 0, document["listOfMessages"][0]["messageargumentList"]
    while (children := arguments[1]).get("complexType"):
        arguments = children["complexType"]["messageargumentList"]
        depth += 1
    assert depth == 8
    assert children["tag"] == ".".join(["2"] * 9) and children["role"] == "repeated"
