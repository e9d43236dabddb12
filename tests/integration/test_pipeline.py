"""The pipeline with the real azure-identity, azure-keyvault-secrets and httpx clients against the stand-ins."""

import asyncio
import gc
import json

from shared.pipeline import Invocation
from shared.runtime import build_pipeline
from shared.settings import Settings
from standins.base import Reply
from tests.conftest import APP_ID, CANARY_PASSWORD, CANARY_TOKEN, SCIM_URL, SP_ID, UNKNOWN_ID, request_body


def body(**overrides: object) -> bytes:
    return json.dumps(request_body(**overrides)).encode()


async def run(pipeline, **overrides):
    return await pipeline.run(body(**overrides), Invocation(trigger="http"))


async def test_a_service_principal_is_authorized_with_its_key_vault_secret(pipeline, app_env):
    outcome = await run(pipeline)
    assert outcome.to_dict()["outcome"] == "succeeded", outcome.to_dict()
    assert outcome.graph.status == 204
    assert outcome.graph.attempts == 1
    assert outcome.graph.request_id
    assert outcome.correlation_id == "ticket-4711"
    [call] = [s for s in app_env.graph.seen if s.status == 204]
    assert call.path == f"/v1.0/servicePrincipals/{SP_ID}/synchronization/acquireAccessToken"
    assert call.json() == {
        "credentials": [{"key": "BaseAddress", "value": SCIM_URL}, {"key": "SecretToken", "value": CANARY_TOKEN}]
    }
    assert call.headers["client-request-id"] == outcome.graph.client_request_id


async def test_an_application_is_authorized_through_the_applications_path(pipeline, app_env):
    outcome = await run(pipeline, servicePrincipalId=None, applicationId=APP_ID)
    assert outcome.outcome == "succeeded", outcome.to_dict()
    assert app_env.graph.authorized == [("applications", APP_ID, ["BaseAddress", "SecretToken"])]


async def test_the_beta_api_version_is_honoured(app_env, monkeypatch):
    monkeypatch.setenv("GRAPH_API_VERSION", "beta")
    pipeline = build_pipeline(Settings.from_env())
    try:
        assert (await run(pipeline)).outcome == "succeeded"
        assert app_env.graph.seen[-1].path.startswith("/beta/servicePrincipals/")
    finally:
        await pipeline.close()


async def test_a_dry_run_resolves_every_reference_but_does_not_call_graph(pipeline, app_env):
    outcome = await run(pipeline, dryRun=True)
    assert outcome.outcome == "validated"
    assert outcome.graph is None
    assert app_env.graph.seen == []
    assert [s.path for s in app_env.keyvault.seen if s.status == 200] == ["/secrets/scim-token/"]


async def test_the_graph_token_is_fetched_once_and_reused(pipeline, app_env):
    for _ in range(3):
        assert (await run(pipeline)).outcome == "succeeded"
    assert app_env.identity.issued.count("https://graph.microsoft.com") == 1


async def test_resolved_secrets_are_cached_for_secret_cache_seconds(pipeline, app_env):
    await run(pipeline)
    await run(pipeline)
    # The first read may be preceded by the 401 challenge (the SDK caches challenges per process).
    assert [s.status for s in app_env.keyvault.seen].count(200) == 1


async def test_a_zero_cache_setting_reads_the_vault_every_time(app_env, monkeypatch):
    monkeypatch.setenv("SECRET_CACHE_SECONDS", "0")
    pipeline = build_pipeline(Settings.from_env())
    try:
        await run(pipeline)
        await run(pipeline)
        assert [s.status for s in app_env.keyvault.seen].count(200) == 2
    finally:
        await pipeline.close()


