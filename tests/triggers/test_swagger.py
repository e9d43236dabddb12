"""The OpenAPI 2.0 surface for Logic Apps and Power Platform: what is served, the connector package in docs/, the
sample workflow, and that the 2.0 and 3.1 documents describe the same operations."""

import importlib.util
import json
import re
from pathlib import Path

import azure.functions as func
import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV2SpecValidator

import function_app
from shared.openapi import openapi_document
from shared.request import parse_request

LOGIC_APPS = Path(__file__).resolve().parents[2] / "docs" / "logic-apps"
CONNECTOR_ROUTES = {
    "/servicePrincipals/{id}/synchronization/acquireAccessToken",
    "/applications/{id}/synchronization/acquireAccessToken",
    "/acquireAccessToken",
    "/connections/{name}",
    "/connections",
    "/connections/{name}/run",
}


@pytest.fixture(scope="module")
def served() -> dict:
    handler = function_app.swagger.build().get_user_function()
    response = handler(func.HttpRequest("GET", "https://app.example/api/swagger.json", body=b""))
    assert response.status_code == 200
    assert len(response.get_body()) < 1_000_000
    return json.loads(response.get_body())


def test_the_served_document_is_valid_openapi_2_0_under_1_mb(served):
    validate(served, cls=OpenAPIV2SpecValidator)
    assert served["swagger"] == "2.0"
    assert set(served["paths"]) == CONNECTOR_ROUTES


def test_one_security_definition_the_function_key_header(served):
    assert served["securityDefinitions"] == {
        "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"}
    }
    assert served["security"] == [{"functionKey": []}]


def test_every_operation_and_parameter_has_an_operation_id_and_an_x_ms_summary(served):
    ids = []
    for route, item in served["paths"].items():
        for method, operation in item.items():
            ids.append(operation["operationId"])
            assert operation["x-ms-summary"], (route, method)
            assert operation["summary"]
            assert operation["description"]
            for parameter in operation["parameters"]:
                assert parameter["x-ms-summary"], (route, method, parameter["name"])
    assert len(ids) == len(set(ids))


def test_no_construct_that_2_0_lacks(served):
    text = json.dumps(served)
    for construct in ('"oneOf"', '"anyOf"', '"const"', '"type": ["', '"$ref": "#/components', '"nullable"'):
        assert construct not in text, construct


def walk_3(schema, document, seen=None):
    """The property names and their limits a 3.1 schema states, following $refs."""
    seen = seen or set()
    if isinstance(schema, dict) and "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return {}
        return walk_3(document["components"]["schemas"][name], document, seen | {name})
    return schema


def test_the_2_0_document_has_the_same_operations_parameters_and_schemas_as_3_1(served):
    source = openapi_document()
    for route in CONNECTOR_ROUTES:
        for method, operation in source["paths"][route].items():
            if method == "parameters":
                continue
            converted = served["paths"][route][method]
            assert converted["operationId"] == operation["operationId"]
            names = {
                p["name"] for p in [*source["paths"][route].get("parameters", []), *operation.get("parameters", [])]
            }
            if "requestBody" in operation:
                names.add("body")
            assert {p["name"] for p in converted["parameters"]} == names
            assert set(converted["responses"]) == set(operation["responses"])
    assert set(served["definitions"]) == set(source["components"]["schemas"])
    for name, schema in source["components"]["schemas"].items():
        two = served["definitions"][name]
        assert set(two.get("properties", {})) == set(schema.get("properties", {})), name
        assert two.get("required", []) == schema.get("required", []), name
        for field, spec in schema.get("properties", {}).items():
            for limit in ("maxLength", "minLength", "pattern", "maxItems", "minItems", "enum", "maximum", "minimum"):
                if limit in spec:
                    assert two["properties"][field][limit] == spec[limit], (name, field, limit)


def test_the_limits_the_code_enforces_are_in_the_schemas(served):
    from shared.references import REFERENCE_PATTERN
    from shared.request import MAX_CREDENTIALS, MAX_VALUE_BYTES

    credential = served["definitions"]["Credential"]["properties"]
    assert credential["secretRef"]["pattern"] == REFERENCE_PATTERN
    assert credential["secretRef"]["minLength"] == 1
    assert credential["value"]["maxLength"] == MAX_VALUE_BYTES
    assert served["definitions"]["Credentials"]["maxItems"] == MAX_CREDENTIALS
    assert served["definitions"]["CorrelationId"]["x-nullable"] is True
    assert "64 KiB" in served["paths"]["/acquireAccessToken"]["post"]["parameters"][-1]["description"]


