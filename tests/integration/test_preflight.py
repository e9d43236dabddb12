"""Preflight (python -m shared verify; GET /api/health/detail?deep=true): each check ok, or its exact fix."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.test_connections import conn_env
from tests.test_cli import cli

__all__ = ["conn_env"]


@pytest.fixture
def ready(conn_env, monkeypatch):
    """A deployment as the infra leaves it: the table and both queues exist."""
    from azure.data.tables import TableServiceClient

    from standins.queue_host import QueueHost

    monkeypatch.setenv("KEY_VAULT_ALLOWED_HOSTS", conn_env.keyvault.host)
    import os

    QueueHost(os.environ["AzureWebJobsStorage"], os.environ["REQUEST_QUEUE_NAME"], None).create()  # type: ignore[arg-type]
    TableServiceClient.from_connection_string(os.environ["AzureWebJobsStorage"]).create_table_if_not_exists(
        os.environ["CONNECTIONS_TABLE"]
    )
    return conn_env


def verify() -> tuple[int, dict[str, dict]]:
    result = cli("verify")
    report = json.loads(result.stdout)
    return result.returncode, {c["name"]: c for c in report["checks"]}


def test_a_ready_deployment_passes_every_check(ready):
    code, checks = verify()
    assert code == 0, checks
    assert all(c["ok"] for c in checks.values())
    assert set(checks) == {
        "graphPermission",
        f"keyVault:{ready.keyvault.host}",
        "connectionsTable",
        "queue:acquire-access-token",
        f"queue:{__import__('os').environ['CONNECTION_QUEUE_NAME']}",
    }


def test_a_token_without_a_synchronization_role_says_how_to_grant_it(ready):
    ready.identity.graph_roles = ["User.Read.All"]
    code, checks = verify()
    assert code == 4
    check = checks["graphPermission"]
    assert not check["ok"]
    assert "User.Read.All" in check["detail"]
    assert "appRoleAssignments" in check["fix"]
    assert "9b50c33d-700f-43b1-b2eb-87e89b703581" in check["fix"]  # Synchronization.ReadWrite.All


def test_a_vault_the_identity_cannot_read_says_which_role_to_assign(ready):
    ready.keyvault.list_forbidden = True
    try:
        code, checks = verify()
    finally:
        ready.keyvault.list_forbidden = False
    assert code == 4
    check = checks[f"keyVault:{ready.keyvault.host}"]
    assert not check["ok"]
    assert "Key Vault Secrets User" in check["fix"]


def test_a_missing_queue_or_table_is_named_with_its_fix(ready, monkeypatch):
    monkeypatch.setenv("CONNECTION_QUEUE_NAME", "missing-" + uuid.uuid4().hex[:8])
    monkeypatch.setenv("CONNECTIONS_TABLE", "missing" + uuid.uuid4().hex[:8])
    code, checks = verify()
    assert code == 4
    queue = next(c for name, c in checks.items() if name.startswith("queue:missing-"))
    assert not queue["ok"]
    assert "does not exist" in queue["detail"]
    assert "Storage Queue Data Contributor" in queue["fix"]
    assert not checks["connectionsTable"]["ok"]
    assert "Storage Table Data Contributor" in checks["connectionsTable"]["fix"]
    assert checks["graphPermission"]["ok"]


async def test_deep_health_runs_the_same_checks_as_the_apps_own_identity(ready):
    import azure.functions as func

    import function_app
    from tests.triggers.test_http_trigger import payload

    def detail(params):
        request = func.HttpRequest("GET", "https://app.azurewebsites.net/api/health/detail", params=params, body=b"")
        return function_app.health_detail.build().get_user_function()(request)

    shallow = await detail({})
    assert "checks" not in payload(shallow)  # no network call without deep=true
    deep = await detail({"deep": "true"})
    assert deep.status_code == 200, deep.get_body()
    assert {c["name"] for c in payload(deep)["checks"]} >= {"graphPermission", "connectionsTable"}
    ready.identity.graph_roles = ["Directory.Read.All"]
    from shared import runtime

    runtime.reset()  # a new worker: the app's token is fetched again
    failing = await detail({"deep": "true"})
    assert failing.status_code == 503
    [graph] = [c for c in payload(failing)["checks"] if c["name"] == "graphPermission"]
    assert "appRoleAssignments" in graph["fix"]
