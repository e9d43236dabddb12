"""What a process's requests share: the settings, one token credential and the clients over it.

:func:`shared.runtime.build_container` builds it once per process (and event loop); the pipeline is a runner over
it. The container owns what it holds: :meth:`Container.close` closes the clients, then the credential they share.
The connection store is made on first use, so a request that never touches Table Storage never needs a storage
setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

    from .graph import GraphClient
    from .references import SecretResolver
    from .settings import Settings
    from .store import ConnectionStore
    from .work import WorkQueue

__all__ = ["Container", "table_store"]


@dataclass(eq=False)
class Container:
    settings: Settings
    credential: AsyncTokenCredential  # shared by every client below; closed last, by close()
    graph: GraphClient
    resolver: SecretResolver
    _store: ConnectionStore | None = field(default=None, repr=False)
    _work_queue: WorkQueue | None = field(default=None, repr=False)

    @property
    def store(self) -> ConnectionStore:
        """The connections table over the container's credential, made on first use (a setting it cannot use raises
        each time, as a :class:`~shared.errors.ProvisioningError` naming it)."""
        if self._store is None:
            self._store = table_store(self.settings, self.credential)
        return self._store

    @property
    def work_queue(self) -> WorkQueue:
        """The connection-work queue (``CONNECTION_QUEUE_NAME``) over the container's credential, made on first use."""
        if self._work_queue is None:
            from .work import WorkQueue

            self._work_queue = WorkQueue(self.settings.connection_queue_name, self.credential)
        return self._work_queue

    async def close(self) -> None:
        queue, self._work_queue = self._work_queue, None
        if queue is not None:
            await queue.close()
        store, self._store = self._store, None
        if store is not None:
            await store.close()
        await self.resolver.close()
        await self.graph.close()
        await self.credential.close()


def table_store(settings: Settings, credential: AsyncTokenCredential | None) -> ConnectionStore:
    """A new connection store in the app's storage account (``CONNECTIONS_TABLE``); its caller closes it."""
    from .store import TableStore, table_client_from_environment

    return TableStore(table_client_from_environment(settings.connections_table, credential))
