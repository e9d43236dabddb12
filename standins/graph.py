"""Microsoft Graph's ``synchronization/acquireAccessToken`` over HTTPS.

Checks what Graph checks: a bearer token for the Graph resource holding an application permission that allows
the call, the path (``/{v1.0|beta}/{servicePrincipals|applications}/{id}/synchronization/acquireAccessToken``),
``Content-Type``, and the body against the action's schema (``credentials``: a collection of
``synchronizationSecretKeyStringValuePair``). Answers 204 with ``request-id`` and ``client-request-id`` headers,
or Graph's error JSON. Targets and the credentials each target accepts are set by the test.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from shared.keys import SYNCHRONIZATION_SECRET_KEYS

from .base import Reply, Seen, StandIn
from .identity import GRAPH_RESOURCE, IdentityStandIn

ALLOWED_ROLES = {"Synchronization.ReadWrite.All", "Application.ReadWrite.OwnedBy", "Application.ReadWrite.All"}
_PATH = re.compile(
    r"^/(?P<version>v1\.0|beta)/(?P<collection>servicePrincipals|applications)/(?P<id>[^/]+)"
    r"/synchronization/acquireAccessToken$"
)
_KEYS = set(SYNCHRONIZATION_SECRET_KEYS)


class GraphStandIn(StandIn):
    name = "graph"

    def __init__(self, identity: IdentityStandIn, tls: object, *, audience: str = GRAPH_RESOURCE) -> None:
        super().__init__(tls=tls)  # type: ignore[arg-type]
        self.identity = identity
        self.audience = audience
        # target id -> the credentials the provisioning connector accepts (key -> value; only these are checked)
        self.service_principals: dict[str, dict[str, str]] = {}
        self.applications: dict[str, dict[str, str]] = {}
        self.authorized: list[tuple[str, str, list[str]]] = []  # (collection, id, keys) of each 204

    def handle(self, seen: Seen) -> Reply:
        request_id = str(uuid.uuid4())
        client_request_id = seen.headers.get("client-request-id") or str(uuid.uuid4())
        ids = {"request-id": request_id, "client-request-id": client_request_id}

        def error(status: int, code: str, message: str) -> Reply:
            seen.note = code
            inner = {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), **ids}
            return Reply(status, {"error": {"code": code, "message": message, "innerError": inner}}, dict(ids))

        claims = self.identity.verify(seen.headers.get("authorization"), self.audience)
        if isinstance(claims, str):
            return error(401, "InvalidAuthenticationToken", f"Access token validation failure: {claims}.")
        match = _PATH.match(seen.path)
        if not match:
            return error(400, "BadRequest", f"Resource not found for the segment '{seen.path}'.")
        if seen.method != "POST":
            return error(405, "Request_BadRequest", "Only POST is allowed for acquireAccessToken.")
        roles = set(claims.get("roles") or [])  # type: ignore[call-overload]
        if not roles & ALLOWED_ROLES:
            return error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
        if not (seen.headers.get("content-type") or "").startswith("application/json"):
            return error(415, "BadRequest", "Content-Type must be application/json.")
        problem = _check_body(seen)
        if problem:
            return error(400, "BadRequest", problem)
        collection, target_id = match.group("collection"), match.group("id")
        targets = self.service_principals if collection == "servicePrincipals" else self.applications
        expected = targets.get(target_id.lower())
        if expected is None:
            return error(
                404,
                "Request_ResourceNotFound",
                f"Resource '{target_id}' does not exist or one of its queried reference-property objects "
                "are not present.",
            )
        given = {c["key"]: c["value"] for c in seen.json()["credentials"]}
        wrong = sorted(k for k, v in expected.items() if given.get(k) != v)
        if wrong:
            return error(
                400,
                "CredentialValidationUnavailable",
                f"Provisioning could not validate the credentials ({', '.join(wrong)}); check them and try again.",
            )
        self.authorized.append((collection, target_id.lower(), list(given)))
        return Reply(204, None, dict(ids))


def _check_body(seen: Seen) -> str | None:
    try:
        body: Any = seen.json()
    except ValueError:
        return "Unable to read JSON request payload."
    if not isinstance(body, dict) or set(body) != {"credentials"}:
        return "The request body must be an object with exactly one property, 'credentials'."
    credentials = body["credentials"]
    if not isinstance(credentials, list) or not credentials:
        return "'credentials' must be a non-empty collection."
    for item in credentials:
        if not isinstance(item, dict) or set(item) != {"key", "value"}:
            return "Each credential is a synchronizationSecretKeyStringValuePair: {key, value}."
        if item["key"] not in _KEYS:
            return f"Requested value '{item['key']}' was not found."
        if not isinstance(item["value"], str):
            return "A credential value must be a string."
    return None
