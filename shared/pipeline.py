"""The pipeline: a runner over the process's :class:`~shared.container.Container`. Parse, apply policy, resolve
references, run the steps, emit one outcome.

:meth:`Pipeline.run` never raises for anything a caller sent or a service answered: every request ends in one
:class:`~shared.outcome.Outcome`, emitted before it is returned. Errors become outcomes in one place
(:func:`build_outcome`): a :class:`~shared.errors.ProvisioningError` becomes an :class:`~shared.outcome.ErrorRecord`
with the request's secrets redacted, and anything unexpected an ``internalError``. What stops a request before it
reaches the runner (a setting that cannot be parsed, the caller's role, a bad message) ends the same way, through
:func:`refused`, which every trigger adapter calls from its one ``except``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from . import graph, policy
from .errors import ConfigurationError, InternalError, ProvisioningError
from .keys import is_address
from .outcome import MAX_MESSAGE_CHARS, ErrorRecord, GraphCall, JobState, Outcome, StepResult, safe_message
from .request import JOB_STEPS, AcquireRequest, Target, parse_request
from .settings import Settings, SettingsError
from .steps import CHANGING_STEPS, DRY_RUN_STEPS, STEPS, StepContext
from .store import iso_time
from .telemetry import emit_outcome, span

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

    from .container import Container
    from .graph import GraphClient
    from .references import SecretResolver

__all__ = [
    "MAX_MESSAGE_CHARS",
    "Invocation",
    "Pipeline",
    "as_error",
    "configuration_outcome",
    "refused",
    "safe_message",
]

log = logging.getLogger(__name__)
_DRY_RUN = {"reason": "dryRun"}


@dataclass(frozen=True)
class Invocation:
    """How a request arrived: the trigger, and what the trigger knows besides the request itself."""

    trigger: str
    target: Target | None = None  # from an HTTP route's path
    dequeue_count: int | None = None
    connection: str | None = None  # a stored connection being run
    # Secret id -> the version to use for references that name none (a rotation applies exactly the new version).
    pinned_versions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass
class _Run:
    """What is known about a request as it goes; the frozen Outcome is built from it once, at the end."""

    invocation: Invocation
    started: float
    request: AcquireRequest | None = None
    target: Target | None = None
    secrets: list[str] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    last_call: GraphCall | None = None
    job: JobState | None = None
    # secret id -> {"version", "created"} of the version resolved
    versions: dict[str, Mapping[str, str | None]] = field(default_factory=dict)


class Pipeline:
    """Runs requests over ``clients`` (settings, credential, Graph client, resolver, store)."""

    def __init__(self, clients: Container) -> None:
        self.clients = clients

    @property
    def settings(self) -> Settings:
        return self.clients.settings

    @property
    def graph(self) -> GraphClient:
        return self.clients.graph

    @property
    def resolver(self) -> SecretResolver:
        return self.clients.resolver

    @property
    def credential(self) -> AsyncTokenCredential:
        """The container's token credential (owned and closed by the container)."""
        return self.clients.credential

    async def run(self, raw: Any, invocation: Invocation) -> Outcome:
        """Run one request that arrived as ``invocation`` says. ``raw`` is bytes, text, a decoded JSON value or an
        :class:`AcquireRequest`."""
        with span("AcquireAccessToken", trigger=invocation.trigger) as current:
            outcome = await self._run(raw, invocation)
            current.set_attribute("outcome", outcome.outcome)
            if outcome.error_code:
                current.set_attribute("error.type", outcome.error_code)
            return outcome

    async def _run(self, raw: Any, invocation: Invocation) -> Outcome:
        run = _Run(invocation=invocation, started=time.perf_counter(), target=invocation.target)
        error: ProvisioningError | None = None
        try:
            request = raw if isinstance(raw, AcquireRequest) else parse_request(raw, target=invocation.target)
            run.request = request
            run.target = request.target
            error = await self._steps(request, run)
        except ProvisioningError as exc:
            error = exc
        except Exception:
            log.exception("unexpected error in the pipeline (trigger %s)", invocation.trigger)
            error = InternalError("unexpected error; the app's logs have the details")
        return _finish(run, error)

    def refuse(
        self,
        error: ProvisioningError,
        *,
        trigger: str,
        target: Target | None = None,
        dequeue_count: int | None = None,
        connection: str | None = None,
    ) -> Outcome:
        """The outcome of a request refused before it reached the pipeline (the caller's role, a bad message)."""
        invocation = Invocation(trigger=trigger, target=target, dequeue_count=dequeue_count, connection=connection)
        return refused(error, invocation)

    def _prefetch_graph_token(self, request: AcquireRequest) -> asyncio.Task[str] | None:
        """Start fetching the Graph token if a step will call Graph; a failure is left for that step to meet again."""
        if all(_skipped_by_dry_run(request, name) for name in request.steps):
            return None
        task = asyncio.ensure_future(self.graph.token())
        task.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved: the step raises it
        return task

    async def _steps(self, request: AcquireRequest, run: _Run) -> ProvisioningError | None:
        """Policy, references, then each step until one does not succeed; returns that step's error."""
        settings = self.settings
        target = request.target
        checked = policy.plan(request, settings, pinned=run.invocation.pinned_versions)
        run.secrets.extend(checked.inline_secrets)
        references = checked.references

        # The Graph token is fetched while Key Vault answers: on a cold start both are a round trip to the identity
        # endpoint and more, and nothing about one depends on the other.
        prefetch = self._prefetch_graph_token(request) if references else None
        try:
            answers = await self.resolver.resolve_all(references.values())
            resolved = {key: answer.value for key, answer in zip(references, answers, strict=True)}
            run.secrets.extend(resolved.values())
            credentials = [(c.key, resolved.get(c.key, c.value or "")) for c in request.credentials]
            for key, value in credentials:
                if key in resolved and is_address(key):
                    policy.check_address_shape(key, value)
            bound = tuple(
                policy.Bound.of(key, reference, answer)
                for (key, reference), answer in zip(references.items(), answers, strict=True)
            )
            # Before any Graph call: each secret goes only to the targets and endpoints its tags name.
            policy.check_bindings(target, credentials, bound, settings)
            policy.check_saved(request, bound, settings)
        except BaseException:
            if prefetch is not None:
                prefetch.cancel()
            raise
        run.versions = {
            ref.secret_id: {"version": answer.version, "created": iso_time(answer.created_on)}
            for ref, answer in zip(references.values(), answers, strict=True)
            if answer.version is not None
        }

        ctx = StepContext(
            request=request,
            target=target,
            graph=self.graph,
            credentials=credentials,
            check_sent=lambda sent: policy.check_bindings(target, sent, bound, settings),
        )
        failure: ProvisioningError | None = None
        for name in request.steps:
            if failure is not None:
                run.steps.append(StepResult(name=name, status="notRun"))
                continue
            if _skipped_by_dry_run(request, name):
                run.steps.append(StepResult(name=name, status="skipped", detail=_DRY_RUN))
                continue
            first_call = len(ctx.calls)
            try:
                done = await STEPS[name](ctx)
            except ProvisioningError as exc:
                failure = _after(
                    exc, [s.name for s in run.steps if s.status == "succeeded" and s.name in CHANGING_STEPS]
                )
                step_call = ctx.calls[-1] if len(ctx.calls) > first_call else None
                record = ErrorRecord.from_error(exc, run.secrets)
                run.steps.append(
                    StepResult(
                        name=name,
                        status="failed" if record.retryable else "rejected",
                        graph=step_call,
                        error=record,
                        detail=exc.detail,
                    )
                )
            else:
                step_call = ctx.calls[-1] if len(ctx.calls) > first_call else None
                run.steps.append(StepResult(name=name, status=done.status, graph=step_call, detail=done.detail))
            if step_call is not None:
                run.last_call = step_call
        run.job = await self._job_after(ctx, request, run)
        return failure

    async def _job_after(self, ctx: StepContext, request: AcquireRequest, run: _Run) -> JobState | None:
        """The job as it stands after the last job step that ran (best effort: a read that fails is left out)."""
        ran = [s for s in run.steps if s.name in JOB_STEPS and s.status != "notRun" and s.detail != _DRY_RUN]
        job_id = ctx.known_job_id
        if not ran or job_id is None:
            return None
        last = ran[-1]
        if last.name == "startJob" and last.status == "skipped" and ctx.job is not None:
            return ctx.job  # just read, and nothing changed it since
        try:
            return await graph.get_job(self.graph, request.target, job_id, call=GraphCall())
        except ProvisioningError:
            return JobState(id=job_id, status=None)

    async def close(self) -> None:
        """Close the container this pipeline runs over (a pipeline from ``build_pipeline`` is its only user)."""
        await self.clients.close()


