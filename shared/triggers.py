"""Queue and Event Grid semantics (CONTRACT section 4), free of ``azure.functions``.

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

from .errors import InvalidRequest
from .outcome import Outcome
from .pipeline import Pipeline, configuration_outcome
from .settings import SettingsError

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
    get_pipeline: Callable[[], Pipeline], *, event_type: str | None, event_id: str | None, data: Any
) -> Outcome | None:
    """One Event Grid event (either schema). Events of other types are logged and ignored (``None``)."""
    if event_type != EVENT_TYPE:
        log.info("ignoring Event Grid event %s of type %r", event_id, event_type)
        return None
    try:
        pipeline = get_pipeline()
    except SettingsError as exc:
        raise RetryableFailure(configuration_outcome(exc, trigger="eventGrid")) from None
    # data is the request as an object, or as JSON text: the pipeline's parser takes both.
    return _settle(await pipeline.run(data, trigger="eventGrid"))


def _settle(outcome: Outcome) -> Outcome:
    if outcome.outcome == "failed":
        raise RetryableFailure(outcome)
    return outcome
