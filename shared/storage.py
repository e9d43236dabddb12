"""The app's own storage account, found as the Functions host finds it, for its table and its queues.

``AzureWebJobsStorage`` as a connection string (``UseDevelopmentStorage=true`` is Azurite), or identity-based:
``AzureWebJobsStorage__<service>ServiceUri``, else ``AzureWebJobsStorage__accountName`` (the public cloud's
``https://<account>.<service>.core.windows.net``), reached with the app's credential.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["AZURITE_ACCOUNT_KEY", "AZURITE_CONNECTION_STRING", "StorageAccount", "storage_account"]

Service = Literal["table", "queue"]

# Azurite's well-known development account (public, documented by Microsoft); `UseDevelopmentStorage=true` means it.
AZURITE_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_CONNECTION_STRING = (
    f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_ACCOUNT_KEY};"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


@dataclass(frozen=True, slots=True)
class StorageAccount:
    """Where one service of the account is: a connection string, or an endpoint for the app's credential."""

    setting: str  # the app setting it was read from, for messages naming it
    connection_string: str | None = None
    endpoint: str | None = None


def storage_account(service: Service, environ: Mapping[str, str] | None = None) -> StorageAccount | None:
    """The account for ``service`` from the app settings, or ``None`` when no setting names one."""
    env = os.environ if environ is None else environ
    connection_string = (env.get("AzureWebJobsStorage") or "").strip()
    if connection_string:
        if connection_string.lower() == "usedevelopmentstorage=true":
            connection_string = AZURITE_CONNECTION_STRING
        return StorageAccount("AzureWebJobsStorage", connection_string=connection_string)
    uri_setting = f"AzureWebJobsStorage__{service}ServiceUri"
    endpoint = (env.get(uri_setting) or "").strip()
    if endpoint:
        return StorageAccount(uri_setting, endpoint=endpoint)
    account = (env.get("AzureWebJobsStorage__accountName") or "").strip()
    if account:
        return StorageAccount(
            "AzureWebJobsStorage__accountName", endpoint=f"https://{account}.{service}.core.windows.net"
        )
    return None
