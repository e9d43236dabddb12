"""``GET /api/openapi.json``: the OpenAPI document of the HTTP routes (kept in ``openapi.json`` beside this file)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from .keys import SYNCHRONIZATION_SECRET_KEYS
from .references import REFERENCE_PATTERN
from .request import RESET_SCOPES, STEP_NAMES, correlation_id_pattern

__all__ = ["openapi_document"]


@cache
def openapi_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((Path(__file__).with_name("openapi.json")).read_text(encoding="utf-8"))
    # The key enum has one source: shared/keys.py.
    document["components"]["schemas"]["Credential"]["properties"]["key"]["enum"] = list(SYNCHRONIZATION_SECRET_KEYS)
    schemas = document["components"]["schemas"]
    schemas["CorrelationId"]["pattern"] = correlation_id_pattern()
    schemas["StepName"]["enum"] = list(STEP_NAMES)
    schemas["ResetScope"]["pattern"] = _reset_scope_pattern()
    document["components"]["schemas"]["Credential"]["properties"]["secretRef"]["pattern"] = REFERENCE_PATTERN
    return document


def _reset_scope_pattern() -> str:
    """Every comma-separated combination of the reset scopes, each at most once (the code refuses a repeat)."""
    from itertools import permutations

    orders = [order for size in range(1, len(RESET_SCOPES) + 1) for order in permutations(RESET_SCOPES, size)]
    alternatives = "|".join(r"\s*,\s*".join(order) for order in orders)
    return rf"^\s*(?:{alternatives})\s*$"
