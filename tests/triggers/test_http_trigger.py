"""The HTTP routes through the decorated functions (``build().get_user_function()``) with real HttpRequests."""

import base64
import json

import azure.functions as func
import pytest

import function_app
from shared import runtime
from standins.base import Reply
from tests.conftest import APP_ID, CANARIES, CANARY_TOKEN, SCIM_URL, SP_ID, UNKNOWN_ID, request_body


def user_function(builder):
    return builder.build().get_user_function()


def post(route: str, body: object, *, route_params=None, headers=None) -> func.HttpRequest:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return func.HttpRequest(
        "POST",
        f"https://app.azurewebsites.net/api/{route}",
        headers=headers or {},
        route_params=route_params or {},
        body=data,
    )


async def call_sp(body, sp_id=SP_ID, headers=None):
    request = post(
        f"servicePrincipals/{sp_id}/synchronization/acquireAccessToken",
        body,
        route_params={"id": sp_id},
        headers=headers,
    )
    return await user_function(function_app.acquire_for_service_principal)(request)


async def call_app(body, app_id=APP_ID, headers=None):
    request = post(
        f"applications/{app_id}/synchronization/acquireAccessToken", body, route_params={"id": app_id}, headers=headers
    )
    return await user_function(function_app.acquire_for_application)(request)


async def call_body(body, headers=None):
    return await user_function(function_app.acquire_access_token)(post("acquireAccessToken", body, headers=headers))


def path_body(**overrides):
    return request_body(**{"servicePrincipalId": None, **overrides})


def payload(response: func.HttpResponse) -> dict:
    return json.loads(response.get_body())


def test_the_app_declares_the_contracts_routes_with_their_auth_levels(app_functions):
    routes = {}
    for function in app_functions:
        trigger = function.get_trigger()
        if trigger.type == "httpTrigger":
            routes[trigger.route] = (
                tuple(m.value if hasattr(m, "value") else m for m in trigger.methods),
                trigger.auth_level.value,
            )
    assert routes == {
        "servicePrincipals/{id}/synchronization/acquireAccessToken": (("POST",), "function"),
        "applications/{id}/synchronization/acquireAccessToken": (("POST",), "function"),
        "acquireAccessToken": (("POST",), "function"),
        "health": (("GET",), "anonymous"),
        "health/detail": (("GET",), "function"),
        "openapi.json": (("GET",), "anonymous"),
        "swagger.json": (("GET",), "anonymous"),
        "connections/{name}": (("GET", "PUT", "DELETE"), "function"),
        "connections": (("GET",), "function"),
        "connections/{name}/run": (("POST",), "function"),
    }


async def test_200_for_a_service_principal_on_its_path(app_env):
    response = await call_sp(path_body())
    assert response.status_code == 200, response.get_body()
    assert response.mimetype == "application/json"
    outcome = payload(response)
    assert outcome["outcome"] == "succeeded"
    assert outcome["trigger"] == "http"
    assert outcome["target"] == {"type": "servicePrincipal", "id": SP_ID}
    assert outcome["graph"]["status"] == 204


async def test_200_for_an_application_on_its_path(app_env):
    response = await call_app(path_body())
    assert response.status_code == 200, response.get_body()
    assert payload(response)["target"] == {"type": "application", "id": APP_ID}


async def test_200_for_the_whole_request_in_the_body_and_for_a_dry_run(app_env):
    response = await call_body(request_body(dryRun=True))
    assert (response.status_code, payload(response)["outcome"]) == (200, "validated")
    response = await call_body(request_body())
    assert (response.status_code, payload(response)["outcome"]) == (200, "succeeded")