@pytest.mark.parametrize(
    "reference",
    [
        "scim-token",
        "scim-token/0123456789abcdef0123456789abcdef",
        "https://contoso-kv.vault.azure.net/secrets/scim-token",
        "https://127.0.0.1:8443/secrets/scim-token/abc/",
        "@Microsoft.KeyVault(SecretUri=https://contoso-kv.vault.azure.net/secrets/scim-token)",
        "@Microsoft.KeyVault(SecretName=scim-token;VaultName=contoso-kv)",
        "@Microsoft.KeyVault(VaultName=contoso-kv; SecretName=scim-token; SecretVersion=abc)",
    ],
)
def test_the_reference_pattern_takes_every_form_the_app_takes(reference):
    from shared.references import REFERENCE_PATTERN

    assert re.match(REFERENCE_PATTERN, reference)


@pytest.mark.parametrize(
    "reference",
    [
        " scim-token",
        "scim token",
        "http://kv/secrets/x",
        "https://kv:99999/secrets/x",
        "@Microsoft.KeyVault(SecretName=x)",
    ],
)
def test_the_reference_pattern_refuses_what_the_app_refuses(reference):
    from shared.errors import InvalidRequest
    from shared.references import REFERENCE_PATTERN, parse_reference
    from shared.settings import Settings

    assert not re.match(REFERENCE_PATTERN, reference)
    with pytest.raises(InvalidRequest):
        parse_reference(reference, Settings.from_env({"KEY_VAULT_URI": "https://kv"}))


# ---- the connector package -----------------------------------------------------------------------------------------