async def test_references_of_one_request_are_resolved_concurrently(pipeline, app_env, monkeypatch):
    names = ["a", "b", "c", "d"]
    for name in names:
        app_env.keyvault.set_secret(name, f"value-{name}")
    keys = ["SecretToken", "Password", "ClientSecret", "AppKey"]
    credentials = [{"key": k, "secretRef": n} for k, n in zip(keys, names, strict=True)]
    await pipeline.resolver.resolve_all([])  # nothing to do, no call
    app_env.keyvault.reset()
    # each GET takes 0.3 s; four of them one after the other would take 1.2 s
    original = app_env.keyvault.handle

    def slow(seen):
        reply = original(seen)
        reply.delay = 0.3 if reply.status == 200 else 0
        return reply

    monkeypatch.setattr(app_env.keyvault, "handle", slow)
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await run(pipeline, credentials=credentials, dryRun=True)
    elapsed = loop.time() - started
    assert outcome.outcome == "validated", outcome.to_dict()
    assert sorted(s.path for s in app_env.keyvault.seen if s.status == 200) == [f"/secrets/{n}/" for n in names]
    assert elapsed < 1.0, f"4 references took {elapsed:.2f}s: not resolved concurrently"


async def test_identical_references_in_flight_share_one_vault_call(pipeline, app_env):
    requests = [run(pipeline, dryRun=True) for _ in range(5)]
    outcomes = await asyncio.gather(*requests)
    assert {o.outcome for o in outcomes} == {"validated"}
    assert [s.status for s in app_env.keyvault.seen].count(200) == 1


async def test_a_pinned_secret_version_is_read(pipeline, app_env):
    version = app_env.keyvault.set_secret("rotating", "old-value")
    app_env.keyvault.set_secret("rotating", "new-value")
    app_env.graph.service_principals[SP_ID] = {"SecretToken": "old-value"}
    outcome = await run(pipeline, credentials=[{"key": "SecretToken", "secretRef": f"rotating/{version}"}])
    assert outcome.outcome == "succeeded", outcome.to_dict()


async def test_secret_uri_and_app_service_reference_forms_resolve_against_the_vault(pipeline, app_env):
    host = app_env.keyvault.host
    credentials = [
        {"key": "SecretToken", "secretRef": f"https://{host}/secrets/scim-token"},
        {"key": "Password", "secretRef": f"@Microsoft.KeyVault(SecretUri=https://{host}/secrets/scim-password/)"},
    ]
    outcome = await run(pipeline, credentials=credentials, dryRun=True)
    assert outcome.outcome == "validated", outcome.to_dict()


# --- refusals: rejected, not retryable -------------------------------------------------------------------


async def test_a_vault_host_outside_the_allowlist_is_refused_without_any_network_call(pipeline, app_env):
    outcome = await run(
        pipeline, credentials=[{"key": "SecretToken", "secretRef": "https://kv.example.invalid/secrets/x"}]
    )
    assert (outcome.outcome, outcome.http_status, outcome.error_code) == ("rejected", 403, "vaultHostNotAllowed")
    assert app_env.keyvault.seen == []
    assert app_env.graph.seen == []
    assert app_env.identity.seen == []


async def test_a_sensitive_key_sent_inline_is_refused(pipeline, app_env):
    outcome = await run(pipeline, credentials=[{"key": "SecretToken", "value": CANARY_TOKEN}])
    assert (outcome.outcome, outcome.http_status, outcome.error_code) == ("rejected", 403, "inlineSecretNotAllowed")
    assert "'SecretToken' is sensitive" in outcome.error_message
    assert app_env.graph.seen == []


async def test_inline_secrets_pass_when_the_setting_allows_them(app_env, monkeypatch):
    monkeypatch.setenv("ALLOW_INLINE_SECRETS", "true")
    pipeline = build_pipeline(Settings.from_env())
    try:
        outcome = await run(
            pipeline,
            credentials=[{"key": "BaseAddress", "value": SCIM_URL}, {"key": "SecretToken", "value": CANARY_TOKEN}],
        )
        assert outcome.outcome == "succeeded", outcome.to_dict()
    finally:
        await pipeline.close()


