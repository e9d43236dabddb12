"""The outcome (one per request, whatever the trigger and however it ends) and the records it is made of.

Data points one way: clients fill a :class:`GraphCall` while they work, steps return :class:`StepResult` records,
and the runner builds one frozen :class:`Outcome` at the end. Nothing here imports a client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .errors import ProvisioningError
    from .request import Target

__all__ = [
    "MAX_MESSAGE_CHARS",
    "ErrorRecord",
    "GraphCall",
    "JobState",
    "Outcome",
    "OutcomeKind",
    "StepResult",
    "StepStatus",
    "safe_message",
]

OutcomeKind = Literal["succeeded", "validated", "rejected", "failed"]
StepStatus = Literal["succeeded", "skipped", "rejected", "failed", "notRun"]

MAX_MESSAGE_CHARS = 600
_MIN_REDACT = 4


RUN_CHARS = 12  # any run this long of a resolved value is redacted, in any case


def _forms(secret: str) -> set[str]:
    """The ways a value can show up in a service's message: as is, in either case, base64 (standard and URL-safe,
    padded or not), URL-encoded (either case of hex digits), HTML- and JSON-escaped, and hex."""
    import base64
    import html
    import json
    import re
    from urllib.parse import quote, quote_plus

    raw = secret.encode("utf-8")
    forms = {secret, secret.upper(), secret.lower(), quote(secret, safe=""), quote_plus(secret), raw.hex()}
    for encoded in (quote(secret, safe=""), quote_plus(secret)):  # .NET writes %xx in lower case
        forms.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded))
    forms.update((html.escape(secret), json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]))
    forms.add(raw.hex().upper())
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        forms.update((encoded, encoded.rstrip("=")))
    return {form for form in forms if len(form) >= _MIN_REDACT}


def _redact_runs(text: str, secrets: list[str] | tuple[str, ...] | frozenset[str] | set[str]) -> str:
    """Blank out every run of :data:`RUN_CHARS` or more characters of a value (case aside): a split or cut copy."""
    lowered = text.lower()
    if len(lowered) < RUN_CHARS:
        return text
    where: dict[str, list[int]] = {}
    for start in range(len(lowered) - RUN_CHARS + 1):
        where.setdefault(lowered[start : start + RUN_CHARS], []).append(start)
    marked = bytearray(len(text))
    for secret in secrets:
        low = secret.lower()
        for start in range(len(low) - RUN_CHARS + 1):
            for hit in where.get(low[start : start + RUN_CHARS], ()):
                marked[hit : hit + RUN_CHARS] = b"\x01" * RUN_CHARS
    if not any(marked):
        return text
    out: list[str] = []
    for index, char in enumerate(text):
        if not marked[index]:
            out.append(char)
        elif index == 0 or not marked[index - 1]:
            out.append("***")
    return "".join(out)


def safe_message(text: str, secrets: list[str] | tuple[str, ...] | frozenset[str]) -> str:
    """A message fit to leave the app: the request's secrets redacted first, then shortened, never the reverse.

    Defence in depth: a value that reached a message (say, echoed by Graph) is blanked out in its exact, upper- and
    lower-case, base64, base64url, URL-encoded and hex forms, and so is any run of 12 or more of its characters;
    shortening only after that means a cut can never leave the first characters of a secret behind.
    """
    values = {secret for secret in secrets if len(secret) >= _MIN_REDACT}
    if values:
        for form in sorted(set().union(*(_forms(v) for v in values)), key=len, reverse=True):
            if form in text:
                text = text.replace(form, "***")
        text = _redact_runs(text, values)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 1] + "…"
    return text


@dataclass
class GraphCall:
    """One Graph call as the outcome reports it; the Graph client fills it attempt by attempt."""

    status: int | None = None
    request_id: str | None = None
    client_request_id: str | None = None
    error_code: str | None = None
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "requestId": self.request_id,
            "clientRequestId": self.client_request_id,
            "errorCode": self.error_code,
            "attempts": self.attempts,
        }


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """An error as it leaves the app: what the outcome, a step and an HTTP problem reply carry."""

    code: str
    message: str
    outcome: OutcomeKind
    http_status: int
    retry_after: float | None = None
    invalid: bool = False  # the request itself is malformed (the CLI's exit code 2)

    @classmethod
    def from_error(cls, error: ProvisioningError, secrets: list[str] | tuple[str, ...] = ()) -> ErrorRecord:
        from .errors import InvalidRequest

        return cls(
            code=error.code,
            message=safe_message(error.message, secrets),
            outcome="failed" if error.retryable else "rejected",
            http_status=error.http_status,
            retry_after=error.retry_after,
            invalid=type(error) is InvalidRequest,
        )

    @property
    def retryable(self) -> bool:
        return self.outcome == "failed"

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one lifecycle step did."""

    name: str
    status: StepStatus
    graph: GraphCall | None = None
    error: ErrorRecord | None = None
    detail: dict[str, Any] | None = None  # a step's own result summary (provisionOnDemand), never user data

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "status": self.status,
            "graph": None if self.graph is None else self.graph.to_dict(),
            "error": None if self.error is None else self.error.to_dict(),
        }
        if self.detail is not None:
            data["result"] = self.detail
        return data


@dataclass(frozen=True, slots=True)
class JobState:
    """A synchronization job as read after the last job step."""

    id: str
    status: str | None
    quarantine_reason: str | None = None
    quarantine_since: str | None = None

    def to_dict(self) -> dict[str, Any]:
        quarantine = None
        if self.quarantine_reason is not None or self.quarantine_since is not None:
            quarantine = {"reason": self.quarantine_reason, "since": self.quarantine_since}
        return {"id": self.id, "status": self.status, "quarantine": quarantine}


@dataclass(frozen=True)
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
    steps: tuple[StepResult, ...] = ()
    job: JobState | None = None
    connection: str | None = None
    # Not part of the JSON: the secret versions a successful run applied, for connections:
    # secret id -> {"version": ..., "created": ISO time Key Vault created it, or None}.
    applied_versions: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)
    # Not part of the JSON: how an HTTP or command-line caller is told.
    http_status: int = 200
    retry_after: float | None = None
    invalid: bool = False

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
            "steps": [step.to_dict() for step in self.steps],
            "job": None if self.job is None else self.job.to_dict(),
        }
        if self.dequeue_count is not None:
            data["dequeueCount"] = self.dequeue_count
        if self.connection is not None:
            data["connection"] = self.connection
        return data
