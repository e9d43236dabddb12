"""The sweep: every connection's health, read from its job itself, fanned out through the connection-work queue.

The timer (:func:`sweep`) pages the connections table and puts one ``check`` message per connection on
``%CONNECTION_QUEUE_NAME%``; it does nothing else, so it ends in seconds whatever the number of connections. The
queue function (:func:`check`) reads one connection's job and secret properties and reports one ``ConnectionHealth``
event: the job's own status, quarantine and executions, the nearest secret expiry, whether its secrets' bindings
still allow it, and a ``healthScore`` (docs/fleet.md). Reading never starts, restarts or changes a job; recovery is
a separate, opt-in step (shared/recovery.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import graph, policy
from .errors import ProvisioningError
from .outcome import GraphCall
from .store import ConnectionRecord, ConnectionStore, iso_time
from .telemetry import emit_event

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .work import WorkQueue

__all__ = ["EVENT_NAME", "Health", "check", "health_score", "job_health", "sweep"]

log = logging.getLogger(__name__)

EVENT_NAME = "ConnectionHealth"
PAGE = 100
_NEVER = "0001-01-01"  # Graph's "never" for a DateTimeOffset that cannot be null


@dataclass(frozen=True)
class Health:
    connection: str
    job_id: str | None = None
    job_status: str | None = None
    quarantine_reason: str | None = None
    nearest_expiry: str | None = None
    days_to_expiry: float | None = None
    expiring_secret: str | None = None
    expiring_soon: bool = False
    binding_missing: bool = False  # the current secret versions' tags would refuse this connection's run
    binding_problem: str | None = None
    error: str | None = None
    job: dict[str, Any] | None = None  # the job's own health fields (job_health)
    health_score: int | None = None

    def properties(self) -> dict[str, str | None]:
        return {
            "connection": self.connection,
            "jobId": self.job_id,
            "jobStatus": self.job_status,
            "quarantineReason": self.quarantine_reason,
            "nearestExpiry": self.nearest_expiry,
            "daysToExpiry": None if self.days_to_expiry is None else f"{self.days_to_expiry:.1f}",
            "expiringSecret": self.expiring_secret,
            "expiringSoon": str(self.expiring_soon).lower(),
            "bindingMissing": str(self.binding_missing).lower(),
            "bindingProblem": self.binding_problem,
            "error": self.error,
            **{key: None if value is None else str(value) for key, value in (self.job or {}).items()},
            "healthScore": None if self.health_score is None else str(self.health_score),
        }


async def sweep(store: ConnectionStore, pipeline: Pipeline, queue: WorkQueue | None = None) -> list[str]:
    """Page the connections and enqueue one ``check`` per connection; returns the names enqueued.

    The work that grows with the number of connections is paging and enqueueing only: each page is sent before the
    next is read, so memory stays one page.
    """
    from .work import WorkItem

    if queue is None:
        from .work import get_work_queue

        queue = get_work_queue()
    names: list[str] = []
    continuation: str | None = None
    while True:
        records, continuation = await store.page(top=PAGE, continuation=continuation)
        page = [record.name for record in records]
        await queue.send_many(WorkItem(kind="check", connection=name) for name in page)
        names.extend(page)
        if continuation is None:
            log.info("sweep: %d connection check(s) enqueued on %s", len(names), queue.queue_name)
            return names


def report(health: Health) -> None:
    """The ``ConnectionHealth`` event, at WARNING when something needs a person or a recovery."""
    emit_event(EVENT_NAME, health.properties(), level=logging.WARNING if _unhealthy(health) else logging.INFO)


def _unhealthy(health: Health) -> bool:
    return bool(
        health.error
        or health.expiring_soon
        or health.binding_missing
        or health.quarantine_reason
        or health.job_status == "Quarantine"
    )


async def check(record: ConnectionRecord, pipeline: Pipeline) -> Health:
    """One connection's health: its job as Graph reports it, its secrets' expiry and bindings; never a change."""
    from .connections import stored_request

    problems: list[str] = []
    job: dict[str, Any] = {}
    fields: dict[str, Any] | None = None
    nearest: tuple[datetime, str] | None = None
    try:
        request = stored_request(record)
    except ProvisioningError as error:
        return Health(connection=record.name, error=f"{error.code}: {error.message}"[:300])
    target = request.target
    if target.type == "servicePrincipal":
        try:
            job_id = request.job_id or await graph.only_job(pipeline.graph, target, call=GraphCall())
            if job_id:
                raw = await graph.read_job(pipeline.graph, target, job_id, call=GraphCall())
                state = graph.job_state(job_id, raw)
                job = {"job_id": state.id, "job_status": state.status, "quarantine_reason": state.quarantine_reason}
                fields = job_health(raw)
        except ProvisioningError as error:
            problems.append(f"job: {error.code}")
    try:
        references = policy.plan(request, pipeline.settings, stored=True).references
    except ProvisioningError as error:
        return Health(connection=record.name, **job, error=f"{error.code}: {error.message}"[:300])
    bound: list[policy.Bound] = []
    # Inline values only: a value that is itself a reference is not read (the sweep reads properties, never values).
    values = {c.key: c.value for c in request.credentials if c.value is not None}
    for key, reference in references.items():
        try:
            resolved = await pipeline.resolver.read_properties(reference)
        except ProvisioningError as error:
            problems.append(f"{key}: {error.code}")
            continue
        bound.append(policy.Bound.of(key, reference, resolved))
        if resolved.expires_on is not None and (nearest is None or resolved.expires_on < nearest[0]):
            nearest = (resolved.expires_on, reference.name)
    binding: str | None = None
    try:
        policy.check_bindings(target, list(values.items()), bound, pipeline.settings)
    except ProvisioningError as refused:
        binding = f"{refused.code}: {refused.message}"[:300]
    days = None
    if nearest is not None:
        days = (nearest[0] - datetime.now(UTC)).total_seconds() / 86400
    health = Health(
        connection=record.name,
        **job,
        nearest_expiry=None if nearest is None else iso_time(nearest[0]),
        days_to_expiry=days,
        expiring_secret=None if nearest is None else nearest[1],
        expiring_soon=days is not None and days <= pipeline.settings.sweep_expiry_days,
        binding_missing=binding is not None,
        binding_problem=binding,
        error="; ".join(problems) or None,
        job=fields,
    )
    from dataclasses import replace

    return replace(health, health_score=health_score(health, expiry_days=pipeline.settings.sweep_expiry_days))


def _when(value: Any) -> str | None:
    """A Graph DateTimeOffset, or ``None`` for absent, empty or Graph's ``0001-01-01`` "never"."""
    text = value if isinstance(value, str) else None
    return None if not text or text.startswith(_NEVER) else text[:40]