def _after(error: ProvisioningError, applied: list[str]) -> ProvisioningError:
    """A failure after steps that changed something says so, so that the caller knows a re-run is safe."""
    if applied:
        error.message += f" (already applied by earlier steps: {', '.join(applied)}; every step is safe to repeat)"
    return error


def build_outcome(run: _Run, error: ProvisioningError | None) -> Outcome:
    """The one place where errors become outcomes."""
    request = run.request
    record = None if error is None else ErrorRecord.from_error(error, run.secrets)
    if record is not None:
        kind = record.outcome
    else:
        kind = "validated" if request is not None and request.dry_run else "succeeded"
    return Outcome(
        outcome=kind,
        trigger=run.invocation.trigger,
        target=run.target,
        credential_keys=[] if request is None else request.credential_keys,
        graph=run.last_call,
        correlation_id=None if request is None else request.correlation_id,
        duration_ms=(time.perf_counter() - run.started) * 1000,
        retryable=record is not None and record.retryable,
        error_code=None if record is None else record.code,
        error_message=None if record is None else record.message,
        dequeue_count=run.invocation.dequeue_count,
        steps=tuple(run.steps),
        job=run.job,
        connection=run.invocation.connection,
        applied_versions=MappingProxyType(dict(run.versions) if record is None else {}),
        http_status=200 if record is None else record.http_status,
        retry_after=None if record is None else record.retry_after,
        invalid=record is not None and record.invalid,
    )


