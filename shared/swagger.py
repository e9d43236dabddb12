"""``GET /api/swagger.json``: the OpenAPI 2.0 document Logic Apps and Power Platform take, converted from the 3.1
document (``openapi.json``), so the two cannot drift.

Custom connectors and the Logic Apps "HTTP + Swagger" action accept OpenAPI 2.0 only, under 1 MB, and use only the
first security definition. The conversion keeps every operation, parameter and schema and says in 2.0's terms what
2.0 cannot say: ``type: [X, "null"]`` becomes ``x-nullable``, a nullable ``$ref`` an ``allOf`` with ``x-nullable``,
``oneOf`` alternatives of an object and ``if``/``then`` conditions are dropped (their rule stays in the
description), ``const`` an ``enum``.
Every operation and parameter gets an ``x-ms-summary`` for the connector designer.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from .openapi import openapi_document

__all__ = ["swagger_document"]

_SECURITY = {"functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"}}
_PARAMETER_KEYS = ("name", "in", "required", "description")
# The documents themselves and the health probe are not operations a connector offers.
_LEFT_OUT = {"/health", "/health/detail", "/openapi.json", "/swagger.json"}


@cache
def swagger_document() -> dict[str, Any]:
    source = openapi_document()
    info = copy.deepcopy(source["info"])
    document: dict[str, Any] = {
        "swagger": "2.0",
        "info": info,
        "basePath": "/api",
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json", "application/problem+json"],
        "securityDefinitions": copy.deepcopy(_SECURITY),
        "security": [{"functionKey": []}],
        "paths": {},
        "definitions": {name: _schema(schema) for name, schema in source["components"]["schemas"].items()},
    }
    for route, item in source["paths"].items():
        if route in _LEFT_OUT:
            continue
        shared = item.get("parameters", [])
        converted: dict[str, Any] = {}
        for method, operation in item.items():
            if method == "parameters":
                continue
            converted[method] = _operation(operation, shared)
        document["paths"][route] = converted
    return document


def _operation(operation: dict[str, Any], shared: list[dict[str, Any]]) -> dict[str, Any]:
    summary = operation.get("summary") or operation["operationId"]
    result: dict[str, Any] = {
        "operationId": operation["operationId"],
        "summary": summary,
        "description": operation.get("description") or summary,
        "x-ms-summary": summary,
        "tags": operation.get("tags", []),
        "parameters": [_parameter(p) for p in [*shared, *operation.get("parameters", [])]],
        "responses": {status: _response(r) for status, r in operation["responses"].items()},
    }
    if "security" in operation:
        result["security"] = operation["security"]
    body = operation.get("requestBody")
    if body is not None:
        schema = next(iter(body["content"].values()))["schema"]
        result["parameters"].append(
            {
                "name": "body",
                "in": "body",
                "required": bool(body.get("required")),
                "description": body.get("description") or "The request (JSON, at most 64 KiB).",
                "x-ms-summary": "Request",
                "schema": _schema(schema),
            }
        )
    return result


def _parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    result = {key: parameter[key] for key in _PARAMETER_KEYS if key in parameter}
    result["x-ms-summary"] = parameter.get("x-ms-summary") or parameter["name"]
    schema = _schema(parameter.get("schema", {"type": "string"}))
    for key in ("type", "format", "pattern", "enum", "minimum", "maximum", "default", "minLength", "maxLength"):
        if key in schema:
            result[key] = schema[key]
    result.setdefault("type", "string")
    if parameter.get("in") == "path":
        result["required"] = True
    return result


def _response(response: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"description": response.get("description", "")}
    content = response.get("content") or {}
    if content:
        result["schema"] = _schema(next(iter(content.values()))["schema"])
    headers = response.get("headers") or {}
    if headers:
        result["headers"] = {
            name: {"type": header.get("schema", {}).get("type", "string"), "description": header.get("description", "")}
            for name, header in headers.items()
        }
    return result


def _schema(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = dict(schema)
    for conditional in ("if", "then", "else", "contains", "dependentSchemas", "dependentRequired"):
        schema.pop(conditional, None)  # 2.0 has no conditionals: the rule stays in the description
    if "$ref" in schema:
        return {"$ref": schema["$ref"].replace("#/components/schemas/", "#/definitions/")}
    for alternatives in ("oneOf", "anyOf"):
        options = schema.pop(alternatives, None)
        if options is None:
            continue
        non_null = [o for o in options if o.get("type") != "null"]
        nullable = len(non_null) < len(options)
        if len(non_null) == 1 and not schema.get("properties"):
            merged = _schema(non_null[0])
            if "$ref" in merged:
                merged = {"allOf": [merged]}
            merged.update({k: _schema(v) for k, v in schema.items()})
            if nullable:
                merged["x-nullable"] = True
            return merged
        if nullable:
            schema["x-nullable"] = True
    kind = schema.get("type")
    if isinstance(kind, list):
        types = [t for t in kind if t != "null"]
        schema["type"] = types[0] if len(types) == 1 else "string"
        if "null" in kind:
            schema["x-nullable"] = True
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
    if "examples" in schema:
        examples = schema.pop("examples")
        if examples:
            schema["example"] = examples[0]
    for key in ("properties", "definitions"):
        if key in schema:
            schema[key] = {name: _schema(value) for name, value in schema[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            schema[key] = _schema(schema[key])
    if "allOf" in schema:
        parts = [part for part in (_schema(part) for part in schema["allOf"]) if part]
        if parts:
            schema["allOf"] = parts
        else:
            del schema["allOf"]
    return schema
