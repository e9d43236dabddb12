"""A service's text is redacted of the request's secrets before it is shortened, never after.

Every place a service's words can reach a message: Graph's error message (any status), Key Vault's error
message, the managed-identity endpoint's error. The secret is put right where a cut would fall, so that a
message shortened first and redacted second would keep its first characters.
"""

import json

import pytest

from standins.base import Reply
from tests.conftest import CANARY_TOKEN, SP_ID, request_body
from tests.triggers.test_http_trigger import call_sp

PARTS = [CANARY_TOKEN[:n] for n in (4, 6, 8, 10)]


def graph_error(status: int, filler: int) -> Reply:
    message = "x" * filler + CANARY_TOKEN + " and again " + CANARY_TOKEN
    return Reply(status, {"error": {"code": "BadRequest", "message": message}})


def assert_nothing_of_the_secret(*texts: str) -> None:
    for text in texts:
        for part in PARTS:
            assert part not in text, f"{part!r} of the secret in {text[:200]!r}..."


@pytest.mark.parametrize("filler", [0, 100, 490, 495, 590, 597, 1000, 5000])
@pytest.mark.parametrize("status", [400, 403, 404])
async def test_graphs_message_echoing_the_secret_leaves_no_part_of_it(app_env, outcomes, all_logs, status, filler):
    app_env.graph.fail_next(graph_error(status, filler))
    response = await call_sp(request_body(servicePrincipalId=None))
    reply = json.loads(response.get_body())
    assert reply["outcome"] in ("rejected", "failed")
    assert "***" in reply["detail"] or reply["detail"].endswith("…")
    [emitted] = outcomes()
    logged = "\n".join(r.getMessage() for r in all_logs.records)
    assert_nothing_of_the_secret(response.get_body().decode(), json.dumps(emitted), logged)


async def test_graphs_message_on_every_retry_leaves_no_part_of_the_secret(app_env, outcomes, all_logs):
    app_env.graph.fail_next(*[graph_error(503, 490)] * 4)
    response = await call_sp(request_body(servicePrincipalId=None))
    assert response.status_code == 503
    logged = "\n".join(r.getMessage() for r in all_logs.records)
    assert_nothing_of_the_secret(response.get_body().decode(), json.dumps(outcomes()), logged)


@pytest.mark.parametrize("status", [400, 403, 500])
async def test_key_vaults_message_never_reaches_the_caller(app_env, outcomes, all_logs, status):
    message = "y" * 490 + CANARY_TOKEN
    app_env.keyvault.fail_next(*[Reply(status, {"error": {"code": "Whatever", "message": message}})] * 3)
    response = await call_sp(request_body(servicePrincipalId=None))
    assert response.status_code >= 400
    logged = "\n".join(r.getMessage() for r in all_logs.records)
    assert_nothing_of_the_secret(response.get_body().decode(), json.dumps(outcomes()), logged)


async def test_the_identity_endpoints_message_never_reaches_the_caller(app_env, outcomes):
    # azure-identity logs the endpoint's answer itself (its own WARNING); the app's messages carry none of it.
    echoed = "q7v9w2-endpoint-text-0123456789"
    body = {"error": "invalid_request", "error_description": "z" * 490 + echoed}
    app_env.identity.fail_next(*[Reply(400, body)] * 8)
    response = await call_sp(request_body(servicePrincipalId=None))
    assert response.status_code == 502
    for text in (response.get_body().decode(), json.dumps(outcomes())):
        assert echoed[:6] not in text


def test_redaction_comes_before_shortening():
    from shared.pipeline import MAX_MESSAGE_CHARS, safe_message

    secret = "s3cr3t-value-0123456789"
    for cut in range(MAX_MESSAGE_CHARS - 30, MAX_MESSAGE_CHARS + 5):
        text = safe_message("m" * cut + secret, [secret])
        assert len(text) <= MAX_MESSAGE_CHARS
        assert "s3cr" not in text
    assert safe_message("short " + secret, [secret]) == "short ***"
    assert SP_ID  # the target id is not a secret: it may appear
