"""Per-connection work on ``%CONNECTION_QUEUE_NAME%``: how the sweep and large rotations fan out (docs/fleet.md).

The timer and a rotation that affects more than a few connections put one message per connection on the queue and
return; a queue function does each connection's check or re-apply. The Functions host's scale-out over the queue is
the distributed engine: nothing here schedules work itself. A message is one :class:`WorkItem` as JSON, base64
encoded as the host's queue trigger expects by default (``host.json`` decodes none: the app reads both).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from .errors import ConfigurationError, InvalidRequest, ServiceUnavailable

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

__all__ = ["SEND_CONCURRENCY", "WorkItem", "WorkQueue", "get_work_queue"]

SEND_CONCURRENCY = 16  # messages sent at once by one invocation
WorkKind = Literal["check", "rotate", "fanout"]


@dataclass(frozen=True)
class WorkItem:
    """One connection's work: ``check`` (health, then recovery if it opted in) or ``rotate`` (apply a version); or
    ``fanout``: enqueue one ``rotate`` per connection that uses the secret (so that the event delivery that found
    more than a few ends at once, whatever their number; ``connection`` is ``*``)."""

    kind: WorkKind
    connection: str
    secret_id: str | None = None  # rotate and fanout: the secret and the version to apply (still checked against
    version: str | None = None  # Key Vault's current version when the work runs: a message is never trusted)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> WorkItem:
        try:
            data = json.loads(text)
        except ValueError:
            raise InvalidRequest("the work message is not JSON") from None
        if not isinstance(data, dict) or data.get("kind") not in ("check", "rotate", "fanout"):
            raise InvalidRequest("the work message names no kind of work (check, rotate or fanout)")
        if set(data) - {"kind", "connection", "secret_id", "version"}:
            raise InvalidRequest("the work message has fields no work takes")
        values = {k: data.get(k) for k in ("connection", "secret_id", "version")}
        if not all(v is None or isinstance(v, str) for v in values.values()) or not values["connection"]:
            raise InvalidRequest("the work message's fields are strings, and it names a connection")
        if data["kind"] in ("rotate", "fanout") and not (values["secret_id"] and values["version"]):
            raise InvalidRequest("a rotate message names the secret and the version")
        return cls(kind=data["kind"], **values)  # type: ignore[arg-type]


class WorkQueue:
    """``%CONNECTION_QUEUE_NAME%`` in the app's own storage account, as the Functions host reaches it: a connection
    string in ``AzureWebJobsStorage`` (``UseDevelopmentStorage=true`` is Azurite), or identity-based
    (``AzureWebJobsStorage__queueServiceUri`` or ``__accountName``) with the app's credential."""

    def __init__(self, queue_name: str, credential: AsyncTokenCredential | None) -> None:
        self.queue_name = queue_name
        self._credential = credential
        self._client: Any = None

    def _queue(self) -> Any:
        if self._client is None:
            from azure.storage.queue import TextBase64EncodePolicy
            from azure.storage.queue.aio import QueueClient

            from .storage import storage_account

            account = storage_account("queue")
            encode = TextBase64EncodePolicy()
            if account is None:
                raise ConfigurationError(
                    "no storage account for the connection-work queue: set AzureWebJobsStorage or "
                    "AzureWebJobsStorage__accountName"
                )
            try:
                if account.connection_string is not None:
                    self._client = QueueClient.from_connection_string(
                        account.connection_string, self.queue_name, message_encode_policy=encode
                    )
                else:
                    if self._credential is None:
                        raise ConfigurationError(f"app setting {account.setting}: identity-based, but no credential")
                    self._client = QueueClient(
                        str(account.endpoint),
                        self.queue_name,
                        credential=self._credential,
                        message_encode_policy=encode,
                    )
            except (ValueError, TypeError):
                raise ConfigurationError(
                    f"app setting {account.setting}: not a storage account the queue client can use"
                ) from None
        return self._client

    async def send_many(self, items: Iterable[WorkItem]) -> int:
        """Send one message per item, :data:`SEND_CONCURRENCY` at a time; an outage raises (the caller retries)."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        queue = self._queue()
        gate = asyncio.Semaphore(SEND_CONCURRENCY)

        async def send(item: WorkItem) -> None:
            async with gate:
                await queue.send_message(item.to_json())

        batch = list(items)
        try:
            await asyncio.gather(*(send(item) for item in batch))
        except ResourceNotFoundError:
            raise ConfigurationError(
                f"queue {self.queue_name!r} does not exist in the app's storage account (the infra creates it)",
                code="queueNotFound",
            ) from None
        except AzureError as exc:
            raise ServiceUnavailable(
                f"could not enqueue connection work on {self.queue_name!r} ({type(exc).__name__})",
                code="queueUnavailable",
            ) from None
        return len(batch)

    async def exists(self) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            await self._queue().get_queue_properties()
        except ResourceNotFoundError:
            return False
        return True

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def get_work_queue() -> WorkQueue:
    """The connection-work queue of this process's container (made on first use, closed with the container)."""
    from .runtime import get_pipeline

    return get_pipeline().clients.work_queue