def problem_of(response: func.HttpResponse, status: int) -> dict:
    assert response.status_code == status, response.get_body()
    assert response.mimetype == "application/problem+json"
    problem = payload(response)
    assert problem["status"] == status
    assert problem["type"] == "about:blank"
    assert problem["detail"] == problem["error"]["message"]
    assert "Traceback" not in response.get_body().decode()
    return problem


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{", "not valid JSON"),
        (b"", "the request is empty"),
        (path_body(credentials=[{"key": "Nope", "value": "x"}]), "not a synchronizationSecret"),
        (path_body(servicePrincipalId=SP_ID), "servicePrincipalId: unknown field here"),
        (path_body(unexpected=True), "unexpected: unknown field"),
    ],
)
async def test_400_for_a_malformed_request(app_env, body, expected):
    problem = problem_of(await call_sp(body), 400)
    assert problem["outcome"] == "rejected"
    assert problem["error"]["code"] == "invalidRequest"
    assert expected in problem["detail"]
    assert app_env.graph.seen == []


async def test_400_for_a_path_id_that_is_not_a_guid(app_env):
    problem = problem_of(await call_sp(path_body(), sp_id="not-a-guid"), 400)
    assert "must be a GUID" in problem["detail"]


async def test_403_for_a_policy_refusal(app_env):
    problem = problem_of(await call_sp(path_body(credentials=[{"key": "SecretToken", "value": "abcd1234"}])), 403)
    assert problem["error"]["code"] == "inlineSecretNotAllowed"


async def test_404_when_graph_does_not_know_the_target(app_env):
    problem = problem_of(await call_sp(path_body(), sp_id=UNKNOWN_ID), 404)
    assert problem["graph"]["errorCode"] == "Request_ResourceNotFound"


async def test_422_for_an_unresolvable_reference(app_env):
    problem = problem_of(await call_sp(path_body(credentials=[{"key": "SecretToken", "secretRef": "gone"}])), 422)
    assert problem["error"]["code"] == "SecretNotFound"


async def test_422_when_graph_rejects_the_credentials(app_env):
    app_env.graph.service_principals[SP_ID] = {"SecretToken": "other"}
    problem = problem_of(await call_sp(path_body()), 422)
    assert problem["graph"]["status"] == 400


async def test_502_when_the_apps_identity_is_not_allowed(app_env):
    app_env.identity.graph_roles = []
    problem = problem_of(await call_sp(path_body()), 502)
    assert (problem["outcome"], problem["retryable"]) == ("failed", True)


async def test_503_with_retry_after_when_graph_stays_throttled(app_env):
    app_env.graph.fail_next(
        *[Reply(429, {"error": {"code": "TooManyRequests", "message": "x"}}, {"Retry-After": "0"})] * 4
    )
    response = await call_sp(path_body())
    problem = problem_of(response, 503)
    assert response.headers["Retry-After"] == "1"
    assert problem["graph"]["attempts"] == 4


async def test_503_naming_the_setting_when_an_app_setting_cannot_be_parsed(app_env, monkeypatch):
    monkeypatch.setenv("GRAPH_MAX_ATTEMPTS", "many")
    response = await call_sp(path_body())
    problem = problem_of(response, 503)
    assert problem["error"]["code"] == "configurationError"
    assert "GRAPH_MAX_ATTEMPTS" in problem["detail"]
    assert response.headers["Retry-After"] == "60"


def principal(*roles: str) -> str:
    claims = [{"typ": "roles", "val": r} for r in roles] + [{"typ": "name", "val": "caller"}]
    return base64.b64encode(json.dumps({"auth_typ": "aad", "claims": claims}).encode()).decode()


async def test_with_entra_every_acquire_route_needs_an_operator(app_env, monkeypatch):
    monkeypatch.setenv("CALLER_AUTH", "entra")
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    problem = problem_of(await call_sp(path_body()), 403)
    assert problem["error"]["code"] == "callerNotAuthorized"
    problem = problem_of(await call_body(request_body(), headers={"X-MS-CLIENT-PRINCIPAL": principal("Other")}), 403)
    assert problem["detail"] == "this route needs the app role Provisioning.Operator"
    problem_of(await call_body(request_body(), headers={"X-MS-CLIENT-PRINCIPAL": "%%%"}), 403)
    assert app_env.graph.seen == []
    for role in ("Provisioning.Operator", "Provisioning.Admin"):
        response = await call_sp(path_body(), headers={"X-MS-CLIENT-PRINCIPAL": principal(role)})
        assert response.status_code == 200, response.get_body()
        response = await call_app(path_body(), headers={"X-MS-CLIENT-PRINCIPAL": principal(role)})
        assert response.status_code == 200, response.get_body()


