"""Queue and Event Grid semantics (docs/reference.md, "Storage queue" and "Event Grid"), free of ``azure.functions``.

``rejected`` completes the message or event; ``failed`` raises :class:`RetryableFailure`, so the Functions host
retries (a queue message goes to ``<queue>-poison`` after ``maxDequeueCount``; Event Grid follows its retry
policy and dead-letters). Every attempt emits its outcome. Each message or event is settled in one place,
:func:`_settled`, which also turns what stops it before the runner (a setting that cannot be parsed, a message
that is not a request, a surprise) into its outcome.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .errors import InvalidRequest
from .outcome import Outcome
from .pipeline import Invocation, Pipeline, refused
from .rotation import KEY_VAULT_EVENTS, RotationReport
from .store import ConnectionStore

__all__ = ["EVENT_TYPE", "RetryableFailure", "decode_queue_message", "from_event", "from_queue"]

log = logging.getLogger(__name__)

EVENT_TYPE = "Provisioning.AcquireAccessTokenRequested"
_T = TypeVar("_T")


class RetryableFailure(Exception):
    """Raised to the host for a ``failed`` outcome so that it retries. Carries no secret: code and message only."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"{outcome.error_code}: {outcome.error_message}")
        self.outcome = outcome


def decode_queue_message(body: bytes | str) -> str:
    """The request text of a queue message: base64-encoded JSON (the host's default), or plain JSON.

    ``host.json`` sets ``messageEncoding`` to ``none`` so that this code, not the host, decodes: a message that
    is not base64 then ends in a ``rejected`` outcome instead of failing before the function runs.
    """
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise InvalidRequest("the queue message is not UTF-8 text") from None
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        return stripped
    try:
        decoded = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("the queue message is neither JSON nor base64-encoded JSON") from None
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the queue message's base64 content is not UTF-8 text") from None


async def _settled(handle: Callable[[], Awaitable[_T]], invocation: Invocation) -> _T | Outcome:
    """What ``handle`` returns, or the emitted outcome of the error that stopped it; a ``failed`` outcome is raised
    as :class:`RetryableFailure`, so that the host retries."""
    try:
        result: _T | Outcome = await handle()
    except RetryableFailure:
        raise
    except Exception as exc:  # noqa: BLE001 - every error ends in an outcome; refused() logs a surprise
        result = refused(exc, invocation)
    if isinstance(result, Outcome) and result.outcome == "failed":
        raise RetryableFailure(result)
    return result


async def from_queue(get_pipeline: Callable[[], Pipeline], body: bytes | str, *, dequeue_count: int | None) -> Outcome:
    invocation = Invocation(trigger="queue", dequeue_count=dequeue_count)

    async def handle() -> Outcome:
        pipeline = get_pipeline()
        return await pipeline.run(decode_queue_message(body), invocation)

    return await _settled(handle, invocation)


async def from_event(
    get_pipeline: Callable[[], Pipeline],
    *,
    event_type: str | None,
    event_id: str | None,
    data: Any,
    get_store: Callable[[], ConnectionStore] | None = None,
    topic: str | None = None,
) -> Outcome | RotationReport | None:
    """One Event Grid event (either schema): a request, or a Key Vault secret event. Other types are logged and
    ignored (``None``). ``topic``: the event's topic (Event Grid schema) or source (CloudEvents)."""
    event_type = (event_type or "").strip()
    if event_type in KEY_VAULT_EVENTS and get_store is not None:
        return await from_key_vault_event(
            get_pipeline, get_store, event_type=event_type, event_id=event_id, data=data, topic=topic
        )
    if event_type != EVENT_TYPE:
        log.info("ignoring Event Grid event %s of type %r", event_id, event_type)
        return None
    invocation = Invocation(trigger="eventGrid")

    async def handle() -> Outcome:
        # data is the request as an object, or as JSON text: the pipeline's parser takes both.
        return await get_pipeline().run(data, invocation)

    return await _settled(handle, invocation)


async def from_key_vault_event(
    get_pipeline: Callable[[], Pipeline],
    get_store: Callable[[], ConnectionStore],
    *,
    event_type: str,
    event_id: str | None,
    data: Any,
    topic: str | None = None,
) -> RotationReport | None:
    """A Key Vault secret event: rotation or an expiry warning. A malformed event is rejected with an outcome (never
    retried); an outage raises so that Event Grid redelivers; so does any connection whose re-apply failed."""
    from .rotation import RotationFailed, handle_key_vault_event, parse_key_vault_event

    async def handle() -> RotationReport | None:
        pipeline = get_pipeline()
        event = parse_key_vault_event(event_type, data, pipeline.settings, topic=topic)
        if event is None:
            return None
        try:
            # The event's id names the delivery (Event Grid gives no attempt number: its claims are released or expire).
            report = await handle_key_vault_event(event, store=get_store(), pipeline=pipeline, owner=event_id)
        except RotationFailed as failure:  # every connection was tried; the failed ones' outcomes are emitted
            raise RetryableFailure(failure.failed[0]) from None
        log.info(
            "Key Vault event %s (%s %s): applied %s, skipped %s, superseded %s, rejected %s, warned %s",
            event_id,
            event_type,
            event.name,
            report.applied,
            report.skipped,
            report.superseded,
            report.rejected,
            report.warned,
        )
        return report

    result = await _settled(handle, Invocation(trigger="rotation"))
    return None if isinstance(result, Outcome) else result  # a rejected event is completed: its outcome is emitted


async def sweep(get_pipeline: Callable[[], Pipeline], get_store: Callable[[], ConnectionStore]) -> int:
    """The timer's sweep; returns how many connections were reported. An outage raises (the timer runs again)."""
    from .sweep import sweep as run_sweep

    pipeline = get_pipeline()
    return len(await run_sweep(get_store(), pipeline))
