"""PROTOBUF.json and TGIF.json, the descriptors Acumos's Design Studio reads (shapes as in the
Acumos TOSCA generator), built from the compiled proto. Onboarding writes them (generate_descriptors);
marketplace.signature reads PROTOBUF.json back for the model page."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor as FD

from runner_image.codec import is_repeated, type_name


def _arguments(descriptor, prefix: str = "", depth: int = 0) -> list[dict]:
    arguments = []
    for field in descriptor.fields:
        tag = f"{prefix}{field.number}"
        # "role" as the Acumos generator writes it: "repeated", or "" for a singular proto3 field.
        argument = {"name": field.name, "role": "repeated" if is_repeated(field) else "",
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


def interface(proto) -> dict:
    """{method: {"inputs": [...], "outputs": [...]}}, each field {"name", "type", "repeated"} (the top level of
    its message, a repeated row message's fields included as "rows.<field>"): what discovery matches a
    requirement's input fields against (marketplace.models.Revision.interface)."""
    return {name: {"inputs": _fields(rpc.input.DESCRIPTOR), "outputs": _fields(rpc.output.DESCRIPTOR)}
            for name, rpc in proto.methods.items()}


def _fields(descriptor) -> list[dict]:
    found = []
    for field in descriptor.fields:
        found.append({"name": field.name, "type": type_name(field), "repeated": is_repeated(field)})
        if field.type == FD.TYPE_MESSAGE and is_repeated(field):  # a table: one message per row
            found.extend({"name": f"{field.name}.{inner.name}", "type": type_name(inner),
                          "repeated": is_repeated(inner)} for inner in field.message_type.fields)
    return found


def _exchange(request: list) -> dict:
    return {"request": {"format": request, "version": ""}, "response": {"format": [], "version": ""}}


def tgif_json(proto, revision) -> dict:
    """Design Studio draws a model's input ports from `provides` (what each rpc accepts) and its
    output ports from `calls` (what each rpc sends on): without `calls` it cannot be linked onward."""
    rpcs = proto.methods.items()
    provides = [{"route": name, **_exchange([_message(rpc.input.DESCRIPTOR)])} for name, rpc in rpcs]
    calls = [{"config_key": name, **_exchange([_message(rpc.output.DESCRIPTOR)])} for name, rpc in rpcs]
    return {
        "self": {"version": revision.version, "name": revision.solution.name,
                 "description": revision.description, "component_type": "Docker"},
        "streams": {},
        "services": {"calls": calls, "provides": provides},
        "parameters": [],
        "auxiliary": {},
        "artifacts": [],
    }
