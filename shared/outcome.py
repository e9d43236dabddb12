"""The outcome (CONTRACT section 2): exactly one per request, whatever the trigger and however it ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .graph import GraphCall
from .request import Target

__all__ = ["Outcome", "OutcomeKind"]

OutcomeKind = Literal["succeeded", "validated", "rejected", "failed"]


@dataclass
class Outcome:
    outcome: OutcomeKind
    trigger: str
    target: Target | None = None
    credential_keys: list[str] = field(default_factory=list)
    graph: GraphCall | None = None
    correlation_id: str | None = None
    duration_ms: float = 0.0
    retryable: bool = False
    error_code: str | None = None
    error_message: str | None = None
    dequeue_count: int | None = None
    # Not part of the JSON: how an HTTP caller is told.
    http_status: int = 200
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("succeeded", "validated")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "outcome": self.outcome,
            "target": None if self.target is None else {"type": self.target.type, "id": self.target.id},
            "credentialKeys": list(self.credential_keys),
            "graph": None if self.graph is None else self.graph.to_dict(),
            "correlationId": self.correlation_id,
            "trigger": self.trigger,
            "durationMs": round(self.duration_ms, 1),
            "retryable": self.retryable,
            "error": None if self.error_code is None else {"code": self.error_code, "message": self.error_message},
        }
        if self.dequeue_count is not None:
            data["dequeueCount"] = self.dequeue_count
        return data
