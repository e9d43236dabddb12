"""A SCIM endpoint that records every request it receives: the attacker's server in the security tests.

Entra's provisioning service calls a job's address (``BaseAddress`` and the other address credentials) with the
job's secret as the bearer token; the Graph stand-in does the same when it is given a client TLS context. A test
points a request's address here and asserts that nothing arrived (:attr:`tokens` is empty).
"""

from __future__ import annotations

from .base import Reply, Seen, StandIn


class RecordingScim(StandIn):
    name = "recording-scim"

    def handle(self, seen: Seen) -> Reply:
        return Reply(200, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "Resources": []})

    @property
    def tokens(self) -> list[str]:
        """The Authorization headers received, in order (what an attacker would have learnt)."""
        return [seen.headers.get("authorization", "") for seen in self.seen]
