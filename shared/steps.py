"""The credential lifecycle steps: small units the pipeline runs in the request's order.

A step is ``async def step(ctx) -> StepDone``: it makes its Graph calls through :meth:`StepContext.call` (so the
outcome can report the last one) and raises a :class:`~shared.errors.ProvisioningError` when it does not succeed.
Every step is safe to repeat: a caller may re-run a request whose later step failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from . import graph
from .errors import GraphRejected, SecretsIncomplete
from .graph import GraphClient, SecretsUnreadable
from .keys import is_sensitive
from .outcome import GraphCall, JobState
from .request import AcquireRequest, Target
from .stepnames import CHANGING_STEPS, DRY_RUN_STEPS, STEP_NAMES, StepName

__all__ = ["CHANGING_STEPS", "DRY_RUN_STEPS", "STEPS", "Step", "StepContext", "StepDone"]


@dataclass(frozen=True)
class StepDone:
    status: Literal["succeeded", "skipped"] = "succeeded"
    detail: dict[str, Any] | None = None


@dataclass
class StepContext:
    """What the steps of one request share: the request, its resolved credentials, the Graph client, the job."""

    request: AcquireRequest
    target: Target
    graph: GraphClient
    credentials: list[tuple[str, str]]  # (key, value) in the request's order, references resolved
    # Raises when these credentials may not be sent together with the request's secrets (their bindings).
    check_sent: Callable[[list[tuple[str, str]]], None] = lambda _sent: None
    calls: list[GraphCall] = field(default_factory=list)
    job: JobState | None = None
    _job_id: str | None = None

    def call(self) -> GraphCall:
        """A new Graph call record for the running step."""
        record = GraphCall()
        self.calls.append(record)
        return record

    async def job_id(self) -> str:
        """``jobId`` from the request, or the service principal's only job (listed once per request)."""
        if self._job_id is None:
            self._job_id = self.request.job_id or await self._only_job()
        return self._job_id

    @property
    def known_job_id(self) -> str | None:
        return self._job_id

    async def _only_job(self) -> str:
        return await graph.only_job(self.graph, self.target, call=self.call())


async def validate_credentials(ctx: StepContext) -> StepDone:
    await graph.validate_credentials(ctx.graph, ctx.target, await ctx.job_id(), ctx.credentials, call=ctx.call())
    return StepDone()


async def acquire_access_token(ctx: StepContext) -> StepDone:
    await graph.acquire_access_token(ctx.graph, ctx.target, ctx.credentials, call=ctx.call())
    return StepDone()


async def save_secrets(ctx: StepContext) -> StepDone:
    """Read-modify-write: the request's keys replace the stored ones, stored non-sensitive keys are kept, and a
    stored sensitive key the request does not name refuses the step (it would be lost) unless replaceSecrets."""
    requested = ctx.credentials
    if ctx.request.replace_secrets:
        new_set = list(requested)
    else:
        try:
            stored = await graph.get_secrets(ctx.graph, ctx.target, call=ctx.call())
        except SecretsUnreadable as exc:
            raise SecretsIncomplete(
                f"the stored secrets cannot be read ({exc}), so saving could drop some of them; send the whole set "
                "with 'replaceSecrets': true",
                code="secretsUnreadable",
            ) from None
        names = {key for key, _ in requested}
        missing = sorted({key for key, _ in stored if key not in names and is_sensitive(key)})
        if missing:
            raise SecretsIncomplete(
                f"the stored secrets hold sensitive key(s) {', '.join(missing)} that the request does not name; "
                "saving would drop them. Name them too, or send 'replaceSecrets': true to replace the whole set"
            )
        new_set = [(key, value) for key, value in stored if key not in names] + list(requested)
        # The addresses already stored in Graph go out with the request's secrets too.
        ctx.check_sent(new_set)
    await graph.put_secrets(ctx.graph, ctx.target, new_set, call=ctx.call())
    return StepDone()


def _running(job: JobState) -> bool:
    return (job.status or "").lower() == "active" and job.quarantine_reason is None and job.quarantine_since is None


async def start_job(ctx: StepContext) -> StepDone:
    """Start the job, unless it already runs (Active, not in quarantine): a running job is never started."""
    job_id = await ctx.job_id()
    ctx.job = await graph.get_job(ctx.graph, ctx.target, job_id, call=ctx.call())
    if _running(ctx.job):
        return StepDone("skipped", {"reason": "the job is already active"})
    await graph.start_job(ctx.graph, ctx.target, job_id, call=ctx.call())
    return StepDone()


async def restart_job(ctx: StepContext) -> StepDone:
    scope = ctx.request.restart_scope
    await graph.restart_job(ctx.graph, ctx.target, await ctx.job_id(), scope, call=ctx.call())
    return StepDone(detail={"resetScope": scope})


async def provision_on_demand(ctx: StepContext) -> StepDone:
    on_demand = ctx.request.on_demand
    assert on_demand is not None  # the request model requires it with this step
    parameters = [
        {
            "ruleId": on_demand.rule_id,
            "subjects": [{"objectId": s.object_id, "objectTypeName": s.object_type_name} for s in on_demand.subjects],
        }
    ]
    summary = await graph.provision_on_demand(ctx.graph, ctx.target, await ctx.job_id(), parameters, call=ctx.call())
    if summary["provisioningSteps"] and not summary["succeeded"]:
        failed = [s["name"] for s in summary["provisioningSteps"] if (s["status"] or "").lower() == "failure"]
        raise GraphRejected(
            "provisionOnDemand ran, and provisioning reported a failure"
            + (f" in {', '.join(failed)}" if failed else ""),
            code="provisionOnDemandFailed",
            detail=summary,
        )
    return StepDone(detail=summary)


Step = Callable[[StepContext], Awaitable[StepDone]]

# The functions of the step table's rows (shared/stepnames.py), in its order.
STEPS: dict[StepName, Step] = {
    "validateCredentials": validate_credentials,
    "acquireAccessToken": acquire_access_token,
    "saveSecrets": save_secrets,
    "startJob": start_job,
    "restartJob": restart_job,
    "provisionOnDemand": provision_on_demand,
}
if tuple(STEPS) != STEP_NAMES:
    raise RuntimeError(f"the step functions {tuple(STEPS)} do not match the step table {STEP_NAMES}")
