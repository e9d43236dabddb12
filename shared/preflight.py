"""Preflight: can this deployment do its job? Each check is ok, or says the exact fix (docs/fleet.md, "Preflight").

``GET /api/health/detail?deep=true`` (function key) and ``python -m shared verify`` run the same checks:

- the identity gets a Microsoft Graph token, and the token's ``roles`` claim holds an application permission that
  allows the synchronization API (read from the token itself: no extra permission is needed to look);
- it can read each allowed vault (listing secret properties, never a value);
- the connections table exists and can be read;
- the request queue and the connection-work queue exist.

The most common support case is a 401 or 403 on restart from an identity that lacks the application role: this finds
it before the first run.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = ["GRAPH_APP_ID", "SYNCHRONIZATION_ROLES", "Check", "preflight", "token_roles"]

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"  # Microsoft Graph's application (client) id
# Application permissions that allow acquireAccessToken, the jobs and the secrets (least privileged first).
SYNCHRONIZATION_ROLES = ("Application.ReadWrite.OwnedBy", "Synchronization.ReadWrite.All", "Application.ReadWrite.All")
SYNCHRONIZATION_READ_WRITE_ALL = "9b50c33d-700f-43b1-b2eb-87e89b703581"  # that app role's id in Graph


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _claims(token: str) -> dict[str, Any]:
    """A JWT access token's claims, read without verifying it (Graph verifies; this only looks)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def token_roles(token: str) -> list[str]:
    """The ``roles`` claim of a JWT access token."""
    roles = _claims(token).get("roles")
    return [str(r) for r in roles] if isinstance(roles, list) else []


def _grant(principal: str) -> str:
    return (
        "grant the identity Graph's Synchronization.ReadWrite.All application permission (an admin runs it): "
        "az rest --method POST --uri "
        f"https://graph.microsoft.com/v1.0/servicePrincipals/{principal}/appRoleAssignments "
        f'--body \'{{"principalId": "{principal}", "resourceId": "<the object id of the service principal with '
        f'appId {GRAPH_APP_ID}>", "appRoleId": "{SYNCHRONIZATION_READ_WRITE_ALL}"}}\' '
        "(or Application.ReadWrite.OwnedBy, with the identity an owner of each target); tokens are cached, so a new "
        "grant can take hours to show"
    )


async def _graph(pipeline: Pipeline) -> Check:
    from .errors import ProvisioningError

    try:
        token = await pipeline.graph.token()
    except ProvisioningError as error:
        return Check(
            "graphToken",
            False,
            f"no Microsoft Graph token: {error.message}",
            "check the function app's managed identity (and AZURE_CLIENT_ID for a user-assigned one)",
        )
    roles = token_roles(token)
    held = [role for role in SYNCHRONIZATION_ROLES if role in roles]
    if held:
        return Check("graphPermission", True, f"the token holds {', '.join(held)}")
    principal = str(_claims(token).get("oid") or "<the identity's object id>")
    shown = ", ".join(roles) or "none"
    return Check(
        "graphPermission",
        False,
        f"the token's roles ({shown}) allow no synchronization call: every Graph step would be refused (401/403)",
        _grant(principal),
    )


async def _vault(pipeline: Pipeline, host: str) -> Check:
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
    from azure.keyvault.secrets.aio import SecretClient

    fix = (
        "give the identity Key Vault Secrets User on the vault: az role assignment create --role "
        '"Key Vault Secrets User" --assignee-object-id <the identity\'s object id> --assignee-principal-type '
        f"ServicePrincipal --scope $(az keyvault show --name {host.split('.')[0]} --query id -o tsv)"
    )
    assert pipeline.credential is not None
    async with SecretClient(f"https://{host}", pipeline.credential) as client:
        try:
            async for _ in client.list_properties_of_secrets(max_page_size=1):
                break
        except (ClientAuthenticationError, HttpResponseError) as exc:
            status = getattr(exc, "status_code", None)
            if status in (401, 403) or isinstance(exc, ClientAuthenticationError):
                return Check(f"keyVault:{host}", False, f"Key Vault refused the identity ({status})", fix)
            return Check(f"keyVault:{host}", False, f"Key Vault answered {status}", None)
        except ServiceRequestError as exc:
            return Check(f"keyVault:{host}", False, f"the vault cannot be reached ({type(exc).__name__})", None)
    return Check(f"keyVault:{host}", True, "the identity can read the vault's secrets")


async def _table(pipeline: Pipeline) -> Check:
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    from .errors import ProvisioningError
    from .store import table_client_from_environment

    name = pipeline.settings.connections_table
    fix = (
        f"the infra creates table {name!r} and gives the identity Storage Table Data Contributor on the account "
        "(azd provision); or set CONNECTIONS_TABLE to the table that exists"
    )
    try:
        client = table_client_from_environment(name, pipeline.credential)
    except (ProvisioningError, ValueError) as exc:
        return Check("connectionsTable", False, str(getattr(exc, "message", exc)), fix)
    async with client:
        try:
            async for _ in client.query_entities("PartitionKey eq 'connection'", results_per_page=1):
                break
        except ResourceNotFoundError:
            return Check("connectionsTable", False, f"table {name!r} does not exist", fix)
        except HttpResponseError as exc:
            return Check("connectionsTable", False, f"Table Storage answered {exc.status_code}", fix)
    return Check("connectionsTable", True, f"table {name!r} can be read")


async def _queue(pipeline: Pipeline, name: str, what: str) -> Check:
    from azure.core.exceptions import AzureError

    from .errors import ProvisioningError
    from .work import WorkQueue

    queue = WorkQueue(name, pipeline.credential)
    fix = (
        f"the infra creates queue {name!r} (and {name}-poison) and gives the identity Storage Queue Data "
        "Contributor on the account (azd provision)"
    )
    try:
        exists = await queue.exists()
    except (ProvisioningError, AzureError) as exc:
        return Check(f"queue:{name}", False, f"{what}: {getattr(exc, 'message', type(exc).__name__)}", fix)
    finally:
        await queue.close()
    if not exists:
        return Check(f"queue:{name}", False, f"{what} {name!r} does not exist", fix)
    return Check(f"queue:{name}", True, f"{what} {name!r} exists")


async def preflight(pipeline: Pipeline) -> list[Check]:
    """Every check, each independent of the others' results."""
    import asyncio

    settings = pipeline.settings
    checks = [
        _graph(pipeline),
        *(_vault(pipeline, host) for host in sorted(settings.key_vault_allowed_hosts)),
        _table(pipeline),
        _queue(pipeline, settings.request_queue_name, "the request queue"),
        _queue(pipeline, settings.connection_queue_name, "the connection-work queue"),
    ]
    return list(await asyncio.gather(*checks))
