"""Local stand-ins for the services the app talks to, shared by the tests and ``python -m shared demo``.

Each runs a real HTTP(S) server on a free loopback port in a background thread and checks what it receives the
way the real service would: the managed-identity endpoint (App Service protocol, as azure-identity speaks it when
``IDENTITY_ENDPOINT``/``IDENTITY_HEADER`` are set), Key Vault (challenge flow, api-version, token audience) and
Microsoft Graph (token audience and role, path, body schema).
"""

from .base import StandIn
from .graph import GraphStandIn
from .identity import IdentityStandIn
from .ingestion import IngestionStandIn
from .keyvault import KeyVaultStandIn
from .stack import Stack
from .tls import TestCA

__all__ = ["GraphStandIn", "IdentityStandIn", "IngestionStandIn", "KeyVaultStandIn", "Stack", "StandIn", "TestCA"]
