"""An OpenAPI 3 document generated from the model being served now, and a page that shows it.

The page is self-contained HTML (no CDN): runners often live where the internet does not.
"""

from __future__ import annotations

import html
import json

from google.protobuf.descriptor import FieldDescriptor as FD

from runner_image import __version__
from runner_image.codec import is_map, is_repeated

_JSON_TYPES = {FD.TYPE_DOUBLE: ("number", "double"), FD.TYPE_FLOAT: ("number", "float"),
               FD.TYPE_INT64: ("integer", "int64"), FD.TYPE_UINT64: ("integer", "int64"),
               FD.TYPE_INT32: ("integer", "int32"), FD.TYPE_UINT32: ("integer", "int32"),
               FD.TYPE_BOOL: ("boolean", None), FD.TYPE_STRING: ("string", None), FD.TYPE_BYTES: ("string", "byte")}
_PROTOBUF = "application/vnd.google.protobuf"
_ADMIN = [
    ("put", "/model", "Hot-swap the model (parts: model, optional proto, metadata, modelConfig, sample)"),
    ("put", "/proto", "Replace the .proto (part: proto, optional sample)"),
    ("put", "/model/configuration", "Replace the model configuration (part: modelConfig, or a JSON body)"),
    ("post", "/model/rollback", "Return to the previous model (optional JSON body {\"generation\": n})"),
    ("post", "/transformCSV", "Install model/proto after predicting csvFile with them; returns the predictions"),
    ("post", "/transformJSON", "Install model/proto after predicting jsonFile with them; returns the predictions"),
]
_PUBLIC = [
    ("get", "/model", "The active model (sha256, flavour, loaded at) and the swap history"),
    ("get", "/model/artifacts/metadata", "metadata.json being served"),
    ("get", "/model/artifacts/protobuf", "model.proto being served"),
    ("post", "/getBinary", "CSV (csvFile) + proto -> serialized protobuf message (operation selects the method)"),
    ("post", "/getBinaryDefault", "CSV (csvFile) -> serialized protobuf message with the current proto"),
    ("post", "/getBinaryJSON", "JSON (jsonFile) + proto -> serialized protobuf message"),
    ("post", "/getBinaryJSONDefault", "JSON (jsonFile) -> serialized protobuf message with the current proto"),
    ("post", "/transformCSVDefault", "Predictions for csvFile with the current model"),
    ("post", "/transformJSONDefault", "Predictions for jsonFile with the current model"),
    ("get", "/v2/health/live", "Open Inference Protocol: liveness"),
    ("get", "/v2/health/ready", "Open Inference Protocol: readiness"),
    ("get", "/v2/models/{name}", "Open Inference Protocol: model metadata"),
    ("post", "/v2/models/{name}/infer", "Open Inference Protocol: inference"),
    ("get", "/metrics", "Prometheus metrics"),
]


def message_schema(descriptor, depth: int = 0) -> dict:
    props = {f.name: _field_schema(f, depth) for f in descriptor.fields}
    return {"type": "object", "title": descriptor.name, "properties": props, "additionalProperties": False}


def _field_schema(field, depth: int) -> dict:
    if is_map(field):
        value_field = field.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _scalar_schema(value_field, depth)}
    schema = _scalar_schema(field, depth)
    return {"type": "array", "items": schema} if is_repeated(field) else schema


def _scalar_schema(field, depth: int) -> dict:
    if field.type == FD.TYPE_MESSAGE:
        return message_schema(field.message_type, depth + 1) if depth < 8 else {"type": "object"}
    if field.type == FD.TYPE_ENUM:
        return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
    kind, fmt = _JSON_TYPES.get(field.type, ("integer", None))
    return {"type": kind, "format": fmt} if fmt else {"type": kind}


def document(slot) -> dict:
    paths = {f"/model/methods/{name}": _method_path(name, rpc) for name, rpc in slot.proto.methods.items()}
    for verb, path, summary in _PUBLIC:
        paths.setdefault(path, {})[verb] = {"summary": summary, "responses": {"200": {"description": "OK"}}}
    for verb, path, summary in _ADMIN:
        responses = {"200": {"description": "OK"}, "401": {"description": "No or wrong token"}}
        paths.setdefault(path, {})[verb] = {"summary": summary, "security": [{"adminToken": []}],
                                            "responses": responses}
    return {
        "openapi": "3.0.3",
        "info": {"title": f"{slot.name} (model runner)", "version": f"{__version__}+gen{slot.generation}",
                 "description": f"Serving generation {slot.generation}, flavour {slot.manifest.flavour}."},
        "paths": paths,
        "components": {"securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}}},
    }


def _method_path(name: str, rpc) -> dict:
    body = {"application/json": {"schema": message_schema(rpc.input.DESCRIPTOR)},
            _PROTOBUF: {"schema": {"type": "string", "format": "binary"}}}
    answer = {"application/json": {"schema": message_schema(rpc.output.DESCRIPTOR)},
              _PROTOBUF: {"schema": {"type": "string", "format": "binary"}}}
    return {"post": {"summary": f"Call {name}: {rpc.input.DESCRIPTOR.name} -> {rpc.output.DESCRIPTOR.name}",
                     "requestBody": {"required": True, "content": body},
                     "responses": {"200": {"description": "The answer", "content": answer},
                                   "400": {"description": "The body does not fit the input message"},
                                   "415": {"description": "Content-Type is neither JSON nor protobuf"}}}}


def page(doc: dict) -> str:
    rows = []
    for path, verbs in doc["paths"].items():
        for verb, op in verbs.items():
            lock = " &#128274;" if op.get("security") else ""
            rows.append(f"<tr><td><code>{verb.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                        f"<td>{html.escape(op.get('summary', ''))}{lock}</td></tr>")
    spec = html.escape(json.dumps(doc, indent=2))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(doc['info']['title'])}</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}td{padding:.3rem .8rem;"
            "border-bottom:1px solid #ddd}pre{background:#f6f6f6;padding:1rem;overflow:auto}</style></head><body>"
            f"<h1>{html.escape(doc['info']['title'])}</h1><p>{html.escape(doc['info']['description'])} "
            "Machine-readable: <a href='/openapi.json'>/openapi.json</a>. &#128274; = needs the admin token.</p>"
            f"<table>{''.join(rows)}</table><h2>OpenAPI document</h2><pre>{spec}</pre></body></html>")
