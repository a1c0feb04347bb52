"""PROTOBUF.json and TGIF.json, the descriptors Acumos's Design Studio reads (shapes as in the
Acumos TOSCA generator), built from the compiled proto."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor as FD

from runner_image.codec import is_repeated, type_name


def _arguments(descriptor, prefix: str = "", depth: int = 0) -> list[dict]:
    arguments = []
    for field in descriptor.fields:
        tag = f"{prefix}{field.number}"
        argument = {"name": field.name, "rule": "repeated" if is_repeated(field) else "optional",
                    "tag": tag, "type": type_name(field)}
        if field.type == FD.TYPE_MESSAGE and depth < 8:
            argument["complexType"] = {"messageName": field.message_type.name,
                                       "messageargumentList": _arguments(field.message_type, f"{tag}.", depth + 1)}
        arguments.append(argument)
    return arguments


def _message(descriptor) -> dict:
    return {"messageName": descriptor.name, "messageargumentList": _arguments(descriptor)}


def protobuf_json(proto) -> dict:
    messages = {}
    for rpc in proto.methods.values():
        for cls in (rpc.input, rpc.output):
            messages.setdefault(cls.DESCRIPTOR.name, _message(cls.DESCRIPTOR))
    operations = [{"operationType": "rpc", "operationName": name,
                   "listOfInputMessages": [{"inputMessageName": rpc.input.DESCRIPTOR.name}],
                   "listOfOutputMessages": [{"outPutMessageName": rpc.output.DESCRIPTOR.name}]}
                  for name, rpc in proto.methods.items()]
    return {"syntax": "proto3", "packageName": proto.package, "listOfOption": [],
            "listOfMessages": list(messages.values()),
            "service": {"name": proto.service_name, "listOfOperations": operations}}


def tgif_json(proto, revision) -> dict:
    provides = [{"route": name, "request": {"format": [_message(rpc.input.DESCRIPTOR)], "version": ""},
                 "response": {"format": [_message(rpc.output.DESCRIPTOR)], "version": ""}}
                for name, rpc in proto.methods.items()]
    return {
        "self": {"version": revision.version, "name": revision.solution.name,
                 "description": revision.description, "component_type": "Docker"},
        "streams": {},
        "services": {"calls": [], "provides": provides},
        "parameters": [],
        "auxiliary": {},
        "artifacts": [],
    }
