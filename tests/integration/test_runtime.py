"""The runtime's one container: built once per process, reset explicitly, owning and closing its credential; the
triggers' one error handler per kind; the pipeline's one way to say how a request arrived."""

import json

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage

import function_app
from shared import runtime
from shared.container import Container
from shared.credentials import APP_IDENTITY, DEFAULT_SIGN_IN, GuardedCredential, TokenUnavailable
from shared.errors import IdentityNotAllowed
from shared.pipeline import Invocation
from shared.references import SecretResolver, parse_reference
from shared.settings import Settings
from shared.triggers import RetryableFailure
from tests.conftest import request_body


async def test_the_runtime_reads_the_environment_once_and_a_reset_starts_afresh(app_env, monkeypatch, azurite):
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    first = runtime.get_pipeline()
    monkeypatch.setenv("SECRET_CACHE_SECONDS", "7")
    assert runtime.get_pipeline() is first  # no environment variable is watched
    assert runtime.get_store() is runtime.get_store() is first.clients.store
    runtime.reset()
    second = runtime.get_pipeline()
    assert second is not first
    assert second.settings.secret_cache_seconds == 7


async def test_a_reset_closes_the_old_container_on_its_loop(app_env):
    import asyncio

    old = runtime.get_pipeline().clients
    closed = []
    original = old.close

    async def close():
        closed.append(old)
        await original()

    old.close = close
    runtime.reset()
    for _ in range(5):
        await asyncio.sleep(0)
    assert closed == [old]


class _Recorder:
    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    async def close(self):
        self.calls.append(self.name)


async def test_the_container_closes_its_clients_then_the_credential_it_owns():
    calls = []
    container = Container(
        settings=Settings(),
        credential=_Recorder("credential", calls),
        graph=_Recorder("graph", calls),
        resolver=_Recorder("resolver", calls),
        _store=_Recorder("store", calls),
    )
    await container.close()
    assert calls == ["store", "resolver", "graph", "credential"]


async def test_a_pipeline_borrows_nothing_it_closes_its_container(app_env):
    pipeline = runtime.build_pipeline(Settings.from_env())
    assert pipeline.credential is pipeline.clients.credential
    assert pipeline.graph is pipeline.clients.graph
    assert pipeline.resolver is pipeline.clients.resolver
    closed = []
    original = pipeline.clients.close

    async def close():
        closed.append(True)
        await original()

    pipeline.clients.close = close
    await pipeline.close()
    assert closed == [True]


async def test_run_takes_an_invocation_or_the_old_keywords_never_both(pipeline):
    outcome = await pipeline.run(json.dumps(request_body()), Invocation(trigger="queue", dequeue_count=3))
    assert (outcome.outcome, outcome.trigger, outcome.dequeue_count) == ("succeeded", "queue", 3)
    with pytest.raises(TypeError):
        await pipeline.run(json.dumps(request_body()), Invocation(trigger="http"), trigger="queue")


# ---- one handler per trigger kind ------------------------------------------------------------------------------


def _post(body: dict) -> func.HttpRequest:
    return func.HttpRequest(
        "POST", "https://app.azurewebsites.net/api/acquireAccessToken", headers={}, body=json.dumps(body).encode()
    )


async def test_a_surprise_before_the_pipeline_is_a_500_internal_error_outcome_never_a_traceback(
    app_env, monkeypatch, outcomes, all_logs
):
    from shared import policy

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug in the caller check")

    monkeypatch.setattr(policy, "authenticate", broken)
    response = await function_app.acquire_access_token.build().get_user_function()(_post(request_body()))
    assert response.status_code == 500
    problem = json.loads(response.get_body())
    assert (problem["outcome"], problem["error"]["code"], problem["retryable"]) == ("failed", "internalError", True)
    assert "a bug in the caller check" not in response.get_body().decode()
    assert [o["error"]["code"] for o in outcomes()] == ["internalError"]
    assert any("a bug in the caller check" in (r.exc_text or "") for r in all_logs.records)  # logged, not replied


async def test_a_setting_that_cannot_be_parsed_is_a_retried_configuration_error_on_every_trigger(app_env, monkeypatch):
    monkeypatch.setenv("GRAPH_API_VERSION", "v9")
    runtime.reset()
    response = await function_app.acquire_access_token.build().get_user_function()(_post(request_body()))
    assert response.status_code == 503
    assert json.loads(response.get_body())["error"]["code"] == "configurationError"
    message = QueueMessage(id="m", body=json.dumps(request_body()).encode(), dequeue_count=1, pop_receipt="p")
    with pytest.raises(RetryableFailure) as caught:
        await function_app.acquire_from_queue.build().get_user_function()(message)
    assert caught.value.outcome.error_code == "configurationError"
    assert caught.value.outcome.dequeue_count == 1


# ---- whose token: the app's managed identity, or the command line's sign-in -----------------------------------


class _NoToken:
    async def get_token(self, *scopes, **kwargs):
        raise OSError("no sign-in here")

    async def close(self):
        pass


@pytest.mark.parametrize(("kind", "identity"), [("managed_identity", APP_IDENTITY), ("default", DEFAULT_SIGN_IN)])
async def test_the_credential_is_named_by_what_built_it(app_env, kind, identity):
    pipeline = runtime.build_pipeline(Settings.from_env(), credential=kind)
    try:
        assert pipeline.credential.identity == identity
    finally:
        await pipeline.close()


async def test_a_key_vault_token_that_cannot_be_had_names_the_command_lines_sign_in(app_env):
    credential = GuardedCredential(_NoToken(), identity=DEFAULT_SIGN_IN)
    with pytest.raises(TokenUnavailable) as caught:
        await credential.get_token("https://vault.azure.net/.default")
    assert caught.value.identity == DEFAULT_SIGN_IN
    resolver = SecretResolver(credential, cache_seconds=0)
    try:
        with pytest.raises(IdentityNotAllowed) as refused:
            await resolver.resolve_all([parse_reference("scim-token", Settings.from_env())])
    finally:
        await resolver.close()
    assert refused.value.message == "your DefaultAzureCredential sign-in could not get a Key Vault token"
    assert "managed identity" not in refused.value.message