async def test_a_target_outside_allowed_targets_is_refused(app_env, monkeypatch):
    monkeypatch.setenv("ALLOWED_TARGETS", APP_ID)
    pipeline = build_pipeline(Settings.from_env())
    try:
        outcome = await run(pipeline)
        assert (outcome.outcome, outcome.http_status, outcome.error_code) == ("rejected", 403, "targetNotAllowed")
        assert (await run(pipeline, servicePrincipalId=None, applicationId=APP_ID)).outcome == "succeeded"
    finally:
        await pipeline.close()


async def test_a_missing_secret_is_unresolvable(pipeline, app_env):
    outcome = await run(pipeline, credentials=[{"key": "SecretToken", "secretRef": "no-such-secret"}])
    assert (outcome.outcome, outcome.http_status, outcome.error_code) == ("rejected", 422, "SecretNotFound")
    assert "'no-such-secret'" in outcome.error_message
    assert app_env.graph.seen == []


async def test_a_disabled_secret_is_unresolvable(pipeline, app_env):
    app_env.keyvault.set_secret("old-token", "x", enabled=False)
    outcome = await run(pipeline, credentials=[{"key": "SecretToken", "secretRef": "old-token"}])
    assert (outcome.outcome, outcome.http_status, outcome.error_code) == ("rejected", 422, "SecretDisabled")


async def test_graph_rejecting_the_credentials_keeps_graphs_error_code(pipeline, app_env):
    app_env.graph.service_principals[SP_ID] = {"SecretToken": "something-else"}
    outcome = await run(pipeline)
    assert (outcome.outcome, outcome.http_status, outcome.retryable) == ("rejected", 422, False)
    assert outcome.error_code == outcome.graph.error_code == "CredentialValidationUnavailable"
    assert outcome.graph.status == 400
    assert outcome.graph.attempts == 1


async def test_an_unknown_target_is_not_found(pipeline, app_env):
    # The secret's owner bound it to the id (a deleted service principal, say): Graph decides, and says 404.
    app_env.keyvault.set_secret(
        "scim-token", CANARY_TOKEN, tags={"provisioning-targets": UNKNOWN_ID, "provisioning-endpoints": SCIM_URL}
    )
    outcome = await run(pipeline, servicePrincipalId=UNKNOWN_ID)
    assert (outcome.outcome, outcome.http_status, outcome.error_code) == ("rejected", 404, "Request_ResourceNotFound")


# --- the app's own identity: failed, retryable, 502 ----------------------------------------------------------


async def test_graph_refusing_the_apps_identity_is_a_502(pipeline, app_env):
    app_env.identity.graph_roles = ["User.Read.All"]
    outcome = await run(pipeline)
    assert (outcome.outcome, outcome.http_status, outcome.error_code) == ("failed", 502, "Authorization_RequestDenied")
    assert outcome.retryable is True


async def test_key_vault_refusing_the_apps_identity_is_a_502(pipeline, app_env):
    app_env.keyvault.forbidden.add("scim-token")
    outcome = await run(pipeline)
    assert (outcome.outcome, outcome.http_status, outcome.error_code) == ("failed", 502, "ForbiddenByRbac")


async def test_no_token_from_the_identity_endpoint_is_a_502(app_env, monkeypatch):
    monkeypatch.setenv("IDENTITY_HEADER", "wrong-header")
    pipeline = build_pipeline(Settings.from_env())
    try:
        outcome = await run(pipeline)
        assert (outcome.outcome, outcome.http_status, outcome.error_code) == ("failed", 502, "tokenUnavailable")
        outcome = await run(pipeline, credentials=[{"key": "BaseAddress", "value": SCIM_URL}])
        assert (outcome.outcome, outcome.http_status, outcome.error_code) == ("failed", 502, "tokenUnavailable")
    finally:
        await pipeline.close()


