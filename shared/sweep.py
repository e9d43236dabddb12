"""The sweep: a timer reads every connection's job status and its secrets' expiry, and reports each as one
``ConnectionHealth`` event. It only reads: it never starts, restarts or changes a job. Connections are read with
bounded concurrency, and one connection's failure is reported in its own event without stopping the sweep.
"""

from __future__ import annotations

import asyncio
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

__all__ = ["EVENT_NAME", "Health", "sweep"]

log = logging.getLogger(__name__)

EVENT_NAME = "ConnectionHealth"
CONCURRENCY = 4
PAGE = 100


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
        }


async def sweep(store: ConnectionStore, pipeline: Pipeline) -> list[Health]:
    """Every connection, page by page; one ConnectionHealth event each."""
    gate = asyncio.Semaphore(CONCURRENCY)
    results: list[Health] = []
    continuation: str | None = None
    while True:
        records, continuation = await store.page(top=PAGE, continuation=continuation)

        async def one(record: ConnectionRecord) -> Health:
            async with gate:
                return await _check(record, pipeline)

        healths = await asyncio.gather(*(one(r) for r in records))
        for health in healths:
            emit_event(EVENT_NAME, health.properties(), level=logging.WARNING if _unhealthy(health) else logging.INFO)
        results.extend(healths)
        if continuation is None:
            return results


def _unhealthy(health: Health) -> bool:
    return bool(
        health.error
        or health.expiring_soon
        or health.binding_missing
        or health.quarantine_reason
        or health.job_status == "Quarantine"
    )


async def _check(record: ConnectionRecord, pipeline: Pipeline) -> Health:
    from .connections import stored_request

    problems: list[str] = []
    job: dict[str, Any] = {}
    nearest: tuple[datetime, str] | None = None
    try:
        request = stored_request(record)
    except ProvisioningError as error:
        return Health(connection=record.name, error=f"{error.code}: {error.message}"[:300])
    target = request.target
    if target.type == "servicePrincipal":
        try:
            job_id = request.job_id or await _only_job(pipeline, target)
            if job_id is not None:
                state = await graph.get_job(pipeline.graph, target, job_id, call=GraphCall())
                job = {"job_id": state.id, "job_status": state.status, "quarantine_reason": state.quarantine_reason}
        except ProvisioningError as error:
            problems.append(f"job: {error.code}")
    try:
        references = policy.plan(request, pipeline.settings, stored=True).references
    except ProvisioningError as error:
        return Health(connection=record.name, **job, error=f"{error.code}: {error.message}"[:300])
    bound: list[policy.Bound] = []
    values = {c.key: c.value for c in request.credentials if c.value is not None}
    for key, reference in references.items():
        try:
            resolved = await pipeline.resolver.resolve_versioned(reference)
        except ProvisioningError as error:
            problems.append(f"{key}: {error.code}")
            continue
        bound.append(policy.Bound.of(key, reference, resolved))
        values[key] = resolved.value
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
    return Health(
        connection=record.name,
        **job,
        nearest_expiry=None if nearest is None else iso_time(nearest[0]),
        days_to_expiry=days,
        expiring_secret=None if nearest is None else nearest[1],
        expiring_soon=days is not None and days <= pipeline.settings.sweep_expiry_days,
        binding_missing=binding is not None,
        binding_problem=binding,
        error="; ".join(problems) or None,
    )


async def _only_job(pipeline: Pipeline, target: Any) -> str | None:
    ids = await graph.job_ids(pipeline.graph, target, call=GraphCall())
    return ids[0] if len(ids) == 1 else None
