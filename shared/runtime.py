"""Process-wide clients, created once and reused (STYLE point 5).

:func:`get_pipeline` gives the triggers one :class:`~shared.pipeline.Pipeline` per process and event loop,
built from the app settings on first use: importing this module costs nothing on a cold start. The
credential is the managed identity in Azure (``AZURE_CLIENT_ID`` picks a user-assigned one) and
``DefaultAzureCredential`` on an operator's terminal.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Literal

from .pipeline import Pipeline
from .settings import SETTING_NAMES, Settings
from .store import ConnectionStore

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

__all__ = ["CredentialKind", "aclose", "build_pipeline", "build_store", "get_pipeline", "get_store"]

CredentialKind = Literal["managed_identity", "default"]

# Variables the clients read besides the app settings: a change of any of them makes a new pipeline.
_CLIENT_VARIABLES = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")

_current: tuple[tuple[object, ...], Pipeline] | None = None
_store: tuple[tuple[object, ...], ConnectionStore] | None = None
# What the connections table is reached through: a change of any of them makes a new store.
_STORE_VARIABLES = (
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__accountName",
)
_closing: set[asyncio.Task[None]] = set()


def build_pipeline(settings: Settings, *, credential: CredentialKind = "managed_identity") -> Pipeline:
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

    from . import telemetry
    from .graph import GraphClient
    from .references import SecretResolver
    from .transport import PooledClient

    telemetry.configure(settings.applicationinsights_connection_string)

    from .credentials import GuardedCredential

    inner: AsyncTokenCredential
    if credential == "managed_identity":
        # Three quick retries: a function should not hang for the SDK's default ~15 s on a dead endpoint;
        # a queued request is retried by the host anyway.
        inner = ManagedIdentityCredential(client_id=settings.azure_client_id, retry_total=3, retry_backoff_factor=0.5)
    else:
        inner = DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id)
    token_credential = GuardedCredential(inner)
    http = PooledClient(
        timeout=settings.graph_timeout_seconds,
        headers={"User-Agent": "entra-provisioning-authorizer/1.0"},
    )
    return Pipeline(
        settings,
        resolver=SecretResolver(token_credential, cache_seconds=settings.secret_cache_seconds),
        graph=GraphClient(http, token_credential, settings),
        credential=token_credential,  # shared by both clients: the pipeline owns and closes it
    )


def get_pipeline() -> Pipeline:
    """The pipeline for this process and its running event loop (settings read from the environment)."""
    global _current
    key = (
        id(asyncio.get_running_loop()),
        *(os.environ.get(name) for name in SETTING_NAMES),
        *(os.environ.get(name) for name in _CLIENT_VARIABLES),
    )
    if _current is None or _current[0] != key:
        previous = _current
        _current = (key, build_pipeline(Settings.from_env()))
        if previous is not None and previous[0][0] == key[0]:
            # Settings changed under a running worker: close the old clients on this loop.
            task = asyncio.get_running_loop().create_task(previous[1].close())
            _closing.add(task)
            task.add_done_callback(_closing.discard)
    return _current[1]


def build_store(pipeline: Pipeline) -> ConnectionStore:
    from .store import TableStore, table_client_from_environment

    return TableStore(table_client_from_environment(pipeline.settings.connections_table, pipeline.credential))


def get_store() -> ConnectionStore:
    """The connection store for this process and event loop, over the pipeline's credential."""
    global _store
    pipeline = get_pipeline()
    key = (id(pipeline), *(os.environ.get(name) for name in _STORE_VARIABLES))
    if _store is None or _store[0] != key:
        previous = _store
        _store = (key, build_store(pipeline))
        if previous is not None:
            task = asyncio.get_running_loop().create_task(previous[1].close())
            _closing.add(task)
            task.add_done_callback(_closing.discard)
    return _store[1]


async def aclose() -> None:
    """Close the process's pipeline (its HTTP connections and credential), if it runs on this event loop."""
    global _current, _store
    current, _current = _current, None
    store, _store = _store, None
    if store is not None:
        await store[1].close()
    if current is not None and current[0][0] == id(asyncio.get_running_loop()):
        await current[1].close()