async def test_a_user_assigned_identity_is_asked_for_by_client_id(app_env, monkeypatch):
    client_id = "11111111-2222-4333-8444-555555555555"
    monkeypatch.setattr(app_env.identity, "client_id", client_id)
    monkeypatch.setattr(app_env.identity, "user_assigned", True)
    monkeypatch.setenv("AZURE_CLIENT_ID", client_id)
    pipeline = build_pipeline(Settings.from_env())
    try:
        assert (await run(pipeline)).outcome == "succeeded"
        assert {s.query.get("client_id") for s in app_env.identity.seen} == {client_id}
    finally:
        await pipeline.close()


# --- transient failures: retried, then failed with Retry-After -----------------------------------------------


async def test_graph_throttling_is_retried_honouring_retry_after(pipeline, app_env):
    app_env.graph.fail_next(
        Reply(429, {"error": {"code": "TooManyRequests", "message": "slow down"}}, {"Retry-After": "1"})
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await run(pipeline)
    assert outcome.outcome == "succeeded", outcome.to_dict()
    assert outcome.graph.attempts == 2
    assert loop.time() - started >= 1.0


async def test_a_graph_server_error_is_retried(pipeline, app_env):
    app_env.graph.fail_next(
        Reply(500, {"error": {"code": "InternalServerError", "message": "oops"}}),
        Reply(503, b"<html>Service Unavailable</html>", {"Content-Type": "text/html"}),
    )
    outcome = await run(pipeline)
    assert outcome.outcome == "succeeded", outcome.to_dict()
    assert outcome.graph.attempts == 3


async def test_graph_staying_throttled_fails_retryable_with_retry_after(pipeline, app_env):
    throttled = Reply(429, {"error": {"code": "TooManyRequests", "message": "slow down"}}, {"Retry-After": "0"})
    app_env.graph.fail_next(*[throttled] * 4)
    outcome = await run(pipeline)
    assert (outcome.outcome, outcome.http_status, outcome.retryable) == ("failed", 503, True)
    assert outcome.graph.attempts == 4
    assert outcome.error_code == "TooManyRequests"


async def test_a_retry_after_longer_than_an_attempt_is_handed_to_the_caller(pipeline, app_env):
    app_env.graph.fail_next(
        Reply(429, {"error": {"code": "TooManyRequests", "message": "later"}}, {"Retry-After": "120"})
    )
    outcome = await run(pipeline)
    assert (outcome.outcome, outcome.http_status, outcome.retry_after) == ("failed", 503, 120)
    assert outcome.graph.attempts == 1


async def test_a_graph_timeout_is_retried_then_fails(app_env, monkeypatch):
    monkeypatch.setenv("GRAPH_TIMEOUT_SECONDS", "0.3")
    monkeypatch.setenv("GRAPH_MAX_ATTEMPTS", "2")
    pipeline = build_pipeline(Settings.from_env())
    try:
        app_env.graph.fail_next(Reply(204, delay=1.0), Reply(204, delay=1.0))
        outcome = await run(pipeline)
        assert (outcome.outcome, outcome.http_status, outcome.error_code) == ("failed", 503, "graphUnreachable")
        assert outcome.graph.attempts == 2
        assert "did not answer in time" in outcome.error_message
    finally:
        await pipeline.close()


async def test_a_reset_connection_is_retried(pipeline, app_env):
    app_env.graph.fail_next(Reply(0, reset=True))
    outcome = await run(pipeline)
    assert outcome.outcome == "succeeded", outcome.to_dict()
    assert outcome.graph.attempts == 2


async def test_key_vault_staying_throttled_fails_retryable(pipeline, app_env):
    throttled = Reply(
        429, {"error": {"code": "Throttled", "message": "Request was not processed"}}, {"Retry-After": "0"}
    )
    app_env.keyvault.fail_next(*[throttled] * 5)
    outcome = await run(pipeline)
    assert (outcome.outcome, outcome.http_status, outcome.retryable) == ("failed", 503, True)
    assert outcome.error_code == "Throttled"
    assert app_env.graph.seen == []


async def test_every_outcome_is_emitted_once(app_env, outcomes):
    from shared import runtime

    pipeline = runtime.build_pipeline(Settings.from_env())
    try:
        await run(pipeline)
        await run(pipeline, credentials=[{"key": "SecretToken", "value": "x"}])
        await pipeline.run(b"not json", Invocation(trigger="queue", dequeue_count=2))
        emitted = outcomes()
        assert [o["outcome"] for o in emitted] == ["succeeded", "rejected", "rejected"]
        assert emitted[2]["dequeueCount"] == 2
    finally:
        await pipeline.close()


async def test_secret_values_never_reach_outcomes_or_logs(pipeline, app_env, all_logs):
    # Graph echoing a value back in its error message is blanked out of the outcome.
    app_env.graph.fail_next(Reply(400, {"error": {"code": "BadRequest", "message": f"bad token {CANARY_TOKEN}"}}))
    outcomes = [await run(pipeline)]
    outcomes.append(await run(pipeline, credentials=[{"key": "Password", "secretRef": "scim-password"}]))
    outcomes.append(await run(pipeline, credentials=[{"key": "Password", "value": CANARY_PASSWORD}]))
    outcomes.append(
        await pipeline.run(
            json.dumps({"credentials": [{"key": "Password", "value": CANARY_PASSWORD, "x": 1}]}),
            Invocation(trigger="http"),
        )
    )
    text = json.dumps([o.to_dict() for o in outcomes]) + "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}" for r in all_logs.records
    )
    assert "bad token ***" in text
    for canary in (CANARY_TOKEN, CANARY_PASSWORD):
        assert canary not in text
    assert any(r.name == "shared.outcome" for r in all_logs.records)


