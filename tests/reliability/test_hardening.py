"""Hardening against what an attacker or a misbehaving service sends (docs/security.md): Graph's error code and
request ids only when they are what they claim to be, every encoded form and split copy of a secret redacted, a
missing secret remembered, one whole deadline per Graph attempt."""

import base64
import json
import time
from urllib.parse import quote

import pytest

from shared.outcome import safe_message
from shared.pipeline import Invocation
from standins.base import Reply
from tests.conftest import CANARY_TOKEN, request_body
from tests.triggers.test_http_trigger import call_body, payload

RAW = CANARY_TOKEN.encode()
FORMS = {
    "base64": base64.b64encode(RAW).decode(),
    "base64url": base64.urlsafe_b64encode(RAW).decode().rstrip("="),
    "url-encoded": quote(CANARY_TOKEN + "/+&", safe=""),
    "upper": CANARY_TOKEN.upper(),
    "lower": CANARY_TOKEN.lower(),
    "hex": RAW.hex(),
    "HEX": RAW.hex().upper(),
    "split": CANARY_TOKEN[:14] + " ... " + CANARY_TOKEN[14:],
    "url-encoded-lower": quote(CANARY_TOKEN + "/+&", safe="").replace("%2F", "%2f").replace("%2B", "%2b"),
    "html": (CANARY_TOKEN + "<&>").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
    "json": json.dumps(CANARY_TOKEN + '"\\')[1:-1],
    "leading-run": "prefix" + CANARY_TOKEN[:13],
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_form_and_run_of_a_resolved_value_is_redacted(form):
    values = [CANARY_TOKEN, CANARY_TOKEN + "/+&", CANARY_TOKEN + "<&>", CANARY_TOKEN + '"\\']
    text = safe_message(f"Graph says: {FORMS[form]} was wrong", values)
    for size in (12, 13):
        for start in range(len(CANARY_TOKEN) - size + 1):
            assert CANARY_TOKEN[start : start + size].lower() not in text.lower(), text
    assert "Graph says:" in text
    assert "***" in text


def test_short_runs_and_unrelated_text_are_kept():
    assert safe_message("code CredentialValidationUnavailable at 12:00", [CANARY_TOKEN]) == (
        "code CredentialValidationUnavailable at 12:00"
    )


async def graph_answers(app_env, reply) -> dict:
    app_env.graph.fail_next(reply)
    return payload(await call_body(request_body()))


@pytest.mark.parametrize(
    "code", [CANARY_TOKEN + " oops", "x" * 65, "<script>", "code with spaces", 12345, {"nested": CANARY_TOKEN}]
)
async def test_a_graph_error_code_that_is_not_an_identifier_is_graph_error(app_env, outcomes, code):
    outcome = await graph_answers(app_env, Reply(400, {"error": {"code": code, "message": "no"}}))
    assert outcome["error"]["code"] == outcome["graph"]["errorCode"] == "graphError"
    assert outcomes()[-1]["error"]["code"] == "graphError"


async def test_an_identifier_error_code_is_kept(app_env):
    outcome = await graph_answers(app_env, Reply(400, {"error": {"code": "Some.Code_1-2", "message": "no"}}))
    assert outcome["error"]["code"] == "Some.Code_1-2"


async def test_request_ids_that_are_not_guids_are_dropped(app_env, outcomes):
    headers = {"request-id": CANARY_TOKEN, "client-request-id": "not-a-guid"}
    outcome = await graph_answers(app_env, Reply(400, {"error": {"code": "BadRequest", "message": "no"}}, headers))
    assert outcome["graph"]["requestId"] is None
    assert outcome["graph"]["clientRequestId"] != "not-a-guid"  # the app's own id stays
    assert CANARY_TOKEN not in json.dumps(outcomes())


async def test_graphs_message_with_the_secret_base64_encoded_is_redacted_everywhere(app_env, outcomes, all_logs):
    message = f"token {FORMS['base64']} and {FORMS['url-encoded']} and {CANARY_TOKEN.upper()}"
    outcome = await graph_answers(app_env, Reply(400, {"error": {"code": "BadRequest", "message": message}}))
    logged = "\n".join(r.getMessage() for r in all_logs.records)
    for text in (json.dumps(outcome), json.dumps(outcomes()), logged):
        for form in ("base64", "url-encoded", "upper"):
            assert FORMS[form] not in text


async def test_a_missing_secret_is_remembered_so_repeated_requests_cost_one_read(pipeline, app_env):
    keys = ("SecretToken", "Password", "ClientSecret")
    body = request_body(credentials=[{"key": key, "secretRef": f"missing-{n}"} for n, key in enumerate(keys)])
    for _ in range(5):
        outcome = await pipeline.run(json.dumps(body), Invocation(trigger="http"))
        assert outcome.error_code == "SecretNotFound"
    reads = [s.path for s in app_env.keyvault.seen if s.status == 404]
    # Each missing secret is read once in five requests: every read of the first request ran to its answer.
    assert sorted(reads) == ["/secrets/missing-0/", "/secrets/missing-1/", "/secrets/missing-2/"]


async def test_a_missing_secret_is_read_again_after_thirty_seconds(pipeline, app_env):
    from shared.references import NOT_FOUND_SECONDS

    body = json.dumps(request_body(credentials=[{"key": "SecretToken", "secretRef": "late-secret"}]))
    assert (await pipeline.run(body, Invocation(trigger="http"))).error_code == "SecretNotFound"
    app_env.keyvault.set_secret("late-secret", "now-it-exists-0000")
    assert (await pipeline.run(body, Invocation(trigger="http"))).error_code == "SecretNotFound"  # remembered
    remembered = pipeline.resolver._missing
    assert NOT_FOUND_SECONDS == 30
    for reference, (expires, error) in list(remembered.items()):  # as if thirty seconds had passed
        remembered[reference] = (expires - NOT_FOUND_SECONDS - 1, error)
    assert (await pipeline.run(body, Invocation(trigger="http"))).error_code != "SecretNotFound"


async def test_one_graph_attempt_has_one_whole_deadline(app_env, monkeypatch):
    monkeypatch.setenv("GRAPH_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("GRAPH_MAX_ATTEMPTS", "1")
    body = json.dumps({"error": {"code": "BadRequest", "message": "slow" * 10}}).encode()
    app_env.graph.fail_next(Reply(400, body, trickle=0.2))  # every read within 1 s, the whole answer in ~14 s
    started = time.monotonic()
    outcome = payload(await call_body(request_body()))
    elapsed = time.monotonic() - started
    assert (outcome["outcome"], outcome["retryable"]) == ("failed", True)
    assert "did not answer in time" in outcome["error"]["message"]
    assert elapsed < 8, elapsed  # the whole answer would take about 14 s


@pytest.mark.parametrize(
    "encode",
    [
        lambda v: quote(v, safe="").lower(),  # .NET's lower-case %xx
        lambda v: v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"),
        lambda v: json.dumps(v)[1:-1],
    ],
    ids=["url-lower", "html", "json"],
)
def test_an_escaped_form_with_no_run_of_the_raw_value_is_redacted_too(encode):
    value = '<&>"\\/' * 3  # every character escaped: no run of 12 raw characters survives in the escaped form
    text = safe_message(f"echoed: {encode(value)} end", [value])
    assert encode(value) not in text
    assert text == "echoed: *** end"
