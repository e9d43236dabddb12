"""The pipeline: validate, apply policy, resolve references, call Graph, emit the outcome.

:meth:`Pipeline.run` never raises for anything a caller sent or a service answered: every request ends in one
:class:`~shared.outcome.Outcome`, emitted before it is returned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from .errors import PolicyRefused, ProvisioningError
from .graph import GraphCall, GraphClient
from .keys import is_sensitive
from .outcome import Outcome
from .references import SecretReference, SecretResolver, parse_reference
from .request import AcquireRequest, Target, parse_request
from .settings import Settings, SettingsError
from .telemetry import emit_outcome, span

__all__ = ["Pipeline", "configuration_outcome"]

log = logging.getLogger(__name__)

_MIN_REDACT = 4
MAX_MESSAGE_CHARS = 600


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        *,
        resolver: SecretResolver,
        graph: GraphClient,
        emit: Callable[[Outcome], None] = emit_outcome,
    ) -> None:
        self.settings = settings
        self.resolver = resolver
        self.graph = graph
        self._emit = emit

    async def run(
        self,
        raw: Any,
        *,
        trigger: str,
        target: Target | None = None,
        dequeue_count: int | None = None,
    ) -> Outcome:
        """Run one request. ``raw`` is bytes, text, a decoded JSON value or an :class:`AcquireRequest`."""
        with span("AcquireAccessToken", trigger=trigger) as current:
            outcome = await self._run(raw, trigger=trigger, target=target, dequeue_count=dequeue_count)
            current.set_attribute("outcome", outcome.outcome)
            if outcome.error_code:
                current.set_attribute("error.type", outcome.error_code)
            return outcome

    async def _run(self, raw: Any, *, trigger: str, target: Target | None, dequeue_count: int | None) -> Outcome:
        started = time.perf_counter()
        outcome = Outcome(outcome="failed", trigger=trigger, target=target, dequeue_count=dequeue_count)
        secrets: list[str] = []
        try:
            request = raw if isinstance(raw, AcquireRequest) else parse_request(raw, target=target)
            outcome.target = request.target
            outcome.credential_keys = request.credential_keys
            outcome.correlation_id = request.correlation_id
            await self._authorize(request, outcome, secrets)
        except ProvisioningError as error:
            _fail(outcome, error, secrets)
        except Exception:
            log.exception("unexpected error in the pipeline (trigger %s)", trigger)
            outcome.outcome = "failed"
            outcome.retryable = True
            outcome.http_status = 500
            outcome.error_code = "internalError"
            outcome.error_message = "unexpected error; the app's logs have the details"
        outcome.duration_ms = (time.perf_counter() - started) * 1000
        self._emit(outcome)
        return outcome

    def refuse(
        self,
        error: ProvisioningError,
        *,
        trigger: str,
        target: Target | None = None,
        dequeue_count: int | None = None,
    ) -> Outcome:
        """The outcome of a request refused before it reached the pipeline (the caller's role, a bad message)."""
        outcome = Outcome(outcome="rejected", trigger=trigger, target=target, dequeue_count=dequeue_count)
        _fail(outcome, error, [])
        self._emit(outcome)
        return outcome

    async def _authorize(self, request: AcquireRequest, outcome: Outcome, secrets: list[str]) -> None:
        settings = self.settings
        target = request.target
        if settings.allowed_targets is not None and target.id not in settings.allowed_targets:
            raise PolicyRefused(f"{target.type} {target.id} is not in ALLOWED_TARGETS", code="targetNotAllowed")

        references: dict[str, SecretReference] = {}
        for credential in request.credentials:
            if credential.secret_ref is not None:
                references[credential.key] = parse_reference(credential.secret_ref, settings, key=credential.key)
            elif is_sensitive(credential.key):
                if credential.value is not None:
                    secrets.append(credential.value)
                if not settings.allow_inline_secrets:
                    raise PolicyRefused(
                        f"credential {credential.key!r} is sensitive and must come as a secretRef "
                        "(ALLOW_INLINE_SECRETS is off)",
                        code="inlineSecretNotAllowed",
                    )

        resolved_values = await self.resolver.resolve_all(references.values())
        resolved = dict(zip(references, resolved_values, strict=True))
        secrets.extend(resolved_values)

        if request.dry_run:
            outcome.outcome = "validated"
            return

        values = [(c.key, resolved.get(c.key, c.value or "")) for c in request.credentials]
        outcome.graph = GraphCall()
        await self.graph.acquire_access_token(target, values, call=outcome.graph)
        outcome.outcome = "succeeded"

    async def close(self) -> None:
        await self.resolver.close()
        await self.graph.close()


def configuration_outcome(exc: SettingsError, *, trigger: str, dequeue_count: int | None = None) -> Outcome:
    """A request that arrives while an app setting cannot be parsed: failed, so queued work is kept."""
    outcome = Outcome(
        outcome="failed",
        trigger=trigger,
        dequeue_count=dequeue_count,
        retryable=True,
        http_status=503,
        retry_after=60,
        error_code="configurationError",
        error_message=str(exc),
    )
    emit_outcome(outcome)
    return outcome


def _fail(outcome: Outcome, error: ProvisioningError, secrets: list[str]) -> None:
    outcome.outcome = "failed" if error.retryable else "rejected"
    outcome.retryable = error.retryable
    outcome.http_status = error.http_status
    outcome.retry_after = error.retry_after
    outcome.error_code = error.code
    outcome.error_message = safe_message(error.message, secrets)


def safe_message(text: str, secrets: list[str]) -> str:
    """A message fit to leave the app: the request's secrets redacted first, then shortened, never the reverse.

    Defence in depth: a value that reached a message (say, echoed by Graph) is blanked out; shortening only after
    that means a cut can never leave the first characters of a secret behind.
    """
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= _MIN_REDACT and secret in text:
            text = text.replace(secret, "***")
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 1] + "…"
    return text