def get(route: str) -> func.HttpRequest:
    return func.HttpRequest("GET", f"https://app.azurewebsites.net/api/{route}", body=b"")


async def test_health_reports_the_effective_settings_without_secrets(app_env, monkeypatch):
    monkeypatch.setenv(
        "APPLICATIONINSIGHTS_CONNECTION_STRING", "InstrumentationKey=00000000-0000-0000-0000-000000000000"
    )
    response = await user_function(function_app.health_detail)(get("health/detail"))
    assert response.status_code == 200
    body = payload(response)
    assert body["status"] == "healthy"
    assert body["settings"]["keyVaultAllowedHosts"] == [app_env.keyvault.host]
    assert body["settings"]["applicationInsights"] is True
    text = response.get_body().decode()
    assert "InstrumentationKey" not in text
    assert app_env.identity.header_secret not in text


async def test_health_names_a_setting_that_cannot_be_parsed(app_env, monkeypatch):
    monkeypatch.setenv("SECRET_CACHE_SECONDS", "forever")
    response = await user_function(function_app.health_detail)(get("health/detail"))
    assert response.status_code == 503
    assert payload(response)["problems"] == [
        {"setting": "SECRET_CACHE_SECONDS", "problem": "must be a number, not 'forever'"}
    ]
    anonymous = user_function(function_app.health_check)(get("health"))
    assert (anonymous.status_code, payload(anonymous)) == (
        503,
        {"status": "unhealthy", "problems": [{"setting": "SECRET_CACHE_SECONDS"}]},
    )


def test_anonymous_health_discloses_no_configuration(app_env, monkeypatch):
    monkeypatch.setenv("ALLOW_INLINE_SECRETS", "true")
    response = user_function(function_app.health_check)(get("health"))
    assert (response.status_code, payload(response)) == (200, {"status": "healthy"})
    text = response.get_body().decode()
    for disclosed in (app_env.keyvault.host, "inline", "Provisioning", "graph"):
        assert disclosed.lower() not in text.lower()


async def test_health_says_entra_callers_cannot_be_trusted_without_app_service_authentication(app_env, monkeypatch):
    monkeypatch.setenv("CALLER_AUTH", "entra")
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    anonymous = user_function(function_app.health_check)(get("health"))
    assert (anonymous.status_code, payload(anonymous)["problems"]) == (503, [{"setting": "CALLER_AUTH"}])
    detail = payload(await user_function(function_app.health_detail)(get("health/detail")))
    assert "WEBSITE_AUTH_ENABLED" in detail["problems"][0]["problem"]
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    assert user_function(function_app.health_check)(get("health")).status_code == 200


@pytest.mark.parametrize("value", [None, "", "  "])
async def test_health_names_a_missing_setting_the_host_needs_for_a_binding_expression(app_env, monkeypatch, value):
    if value is None:
        monkeypatch.delenv("REQUEST_QUEUE_NAME")
    else:
        monkeypatch.setenv("REQUEST_QUEUE_NAME", value)
    response = await user_function(function_app.health_detail)(get("health/detail"))
    assert response.status_code == 503
    [problem] = payload(response)["problems"]
    assert problem["setting"] == "REQUEST_QUEUE_NAME"
    assert "%REQUEST_QUEUE_NAME%" in problem["problem"]
    assert "no default" in problem["problem"]


def test_health_lists_every_problem_at_once(app_env, monkeypatch):
    monkeypatch.delenv("REQUEST_QUEUE_NAME")
    monkeypatch.setenv("GRAPH_MAX_ATTEMPTS", "many")
    response = user_function(function_app.health_check)(get("health"))
    assert [p["setting"] for p in payload(response)["problems"]] == ["GRAPH_MAX_ATTEMPTS", "REQUEST_QUEUE_NAME"]


