"""Queue and Event Grid semantics (docs/reference.md, "Storage queue" and "Event Grid"), free of ``azure.functions``.

``rejected`` completes the message or event; ``failed`` raises :class:`RetryableFailure`, so the Functions host
retries (a queue message goes to ``<queue>-poison`` after ``maxDequeueCount``; Event Grid follows its retry
policy and dead-letters). Every attempt emits its outcome.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from typing import Any

from .errors import InvalidRequest, ProvisioningError
from .outcome import Outcome
from .pipeline import Pipeline, configuration_outcome
from .rotation import KEY_VAULT_EVENTS, RotationReport
from .settings import SettingsError
from .store import ConnectionStore

__all__ = ["EVENT_TYPE", "RetryableFailure", "decode_queue_message", "from_event", "from_queue"]

log = logging.getLogger(__name__)

EVENT_TYPE = "Provisioning.AcquireAccessTokenRequested"


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


async def from_queue(get_pipeline: Callable[[], Pipeline], body: bytes | str, *, dequeue_count: int | None) -> Outcome:
    try:
        pipeline = get_pipeline()
    except SettingsError as exc:
        raise RetryableFailure(configuration_outcome(exc, trigger="queue", dequeue_count=dequeue_count)) from None
    try:
        text = decode_queue_message(body)
    except InvalidRequest as error:
        return pipeline.refuse(error, trigger="queue", dequeue_count=dequeue_count)
    return _settle(await pipeline.run(text, trigger="queue", dequeue_count=dequeue_count))


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
    try:
        pipeline = get_pipeline()
    except SettingsError as exc:
        raise RetryableFailure(configuration_outcome(exc, trigger="eventGrid")) from None
    # data is the request as an object, or as JSON text: the pipeline's parser takes both.
    return _settle(await pipeline.run(data, trigger="eventGrid"))


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

    try:
        pipeline = get_pipeline()
    except SettingsError as exc:
        raise RetryableFailure(configuration_outcome(exc, trigger="rotation")) from None
    try:
        event = parse_key_vault_event(event_type, data, pipeline.settings, topic=topic)
    except InvalidRequest as error:
        pipeline.refuse(error, trigger="rotation")
        return None
    if event is None:
        return None
    try:
        report = await handle_key_vault_event(event, store=get_store(), pipeline=pipeline)
    except RotationFailed as failure:
        raise RetryableFailure(failure.failed[0]) from None
    except ProvisioningError as error:
        outcome = pipeline.refuse(error, trigger="rotation")
        if error.retryable:
            raise RetryableFailure(outcome) from None
        return None
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


async def sweep(get_pipeline: Callable[[], Pipeline], get_store: Callable[[], ConnectionStore]) -> int:
    """The timer's sweep; returns how many connections were reported. An outage raises (the timer runs again)."""
    from .sweep import sweep as run_sweep

    pipeline = get_pipeline()
    return len(await run_sweep(get_store(), pipeline))


def _settle(outcome: Outcome) -> Outcome:
    if outcome.outcome == "failed":
        raise RetryableFailure(outcome)
    return outcome