def build_module():
    spec = importlib.util.spec_from_file_location("build_connector", LOGIC_APPS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_connector_definition_is_the_served_document_with_a_host(served):
    definition = json.loads((LOGIC_APPS / "apiDefinition.swagger.json").read_text())
    assert definition == build_module().api_definition()
    assert {k: v for k, v in definition.items() if k != "host"} == served
    assert definition["host"] == build_module().HOST_PLACEHOLDER
    validate(definition, cls=OpenAPIV2SpecValidator)


def test_the_connector_properties_ask_for_the_function_key_as_a_secure_parameter():
    properties = json.loads((LOGIC_APPS / "apiProperties.json").read_text())["properties"]
    [(name, parameter)] = properties["connectionParameters"].items()
    assert name == "api_key"  # what Power Platform pairs with the apiKey security definition
    assert parameter["type"] == "securestring"
    assert parameter["uiDefinition"]["constraints"]["clearText"] is False
    assert parameter["uiDefinition"]["constraints"]["required"] == "true"
    assert re.fullmatch(r"#[0-9A-Fa-f]{6}", properties["iconBrandColor"])


# ---- the sample workflows -----------------------------------------------------------------------------------------
# workflow.json calls the app with a function key (CALLER_AUTH=key), workflow-managed-identity.json with the Logic
# App's managed identity (CALLER_AUTH=entra); both are written by build.py from one source.

WORKFLOW_FILES = {"key": "workflow.json", "entra": "workflow-managed-identity.json"}


@pytest.fixture(scope="module", params=sorted(WORKFLOW_FILES))
def caller_auth(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def workflow(caller_auth) -> dict:
    return json.loads((LOGIC_APPS / WORKFLOW_FILES[caller_auth]).read_text())["definition"]


def test_the_workflows_are_what_build_py_writes():
    module = build_module()
    assert module.WORKFLOWS == WORKFLOW_FILES
    for caller_auth, name in WORKFLOW_FILES.items():
        assert (LOGIC_APPS / name).read_text() == module.render(module.workflow(caller_auth)), name


def expressions(value) -> list[str]:
    """Every string in a workflow fragment."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in expressions(v)]
    if isinstance(value, list):
        return [s for v in value for s in expressions(v)]
    return [value] if isinstance(value, str) else []


def test_the_call_takes_nothing_from_the_trigger(workflow):
    # Anyone who can call a Logic App's request trigger would otherwise choose the address a secret is sent to.
    inputs = workflow["actions"]["Authorize_provisioning"]["inputs"]
    for value in expressions(inputs):
        assert "trigger" not in value.lower(), value
    assert workflow["triggers"]["manual"]["inputs"]["schema"] == {"type": "object", "properties": {}}


def test_the_address_the_secret_and_the_target_are_the_workflows_own_parameters(workflow):
    inputs = workflow["actions"]["Authorize_provisioning"]["inputs"]
    credentials = inputs["body"]["credentials"]
    assert credentials == [
        {"key": "BaseAddress", "value": "@{parameters('scimBaseAddress')}"},
        {"key": "SecretToken", "secretRef": "@{parameters('tokenSecretName')}"},
    ]
    assert "/servicePrincipals/@{parameters('servicePrincipalId')}/synchronization/" in inputs["uri"]
    for name in ("functionAppHost", "servicePrincipalId", "scimBaseAddress", "tokenSecretName"):
        assert workflow["parameters"][name]["type"] == "String"
        assert "defaultValue" not in workflow["parameters"][name]  # set by whoever deploys the Logic App


def test_every_credential_value_and_secret_ref_is_a_parameter(workflow):
    for credential in workflow["actions"]["Authorize_provisioning"]["inputs"]["body"]["credentials"]:
        for field in ("value", "secretRef"):
            if field in credential:
                assert re.fullmatch(r"@\{parameters\('\w+'\)\}", credential[field]), credential


def test_the_key_workflow_keeps_the_key_secure():
    workflow = json.loads((LOGIC_APPS / "workflow.json").read_text())["definition"]
    assert workflow["parameters"]["functionKey"]["type"] == "SecureString"
    action = workflow["actions"]["Authorize_provisioning"]
    assert action["inputs"]["headers"]["x-functions-key"] == "@{parameters('functionKey')}"
    assert "authentication" not in action["inputs"]


def test_the_managed_identity_workflow_sends_a_token_for_the_apps_audience():
    workflow = json.loads((LOGIC_APPS / "workflow-managed-identity.json").read_text())["definition"]
    action = workflow["actions"]["Authorize_provisioning"]
    assert action["inputs"]["authentication"] == {
        "type": "ManagedServiceIdentity",
        "audience": "@{parameters('audience')}",
    }
    assert workflow["parameters"]["audience"]["type"] == "String"
    assert "AZURE_CALLER_AUDIENCE" in workflow["parameters"]["audience"]["metadata"]["description"]
    assert "functionKey" not in workflow["parameters"]
    assert "x-functions-key" not in action["inputs"]["headers"]


def test_the_workflow_hides_inputs_and_outputs_from_the_run_history(workflow):
    action = workflow["actions"]["Authorize_provisioning"]
    assert action["runtimeConfiguration"]["secureData"]["properties"] == ["inputs", "outputs"]


def test_the_workflow_retries_and_branches_on_the_outcome(workflow):
    action = workflow["actions"]["Authorize_provisioning"]
    assert action["inputs"]["retryPolicy"]["type"] in ("exponential", "fixed")
    assert action["inputs"]["retryPolicy"]["count"] >= 1
    check = workflow["actions"]["Check_outcome"]
    assert check["type"] == "If"
    assert set(check["runAfter"]["Authorize_provisioning"]) == {"Succeeded", "Failed"}
    assert "['outcome']" in json.dumps(check["expression"])
    assert check["else"]["actions"]["Not_authorized"]["type"] == "Terminate"


def test_the_workflow_calls_an_operation_the_served_document_has(workflow, served):
    uri = workflow["actions"]["Authorize_provisioning"]["inputs"]["uri"]
    path = re.sub(r"@\{[^}]*\}", "{id}", uri.split("/api", 1)[1])
    method = workflow["actions"]["Authorize_provisioning"]["inputs"]["method"].lower()
    assert method in served["paths"][path]


def test_the_workflows_body_is_a_request_the_app_takes(workflow):
    body = json.dumps(workflow["actions"]["Authorize_provisioning"]["inputs"]["body"])
    sample = {
        "@{parameters('scimBaseAddress')}": "https://scim.example.com/v2",
        "@{parameters('tokenSecretName')}": "scim-token",
        "@{workflow()?['run']?['name']}": "08584712345678901234567890CU00",
    }
    for expression, value in sample.items():
        body = body.replace(expression, value)
    assert "@{" not in body
    from shared.request import Target

    request = parse_request(body, target=Target(type="servicePrincipal", id="0b9e8b8a-8f7e-4f6c-9d0a-3d3c6f6f1a11"))
    assert request.steps == ["validateCredentials", "acquireAccessToken"]