def _count(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def job_health(job: dict[str, Any]) -> dict[str, Any]:
    """The job's own health fields, as ``ConnectionHealth`` carries them (tolerant of nulls, "" and "never")."""
    raw_status = job.get("status")
    status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    raw_quarantine = status.get("quarantine")
    quarantine: dict[str, Any] = raw_quarantine if isinstance(raw_quarantine, dict) else {}
    last: dict[str, Any] = _object(status.get("lastExecution"))
    success: dict[str, Any] = _object(status.get("lastSuccessfulExecution"))
    error: dict[str, Any] = _object(quarantine.get("error"))
    return {
        "statusCode": graph._text(status.get("code")),
        "quarantineSeriesBegan": _when(quarantine.get("seriesBegan")),
        "quarantineSeriesCount": _count(quarantine.get("seriesCount")),
        "quarantineNextAttempt": _when(quarantine.get("nextAttempt")),
        "quarantineErrorCode": graph._text(error.get("code")) if error.get("code") else None,
        "lastExecutionState": graph._text(last.get("state")) if last else None,
        "lastExecutionEnded": _when(last.get("timeEnded")) if last else None,
        "lastExecutionImported": _count(last.get("countImported")) if last else None,
        "lastExecutionExported": _count(last.get("countExported")) if last else None,
        "lastExecutionEscrowed": _count(last.get("countEscrowed")) if last else None,
        "lastSuccessfulExecution": _when(success.get("timeEnded")) if success else None,
        "steadyStateLastAchievedTime": _when(status.get("steadyStateLastAchievedTime")),
        "countSuccessiveCompleteFailures": _count(status.get("countSuccessiveCompleteFailures")),
    }


def _days_since(text: str | None) -> float | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00")[:32])
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - when).total_seconds() / 86400)


def health_score(health: Health, *, expiry_days: int) -> int:
    """0 (needs a person now) to 100 (nothing to do); the formula is docs/fleet.md's, term by term."""
    job = health.job or {}
    score = 100.0
    code = (job.get("statusCode") or health.job_status or "").lower()
    if health.error and not job:
        score -= 50  # the job could not be read at all
    if code == "quarantine" or health.quarantine_reason:
        score -= 40 + min(20, 5 * (job.get("quarantineSeriesCount") or 0))
    elif code in ("paused", "notrun", "notconfigured"):
        score -= 30
    state = (job.get("lastExecutionState") or "").lower()
    if state == "failed":
        score -= 15
    elif state == "entrylevelerrors":
        score -= 5
    if (job.get("lastExecutionEscrowed") or 0) > 0:
        score -= 5
    stale = _days_since(job.get("lastSuccessfulExecution"))
    if stale is not None and stale > 1:
        score -= min(20, 2 * stale)
    if health.days_to_expiry is not None:
        if health.days_to_expiry <= 0:
            score -= 30
        elif health.days_to_expiry <= expiry_days:
            score -= 10
    if health.binding_missing:
        score -= 20
    return int(max(0, min(100, round(score))))
