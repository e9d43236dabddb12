"""Application Insights ingestion (``{IngestionEndpoint}/v2.1/track``) over HTTPS.

Receives what the Azure Monitor exporter really sends: a JSON array of envelopes, gzip-compressed or not. It
checks each envelope the way the service does (name, time, the connection string's instrumentation key,
``data.baseType``/``baseData``) and, when identity-based ingestion is on, the bearer token's audience
(``https://monitor.azure.com``, with or without the trailing slash). Accepted envelopes are kept in :attr:`envelopes`.
"""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from typing import Any

from .base import Reply, Seen, StandIn
from .identity import IdentityStandIn

# The exporter asks for "https://monitor.azure.com//.default", so the token's audience has the trailing slash;
# the service takes either form.
MONITOR_AUDIENCES = ["https://monitor.azure.com", "https://monitor.azure.com/"]


class IngestionStandIn(StandIn):
    name = "application-insights"

    def __init__(self, identity: IdentityStandIn, tls: object) -> None:
        super().__init__(tls=tls)  # type: ignore[arg-type]
        self.identity = identity
        self.instrumentation_key = str(uuid.uuid4())
        self.require_token = False
        self.envelopes: list[dict[str, Any]] = []
        self.raw_bodies: list[bytes] = []
        self.everything: list[bytes] = []  # every body ever received; reset() keeps it
        self._envelopes_lock = threading.Lock()

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={self.instrumentation_key};IngestionEndpoint={self.url}/;LiveEndpoint={self.url}/"

    def handle(self, seen: Seen) -> Reply:
        if seen.method != "POST" or not seen.path.endswith("/track"):
            return Reply(404, {"error": "not found"})
        if "authorization" in seen.headers or self.require_token:
            claims = self.identity.verify(seen.headers.get("authorization"), MONITOR_AUDIENCES)
            if isinstance(claims, str):
                seen.note = claims
                return Reply(401, {"itemsReceived": 0, "itemsAccepted": 0, "errors": [{"message": claims}]})
        body = seen.body
        if seen.headers.get("content-encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        try:
            envelopes = json.loads(body)
        except ValueError:
            return Reply(400, {"itemsReceived": 0, "itemsAccepted": 0, "errors": [{"message": "invalid JSON"}]})
        if isinstance(envelopes, dict):
            envelopes = [envelopes]
        errors = []
        accepted = []
        for index, envelope in enumerate(envelopes):
            problem = _check(envelope, self.instrumentation_key)
            if problem:
                errors.append({"index": index, "statusCode": 400, "message": problem})
            else:
                accepted.append(envelope)
        with self._envelopes_lock:
            self.raw_bodies.append(body)
            self.everything.append(body)
            self.envelopes.extend(accepted)
        status = 200 if not errors else 206
        return Reply(status, {"itemsReceived": len(envelopes), "itemsAccepted": len(accepted), "errors": errors})

    def reset(self) -> None:
        super().reset()
        with self._envelopes_lock:
            self.envelopes.clear()
            self.raw_bodies.clear()

    # --- what arrived, by kind -------------------------------------------------------------------------

    def of_type(self, base_type: str) -> list[dict[str, Any]]:
        with self._envelopes_lock:
            return [e for e in self.envelopes if e["data"]["baseType"] == base_type]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.of_type("EventData") if e["data"]["baseData"]["name"] == name]

    def metrics(self, name: str) -> list[dict[str, Any]]:
        found = []
        for envelope in self.of_type("MetricData"):
            for metric in envelope["data"]["baseData"]["metrics"]:
                if metric["name"] == name:
                    found.append({**metric, "properties": envelope["data"]["baseData"].get("properties", {})})
        return found

    def dependencies(self) -> list[dict[str, Any]]:
        return self.of_type("RemoteDependencyData")

    def text(self, *, since_start: bool = False) -> str:
        with self._envelopes_lock:
            bodies = self.everything if since_start else self.raw_bodies
            return b"\n".join(bodies).decode("utf-8", errors="replace")


def _check(envelope: Any, instrumentation_key: str) -> str | None:
    if not isinstance(envelope, dict):
        return "envelope is not an object"
    for field in ("name", "time", "iKey", "data"):
        if field not in envelope:
            return f"envelope has no {field}"
    if envelope["iKey"] != instrumentation_key:
        return "invalid instrumentation key"
    data = envelope["data"]
    if not isinstance(data, dict) or "baseType" not in data or "baseData" not in data:
        return "envelope data has no baseType/baseData"
    return None
