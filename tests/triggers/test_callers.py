"""Callers known by Entra app roles (docs/security.md, "Callers"): the principal App Service Authentication puts in
the request is trusted only when the platform says authentication is on, roles are claims of type ``roles`` only,
and each route needs the role its action needs."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from tests.conftest import SP_ID, request_body
from tests.integration.test_connections import JOB, connection_body, delete, get, listing, put, run
from tests.triggers.test_http_trigger import call_body, payload

OPERATOR = "Provisioning.Operator"
ADMIN = "Provisioning.Admin"
OID = "7c1e8d2a-5b4f-4e3d-9a8b-1c2d3e4f5a6b"


def headers(*roles: str, name: str = "deploy-pipeline") -> dict[str, str]:
    claims = [{"typ": "roles", "val": r} for r in roles]
    claims += [
        {"typ": "name", "val": name},
        {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": OID},
    ]
    encoded = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": claims}).encode()).decode()
    return {"X-MS-CLIENT-PRINCIPAL": encoded}


@pytest.fixture
def entra(app_env, azurite, monkeypatch):
    from standins.graph import new_job

    monkeypatch.setenv("CALLER_AUTH", "entra")
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("CONNECTIONS_TABLE", "callers" + uuid.uuid4().hex[:12])
    app_env.graph.jobs[SP_ID] = {JOB: new_job(JOB)}
    return app_env


async def test_a_forged_principal_is_not_trusted_when_the_platform_has_no_authentication(entra, monkeypatch):
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED")
    forged = headers(ADMIN)
    for response in (
        await call_body(request_body(), headers=forged),
        await put("forged", connection_body(), headers=forged),
        await get("forged", headers=forged),
        await listing({}),
    ):
        assert response.status_code == 503, response.get_body()
        assert payload(response)["error"]["code"] == "authNotEnabled"
    assert entra.graph.seen == []


async def test_a_role_under_a_claim_type_the_header_names_itself_does_not_count(entra):
    claims = [{"typ": "custom-role", "val": ADMIN}, {"typ": "name", "val": "mallory"}]
    forged = base64.b64encode(json.dumps({"auth_typ": "aad", "role_typ": "custom-role", "claims": claims}).encode())
    response = await call_body(request_body(), headers={"X-MS-CLIENT-PRINCIPAL": forged.decode()})
    assert response.status_code == 403
    assert payload(response)["error"]["code"] == "callerNotAuthorized"


async def test_an_operator_may_authorize_run_read_and_list_but_not_change_connections(entra):
    admin = headers(ADMIN)
    assert (await put("c1", connection_body(), headers=admin)).status_code == 201
    operator = headers(OPERATOR)
    assert (await call_body(request_body(), headers=operator)).status_code == 200
    assert (await get("c1", headers=operator)).status_code == 200
    import function_app
    from tests.integration.test_connections import handler, http

    listed = await handler(function_app.list_connections)(http("GET", "connections", headers=operator))
    assert listed.status_code == 200
    ran = await handler(function_app.run_connection)(
        http("POST", "connections/c1/run", headers=operator, route_params={"name": "c1"})
    )
    assert ran.status_code == 200, ran.get_body()
    etag = payload(await get("c1", headers=operator))["etag"]
    for response in (
        await put("c2", connection_body(), headers=operator),
        await put("c1", connection_body(), headers={**operator, "If-Match": etag}),
        await delete("c1", headers={**operator, "If-Match": etag}),
    ):
        assert response.status_code == 403
        assert payload(response)["detail"] == "this route needs the app role Provisioning.Admin"


async def test_nobody_without_a_role_gets_anything(entra):
    for response in (
        await call_body(request_body(), headers=headers()),
        await get("c1", headers=headers("Some.Other.Role")),
        await run("c1"),
    ):
        assert response.status_code == 403
        assert payload(response)["error"]["code"] == "callerNotAuthorized"
    assert entra.graph.seen == []


async def test_an_admin_may_do_everything_and_is_recorded_as_the_owner(entra):
    admin = headers(ADMIN, name="platform-team")
    created = payload(await put("owned", connection_body(), headers=admin))
    assert created["createdBy"] == created["updatedBy"] == {"name": "platform-team", "objectId": OID}
    assert created["createdAt"] == created["updatedAt"]
    other = headers(ADMIN, name="someone-else")
    replaced = payload(await put("owned", connection_body(), headers={**other, "If-Match": created["etag"]}))
    assert replaced["createdBy"]["name"] == "platform-team"
    assert replaced["updatedBy"]["name"] == "someone-else"
    assert (await delete("owned", headers={**other, "If-Match": replaced["etag"]})).status_code == 204
