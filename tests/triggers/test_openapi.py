"""The OpenAPI document is a valid OpenAPI 3.1 document, and what the app answers matches its schemas."""

import json

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource

from shared.openapi import openapi_document
from standins.base import Reply
from tests.conftest import request_body
from tests.triggers.test_http_trigger import call_sp


@pytest.fixture(scope="module")
def document():
    return openapi_document()


def validator(document, name: str) -> Draft202012Validator:
    registry = Registry().with_resource(
        "urn:openapi", Resource.from_contents(document | {"$schema": "https://json-schema.org/draft/2020-12/schema"})
    )
    schema = {"$ref": f"urn:openapi#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=registry)


def test_the_document_is_valid_openapi_3_1(document):
    validate(document)
    assert document["openapi"] == "3.1.0"


async def test_success_and_problem_replies_match_the_documented_schemas(app_env, document):
    ok = await call_sp(request_body(servicePrincipalId=None))
    assert ok.status_code == 200
    validator(document, "Outcome").validate(json.loads(ok.get_body()))
    operation = document["paths"]["/servicePrincipals/{id}/synchronization/acquireAccessToken"]["post"]
    problems = [
        await call_sp({"credentials": "nope"}),
        await call_sp(
            request_body(servicePrincipalId=None, credentials=[{"key": "SecretToken", "secretRef": "missing"}])
        ),
    ]
    app_env.graph.fail_next(*[Reply(503, {"error": {"code": "ServiceUnavailable", "message": "x"}})] * 4)
    problems.append(await call_sp(request_body(servicePrincipalId=None)))
    assert [p.status_code for p in problems] == [400, 422, 503]
    for reply in problems:
        assert str(reply.status_code) in operation["responses"]
        validator(document, "Problem").validate(json.loads(reply.get_body()))


def test_the_request_schemas_accept_the_contract_example_and_refuse_unknown_fields(document):
    whole = validator(document, "AcquireRequest")
    whole.validate(request_body())
    assert not whole.is_valid(request_body(extra=1))
    path = validator(document, "PathRequest")
    path.validate(request_body(servicePrincipalId=None))
    assert not path.is_valid(request_body())


async def test_lifecycle_requests_and_their_outcomes_match_the_documented_schemas(app_env, document):
    from standins.graph import new_job

    job = "scim.0b9e8b8a8f7e4f6c9d0a3d3c6f6f1a11.7e4d9f3a-1c2b-4a5d-8e6f-0a1b2c3d4e5f"
    app_env.graph.jobs["0b9e8b8a-8f7e-4f6c-9d0a-3d3c6f6f1a11"] = {job: new_job(job, "Paused")}
    body = request_body(
        servicePrincipalId=None, steps=["validateCredentials", "startJob", "restartJob"], resetScope="Watermark,Escrows"
    )
    validator(document, "PathRequest").validate(body)
    ok = await call_sp(body)
    assert ok.status_code == 200
    validator(document, "Outcome").validate(json.loads(ok.get_body()))
    refused = request_body(servicePrincipalId=None, steps=["restartJob"], resetScope="ForceDeletes")
    assert not validator(document, "PathRequest").is_valid(refused)
    assert (await call_sp(refused)).status_code == 400


# ---- facts once: the limits come from the request reader ----------------------------------------------------------


def test_the_document_file_types_no_limit_or_guid_the_code_holds():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "shared" / "openapi.json").read_text()
    assert "[0-9a-fA-F]{8}" not in text
    typed_in = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("maxLength", "maxItems", "minLength", "minItems") and not str(value).startswith("filled in"):
                    typed_in.append(f"{where}/{key}")
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(json.loads(text), "")
    assert typed_in == []


def test_every_limit_of_the_request_schemas_is_the_readers(document):
    from shared.request import schema_limits

    schemas = document["components"]["schemas"]
    credential = schemas["Credential"]["properties"]
    assert schemas["Credentials"]["maxItems"] == 32
    assert credential["secretRef"]["maxLength"] == 2048
    assert schemas["CorrelationId"]["maxLength"] == 128
    assert schemas["Steps"]["maxItems"] == 6
    assert schemas["OnDemand"]["properties"]["subjects"]["maxItems"] == 5
    assert schemas["JobId"]["maxLength"] == 256
    assert schemas["ApplicationPathRequest"]["properties"]["steps"]["maxItems"] == 1
    assert credential["value"]["maxLength"] == schema_limits()["credentials[].value"]["maxLength"] == 8192


def test_the_value_limit_is_stated_in_bytes_and_holds_for_multi_byte_characters(document):
    from shared.errors import InvalidRequest
    from shared.request import parse_request

    value = document["components"]["schemas"]["Credential"]["properties"]["value"]
    assert "8,192 bytes" in value["description"]
    euros = request_body(credentials=[{"key": "BaseAddress", "value": "€" * 3000}])  # 3,000 characters, 9,000 bytes
    assert validator(document, "AcquireRequest").is_valid(euros)  # within maxLength: JSON Schema counts characters
    with pytest.raises(InvalidRequest, match="'value' is longer than 8 KiB"):
        parse_request(json.dumps(euros))


@pytest.mark.parametrize(
    ("member", "too_many"),
    [
        ("credentials", lambda n: [{"key": "BaseAddress", "value": "x"}] * n),
        ("steps", lambda n: ["acquireAccessToken"] * n),
        ("correlationId", lambda n: "c" * n),
        ("jobId", lambda n: "j" * n),
    ],
)
def test_one_over_each_documented_limit_is_refused_by_the_document_and_the_reader(document, member, too_many):
    from shared.errors import InvalidRequest
    from shared.request import parse_request, schema_limits

    limits = schema_limits()[member]
    body = request_body(**{member: too_many(limits.get("maxItems", limits.get("maxLength", 0)) + 1)})
    assert not validator(document, "AcquireRequest").is_valid(body)
    with pytest.raises(InvalidRequest):
        parse_request(json.dumps(body))