def _finish(run: _Run, error: ProvisioningError | None) -> Outcome:
    outcome = build_outcome(run, error)
    emit_outcome(outcome)
    return outcome


def as_error(exc: BaseException) -> ProvisioningError:
    """Any exception as one of ours: a setting that cannot be parsed is a ConfigurationError (failed, 503), a surprise
    an InternalError (failed, 500; logged here with its traceback, never put in a reply)."""
    if isinstance(exc, ProvisioningError):
        return exc
    if isinstance(exc, SettingsError):
        return ConfigurationError(str(exc))
    log.error("unexpected error before the pipeline ran", exc_info=exc)
    return InternalError("unexpected error; the app's logs have the details")


def refused(exc: BaseException, invocation: Invocation) -> Outcome:
    """The emitted outcome of a request that stopped before the runner: ``exc`` made one of ours by :func:`as_error`."""
    return _finish(_Run(invocation=invocation, started=time.perf_counter(), target=invocation.target), as_error(exc))


def configuration_outcome(exc: SettingsError, *, trigger: str, dequeue_count: int | None = None) -> Outcome:
    """A request that arrives while an app setting cannot be parsed: failed, so queued work is kept."""
    return refused(exc, Invocation(trigger=trigger, dequeue_count=dequeue_count))


def _skipped_by_dry_run(request: AcquireRequest, step: str) -> bool:
    """A dry run skips every step but the ones that change nothing (every step that runs calls Graph)."""
    return request.dry_run and step not in DRY_RUN_STEPS
