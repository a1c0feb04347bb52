"""compile_proto: protoc at run time, one descriptor pool per proto, clear errors."""

from __future__ import annotations

import hashlib
import re

import pytest

from runner_image.codec import message_from_dict, message_to_dict
from runner_image.errors import ProtoError
from runner_image.protos import compile_proto

GOOD = """syntax = "proto3";
package shop;

service Model {
  rpc price (PriceIn) returns (PriceOut);
  rpc add_numbers (AddNumbersIn) returns (AddNumbersOut);
}

message PriceIn {
  string item = 1;
  repeated int64 counts = 2;
}

message PriceOut { double total = 1; }
message AddNumbersIn { double a = 1; double b = 2; }
message AddNumbersOut { double value = 1; }
"""


def compile_error(text: str) -> ProtoError:
    with pytest.raises(ProtoError) as info:
        compile_proto(text)
    return info.value


def test_it_gives_the_methods_and_their_message_classes():
    compiled = compile_proto(GOOD)
    assert list(compiled.methods) == ["price", "add_numbers"]
    assert compiled.default_method == "price"
    assert compiled.package == "shop"
    assert compiled.service_name == "Model"
    assert compiled.sha256 == hashlib.sha256(GOOD.encode()).hexdigest()
    price = compiled.method("price")
    assert price.input.DESCRIPTOR.full_name == "shop.PriceIn"
    assert price.output.DESCRIPTOR.full_name == "shop.PriceOut"
    assert [f.name for f in price.input.DESCRIPTOR.fields] == ["item", "counts"]
    msg = price.input(item="pen", counts=[1, 2])
    assert price.input.FromString(msg.SerializeToString()) == msg
    assert compiled.method("nope") is None


def test_it_names_every_message_by_short_and_full_name():
    compiled = compile_proto(GOOD)
    assert compiled.messages["AddNumbersOut"] is compiled.messages["shop.AddNumbersOut"]
    assert compiled.messages["AddNumbersOut"] is compiled.methods["add_numbers"].output


def test_it_accepts_proto_source_as_utf8_bytes():
    assert list(compile_proto(GOOD.replace("shop", "bytes_shop").encode()).methods) == ["price", "add_numbers"]


def test_it_rejects_bytes_that_are_not_utf8():
    with pytest.raises(ProtoError, match="not UTF-8"):
        compile_proto(b'syntax = "proto3"; // \xff\xfe')


def test_it_compiles_identical_text_once():
    assert compile_proto(GOOD) is compile_proto(GOOD)


def test_it_returns_protocs_error_with_line_and_column():
    broken = GOOD.replace("string item = 1;", "string item = 1")
    error = compile_error(broken)
    assert re.search(r"model\.proto:\d+:\d+: ", error.message), error.message
    assert error.message.startswith("model.proto does not compile")
    assert "runner-proto-" not in error.message  # the temporary directory is not leaked
    assert error.details["protoc"] in error.message
    assert error.status == 400
    assert error.code == "invalid_proto"


def test_it_names_an_undefined_type_on_its_line():
    declaration = "message PriceOut { double total = 1; }"
    error = compile_error(GOOD.replace(declaration, "message PriceOut { Money total = 1; }"))
    line = GOOD.splitlines().index(declaration) + 1
    assert f"model.proto:{line}:" in error.message
    assert '"Money" is not defined' in error.message


def test_it_rejects_proto2():
    error = compile_error("""syntax = "proto2";
package old;
service Model { rpc f (In) returns (In); }
message In { optional double x = 1; }
""")
    assert 'syntax = "proto3"' in error.message
    assert "proto2" in error.message


def test_it_rejects_a_proto_without_a_syntax_line_as_proto2():
    error = compile_error("""package nosyntax;
service Model { rpc f (In) returns (In); }
message In { optional double x = 1; }
""")
    assert 'must declare syntax = "proto3"' in error.message


def test_it_rejects_a_proto_without_a_service():
    error = compile_error('syntax = "proto3";\npackage noservice;\nmessage In { double x = 1; }\n')
    assert "defines no service" in error.message


def test_it_rejects_a_service_without_rpc_methods():
    error = compile_error('syntax = "proto3";\npackage norpc;\nservice Model {}\nmessage In { double x = 1; }\n')
    assert "service Model" in error.message
    assert "no rpc methods" in error.message


def test_it_prefers_the_service_named_model():
    compiled = compile_proto("""syntax = "proto3";
package two_services;
service Other { rpc other (In) returns (In); }
service Model { rpc mine (In) returns (In); }
message In { double x = 1; }
""")
    assert compiled.service_name == "Model"
    assert list(compiled.methods) == ["mine"]


def test_it_imports_well_known_types():
    compiled = compile_proto("""syntax = "proto3";
package timed;
import "google/protobuf/timestamp.proto";
service Model { rpc stamp (In) returns (In); }
message In {
  google.protobuf.Timestamp at = 1;
  double x = 2;
}
""")
    cls = compiled.methods["stamp"].input
    msg = message_from_dict(cls, {"at": {"seconds": 1700000000, "nanos": 5}, "x": 1.0})
    assert msg.at.seconds == 1700000000
    assert cls.FromString(msg.SerializeToString()).at.nanos == 5
    assert message_to_dict(msg)["at"] == {"seconds": 1700000000, "nanos": 5}


def test_it_serves_an_rpc_whose_message_is_nested():
    compiled = compile_proto("""syntax = "proto3";
package nested_rpc;
service Model { rpc f (Outer.Request) returns (Outer.Reply); }
message Outer {
  message Request { double x = 1; }
  message Reply { double y = 1; }
}
""")
    method = compiled.methods["f"]
    assert method.input.DESCRIPTOR.full_name == "nested_rpc.Outer.Request"
    assert method.output(y=2.0).y == 2.0


def test_it_keeps_protos_with_the_same_names_apart():
    first = compile_proto("""syntax = "proto3";
package same;
service Model { rpc f (In) returns (Out); }
message In { double x = 1; }
message Out { double y = 1; }
""")
    second = compile_proto("""syntax = "proto3";
package same;
service Model { rpc f (In) returns (Out); }
message In { string name = 1; repeated int64 ids = 2; }
message Out { string z = 1; }
""")
    one, two = first.methods["f"], second.methods["f"]
    assert one.input is not two.input
    assert one.input.DESCRIPTOR.full_name == two.input.DESCRIPTOR.full_name == "same.In"
    assert [f.name for f in one.input.DESCRIPTOR.fields] == ["x"]
    assert [f.name for f in two.input.DESCRIPTOR.fields] == ["name", "ids"]
    # Both stay usable after the other was compiled.
    assert one.input(x=1.5).x == 1.5
    assert list(two.input(name="a", ids=[1, 2]).ids) == [1, 2]
    assert message_to_dict(one.output(y=3.0)) == {"y": 3.0}
    assert message_to_dict(two.output(z="q")) == {"z": "q"}