async def test_concurrent_requests_on_a_cold_pipeline_fetch_one_graph_token(pipeline, app_env):
    outcomes = await asyncio.gather(*(run(pipeline) for _ in range(16)))
    assert {o.outcome for o in outcomes} == {"succeeded"}
    assert app_env.identity.issued.count("https://graph.microsoft.com") == 1


async def test_the_graph_token_is_asked_for_while_key_vault_answers(pipeline, app_env):
    app_env.keyvault.latency = 0.2
    try:
        outcome = await run(pipeline)
    finally:
        app_env.keyvault.latency = 0
    assert outcome.outcome == "succeeded", outcome.to_dict()
    [graph_token] = [s for s in app_env.identity.seen if s.query.get("resource") == "https://graph.microsoft.com"]
    [secret_read] = [s for s in app_env.keyvault.seen if s.status == 200]
    assert graph_token.at < secret_read.at, "the Graph token waited for Key Vault"


async def test_a_dry_run_asks_for_no_graph_token(pipeline, app_env):
    outcome = await run(pipeline, dryRun=True)
    assert outcome.outcome == "validated"
    assert "https://graph.microsoft.com" not in app_env.identity.issued


async def test_a_key_vault_failure_leaves_no_graph_token_fetch_behind(pipeline, app_env, all_logs):
    app_env.identity.latency = 0.3  # the Graph token is still on its way when Key Vault says no
    try:
        outcome = await run(pipeline, credentials=[{"key": "SecretToken", "secretRef": "no-such-secret"}])
        await asyncio.sleep(0.5)
        gc.collect()
    finally:
        app_env.identity.latency = 0
    assert outcome.outcome == "rejected", outcome.to_dict()
    assert outcome.error_code == "SecretNotFound"
    pending = [t for t in asyncio.all_tasks() if getattr(t.get_coro(), "__qualname__", "") == "GraphClient.token"]
    assert not pending
    assert not [r for r in all_logs.records if "never retrieved" in r.getMessage()]