def test_every_binding_expression_of_the_app_is_a_setting_health_checks(app_functions):
    import re

    from shared.health import HOST_EXPRESSION_SETTINGS

    expressions = set()
    for function in app_functions:
        for binding in function.get_bindings():
            expressions |= set(re.findall(r"%([A-Za-z0-9_]+)%", json.dumps(binding.get_dict_repr(), default=str)))
    assert expressions == set(HOST_EXPRESSION_SETTINGS)


def test_the_openapi_document_lists_exactly_the_apps_routes(app_functions):
    response = user_function(function_app.openapi)(get("openapi.json"))
    assert response.status_code == 200
    document = payload(response)
    routes = {"/" + f.get_trigger().route for f in app_functions if f.get_trigger().type == "httpTrigger"}
    assert set(document["paths"]) == routes
    assert "CredentialValidationUnavailable" not in json.dumps(document)
    assert "SecretToken" in document["components"]["schemas"]["Credential"]["properties"]["key"]["enum"]


async def test_no_canary_value_reaches_a_response_or_a_log(app_env, all_logs, monkeypatch):
    app_env.graph.fail_next(Reply(400, {"error": {"code": "BadRequest", "message": f"token {CANARY_TOKEN} rejected"}}))
    bodies = [
        await call_sp(path_body()),
        await call_sp(path_body(credentials=[{"key": "Password", "value": CANARIES[1]}])),
        await call_sp(path_body(credentials=[{"key": "Password", "secretRef": "scim-password"}], dryRun=True)),
        await call_body({"credentials": [{"key": "Password", "value": CANARIES[1], "secretRef": "x"}]}),
        await call_sp(path_body(credentials=[{"key": "SecretToken", "secretRef": CANARY_TOKEN + "!"}])),
    ]
    monkeypatch.setenv("ALLOW_INLINE_SECRETS", "true")
    runtime.reset()  # a worker started with the new setting
    bodies.append(
        await call_sp(
            path_body(
                credentials=[{"key": "SecretToken", "value": CANARIES[0]}, {"key": "BaseAddress", "value": SCIM_URL}]
            )
        )
    )
    assert [r.status_code for r in bodies] == [422, 403, 200, 400, 400, 200]
    seen = "".join(r.get_body().decode() for r in bodies)
    seen += "".join(f"{r.getMessage()}{r.exc_text or ''}" for r in all_logs.records)
    for canary in CANARIES:
        assert canary not in seen


# ---- a storage setting the Table Storage client cannot use -------------------------------------------------------


@pytest.mark.parametrize(
    ("variables", "setting"),
    [
        ({"AzureWebJobsStorage": "garbage"}, "AzureWebJobsStorage"),
        ({"AzureWebJobsStorage": "AccountName=x"}, "AzureWebJobsStorage"),
        ({"AzureWebJobsStorage__tableServiceUri": "::::"}, "AzureWebJobsStorage__tableServiceUri"),
    ],
    ids=["garbage", "no-key", "bad-uri"],
)
@pytest.mark.parametrize("route", ["list", "get", "put", "delete", "run"])
async def test_a_storage_setting_the_table_client_cannot_use_is_a_503_naming_it(
    app_env, monkeypatch, variables, setting, route
):
    from tests.integration.test_connections import connection_body, delete, get, listing, put, run

    for name in ("AzureWebJobsStorage", "AzureWebJobsStorage__tableServiceUri", "AzureWebJobsStorage__accountName"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    calls = {
        "list": lambda: listing({}),
        "get": lambda: get("contoso-scim"),
        "put": lambda: put("contoso-scim", connection_body()),
        "delete": lambda: delete("contoso-scim", headers={"If-Match": '"x"'}),
        "run": lambda: run("contoso-scim"),
    }
    response = await calls[route]()
    assert response.status_code == 503
    problem = payload(response)
    assert problem["retryable"] is True
    assert setting in problem["detail"]
    assert "configurationError" in json.dumps(problem)
