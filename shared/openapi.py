"""``GET /api/openapi.json``: the OpenAPI document of the HTTP routes (kept in ``openapi.json`` beside this file).

The file holds the document's shape and words; every fact the code also holds is filled in here from the code: the
key enum, the step names, the patterns, the GUID, and the length and count limits of the request's fields.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from .keys import SYNCHRONIZATION_SECRET_KEYS
from .references import REFERENCE_PATTERN
from .request import (
    JOB_ID_PATTERN,
    MAX_CORRELATION_ID,
    MAX_CREDENTIALS,
    MAX_VALUE_BYTES,
    RESET_SCOPES,
    STEP_NAMES,
    correlation_id_pattern,
    schema_limits,
)
from .settings import GUID
from .stepnames import SERVICE_PRINCIPAL_STEPS

__all__ = ["openapi_document"]

_REQUESTS = ("AcquireRequest", "PathRequest", "ApplicationPathRequest")


@cache
def openapi_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((Path(__file__).with_name("openapi.json")).read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    credential = schemas["Credential"]["properties"]
    credential["key"]["enum"] = list(SYNCHRONIZATION_SECRET_KEYS)  # one source: shared/keys.py
    credential["secretRef"]["pattern"] = REFERENCE_PATTERN
    credential["value"]["description"] = (
        f"Inline value, at most {MAX_VALUE_BYTES // 1024} KiB ({MAX_VALUE_BYTES:,} bytes) of UTF-8: the limit is in "
        "bytes, which JSON Schema cannot state, so maxLength (characters) only bounds it and a shorter value of "
        "multi-byte characters can still be refused. Only for non-sensitive keys unless ALLOW_INLINE_SECRETS=true."
    )
    schemas["Credentials"]["description"] = (
        f"1 to {MAX_CREDENTIALS} credentials; each key at most once (JSON Schema cannot say that across items: "
        "a repeated key is a 400)."
    )
    schemas["CorrelationId"]["pattern"] = correlation_id_pattern()
    schemas["CorrelationId"]["description"] = (
        f"1 to {MAX_CORRELATION_ID} printable Unicode characters: no control (Cc), format (Cf), surrogate, line or "
        "paragraph separator characters; null is the same as leaving it out"
    )
    schemas["StepName"]["enum"] = list(STEP_NAMES)
    schemas["ResetScope"]["pattern"] = _reset_scope_pattern()
    schemas["JobId"]["pattern"] = JOB_ID_PATTERN
    for path, limits in schema_limits().items():
        for name in _REQUESTS:
            if (schema := _member(document, schemas[name], path)) is not None:
                schema.update(limits)
    # An application target runs only the steps that need no service principal (after the limits: fewer items).
    application_steps = [name for name in STEP_NAMES if name not in SERVICE_PRINCIPAL_STEPS]
    schemas["ApplicationPathRequest"]["properties"]["steps"]["items"]["enum"] = application_steps
    schemas["ApplicationPathRequest"]["properties"]["steps"]["maxItems"] = len(application_steps)
    schemas["AcquireRequest"]["allOf"][0]["then"]["properties"]["steps"]["items"]["enum"] = application_steps
    _fill_guids(document, f"^{GUID.pattern}$")
    return document


def _member(document: dict[str, Any], schema: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The schema of a request member (``credentials[].secretRef``) under ``schema``, following ``$ref``s; ``None``
    where the request schema does not have that member."""
    for part in path.replace("[]", ".[]").split("."):
        schema = _resolved(document, schema)
        next_schema = schema.get("items") if part == "[]" else schema.get("properties", {}).get(part)
        if not isinstance(next_schema, dict):
            return None
        schema = next_schema
    return _resolved(document, schema)


def _resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        found: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            found = found[part]
        schema = found
    return schema


def _fill_guids(node: Any, pattern: str) -> None:
    """Every ``"format": "uuid"`` string (the targets, the path ids) takes the app's one GUID pattern."""
    if isinstance(node, dict):
        if node.get("format") == "uuid":
            node["pattern"] = pattern
        for value in node.values():
            _fill_guids(value, pattern)
    elif isinstance(node, list):
        for value in node:
            _fill_guids(value, pattern)


def _reset_scope_pattern() -> str:
    """Every comma-separated combination of the reset scopes, each at most once (the code refuses a repeat)."""
    from itertools import permutations

    orders = [order for size in range(1, len(RESET_SCOPES) + 1) for order in permutations(RESET_SCOPES, size)]
    alternatives = "|".join(r"\s*,\s*".join(order) for order in orders)
    return rf"^\s*(?:{alternatives})\s*$"
