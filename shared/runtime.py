"""Process-wide clients, created once and reused (STYLE point 5).

:func:`build_container` builds what a process's requests share (settings, one credential, the Graph client, the
Key Vault resolver, the connection store on first use); the pipeline is a runner over it. :func:`get_pipeline`
gives the triggers one per process and event loop, built from the app settings on first use: importing this
module costs nothing on a cold start, and later calls read no environment variable. The credential is the managed
identity in Azure (``AZURE_CLIENT_ID`` picks a user-assigned one) and ``DefaultAzureCredential`` on an operator's
terminal.

Tests that change the environment call :func:`reset` (as a new worker would start), the way stamina's
``set_testing`` is an explicit switch: the product never watches environment variables.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal

from .container import Container, table_store
from .pipeline import Pipeline
from .settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

    from .store import ConnectionStore

__all__ = [
    "CredentialKind",
    "aclose",
    "build_container",
    "build_pipeline",
    "build_store",
    "get_pipeline",
    "get_store",
    "reset",
]

CredentialKind = Literal["managed_identity", "default"]

_current: tuple[asyncio.AbstractEventLoop, Pipeline] | None = None
# Containers left by reset(), closed on their event loop when it next runs here (or by aclose()).
_stale: list[tuple[asyncio.AbstractEventLoop, Container]] = []
_closing: set[asyncio.Task[None]] = set()


def build_container(settings: Settings, *, credential: CredentialKind = "managed_identity") -> Container:
    """The clients of one process, over one token credential that the container owns and closes."""
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

    from . import telemetry
    from .credentials import APP_IDENTITY, DEFAULT_SIGN_IN, GuardedCredential
    from .graph import GraphClient
    from .references import SecretResolver
    from .transport import PooledClient

    telemetry.configure(settings.applicationinsights_connection_string)

    inner: AsyncTokenCredential
    if credential == "managed_identity":
        # Three quick retries: a function should not hang for the SDK's default ~15 s on a dead endpoint;
        # a queued request is retried by the host anyway.
        inner = ManagedIdentityCredential(client_id=settings.azure_client_id, retry_total=3, retry_backoff_factor=0.5)
        token_credential = GuardedCredential(inner, identity=APP_IDENTITY)
    else:
        inner = DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id)
        token_credential = GuardedCredential(inner, identity=DEFAULT_SIGN_IN)
    http = PooledClient(
        timeout=settings.graph_timeout_seconds,
        headers={"User-Agent": "entra-provisioning-authorizer/1.0"},
    )
    return Container(
        settings=settings,
        credential=token_credential,
        graph=GraphClient(http, token_credential, settings),
        resolver=SecretResolver(token_credential, cache_seconds=settings.secret_cache_seconds),
    )


def build_pipeline(settings: Settings, *, credential: CredentialKind = "managed_identity") -> Pipeline:
    """A runner over a new container; ``await pipeline.close()`` closes the container."""
    return Pipeline(build_container(settings, credential=credential))


def build_store(pipeline: Pipeline) -> ConnectionStore:
    """A new connection store over the pipeline's container credential, for its caller to close (the command line).
    The triggers use :func:`get_store`, which the container owns."""
    return table_store(pipeline.settings, pipeline.clients.credential)


def get_pipeline() -> Pipeline:
    """The pipeline for this process and its running event loop (settings read from the environment once)."""
    global _current
    loop = asyncio.get_running_loop()
    if _current is None or _current[0] is not loop:
        # Another loop's clients cannot be closed from here (nor used): a new loop gets its own.
        _current = (loop, build_pipeline(Settings.from_env()))
    _close_stale(loop)
    return _current[1]


def get_store() -> ConnectionStore:
    """The connection store of this process's container (made on first use)."""
    return get_pipeline().clients.store


def reset() -> None:
    """Forget this process's container: the next :func:`get_pipeline` builds one from the environment as it is then.

    For tests that change the environment (a new identity header, another storage account), as a fresh worker would
    see it. The old clients are closed on their event loop: now if it is running, else when it next runs here.
    """
    global _current
    current, _current = _current, None
    if current is None:
        return
    _stale.append((current[0], current[1].clients))
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    _close_stale(loop)


def _close_stale(loop: asyncio.AbstractEventLoop) -> None:
    for entry in [entry for entry in _stale if entry[0] is loop]:
        _stale.remove(entry)
        task = loop.create_task(entry[1].close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)


async def aclose() -> None:
    """Close the process's container (its HTTP connections, store and credential), if it runs on this event loop."""
    global _current
    loop = asyncio.get_running_loop()
    current, _current = _current, None
    stale = [entry[1] for entry in _stale if entry[0] is loop]
    _stale[:] = [entry for entry in _stale if entry[0] is not loop]
    if current is not None and current[0] is loop:
        stale.append(current[1].clients)
    for container in stale:
        await container.close()
    pending = [task for task in _closing if task.get_loop() is loop]
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
