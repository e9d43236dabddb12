"""The connection-work queue function: one connection's check (and recovery) or re-apply (docs/fleet.md).

A message that cannot be read is rejected with a log line and completed; a connection's work that failed in a way
retrying may fix raises, so the Functions host retries it and, after ``maxDequeueCount``, moves it to the poison
queue; the last attempt first emits a ``ConnectionWorkFailed`` event naming the connection, so the failure is
reported and not only parked. Work skipped because another delivery holds the connection's claim is never
reported done: it raises too, until the claim is released or expires.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import InvalidRequest, ProvisioningError
from .telemetry import emit_event

if TYPE_CHECKING:
    from .outcome import Outcome
    from .pipeline import Pipeline
    from .store import ConnectionStore
    from .work import WorkItem

__all__ = ["MAX_DEQUEUE_COUNT", "from_work_queue"]

log = logging.getLogger(__name__)

MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount (a test keeps the two the same)


async def from_work_queue(
    get_pipeline: Callable[[], Pipeline],
    get_store: Callable[[], ConnectionStore],
    body: bytes | str,
    *,
    dequeue_count: int | None,
    message_id: str | None,
) -> None:
    from .pipeline import Invocation, refused
    from .triggers import _settled, decode_queue_message
    from .work import WorkItem

    async def handle() -> Outcome | None:
        pipeline = get_pipeline()
        try:
            item = WorkItem.from_json(decode_queue_message(body))
        except InvalidRequest as error:
            log.warning("connection-work message %s rejected: %s", message_id, error.message)
            return None
        trigger = "sweep" if item.kind == "check" else "rotation"
        try:
            failure = await _work(item, pipeline, get_store(), owner=message_id, attempt=dequeue_count)
        except ProvisioningError as error:
            if not error.retryable:
                log.warning("connection %r: %s work rejected: %s", item.connection, item.kind, error.code)
                return None
            invocation = Invocation(trigger=trigger, dequeue_count=dequeue_count, connection=item.connection)
            failure = refused(error, invocation)
        if failure is not None and (dequeue_count or 1) >= MAX_DEQUEUE_COUNT:
            emit_event(
                "ConnectionWorkFailed",
                {
                    "connection": item.connection,
                    "kind": item.kind,
                    "dequeueCount": str(dequeue_count),
                    "errorCode": failure.error_code,
                    "version": item.version,
                    "detail": "moved to the poison queue after the last attempt",
                },
                level=logging.ERROR,
            )
        return failure  # a failed outcome is raised, so that the host retries (then moves it to the poison queue)

    await _settled(handle, Invocation(trigger="queue", dequeue_count=dequeue_count))


async def _work(
    item: WorkItem, pipeline: Pipeline, store: ConnectionStore, *, owner: str | None, attempt: int | None
) -> Outcome | None:
    """Do one item; the failed outcome to retry, or ``None`` when the work is done (or rejected for good)."""
    from .recovery import recover
    from .rotation import rotate_connection
    from .sweep import check, report

    if item.kind == "fanout":
        from .rotation import fan_out
        from .work import get_work_queue

        sent = await fan_out(item, store=store, queue=get_work_queue())
        log.info("rotation of %s to version %s: %d connection(s) enqueued", item.secret_id, item.version, sent)
        return None
    if item.kind == "rotate":
        done = await rotate_connection(item, store=store, pipeline=pipeline, owner=owner, attempt=attempt)
        return done.failed[0] if done.failed else None
    record = await store.get(item.connection)
    if record is None:
        log.info("connection %r was deleted before its check ran", item.connection)
        return None
    health = await check(record, pipeline)
    report(health)
    await recover(record, health, store=store, pipeline=pipeline)
    return None  # a recovery is attempted once per RECOVERY_MIN_HOURS: its outcome is reported, not retried
