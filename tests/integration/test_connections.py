"""Connections in Azurite's Table service, through the HTTP routes, the Event Grid trigger (Key Vault events), the
sweep timer and the command line, against the stand-ins."""

import asyncio
import json
import logging
import os
import uuid

import azure.functions as func
import pytest

import function_app
from shared.triggers import RetryableFailure
from standins.base import Reply
from standins.graph import new_job, quarantine
from tests.conftest import CANARIES, CANARY_TOKEN, SCIM_URL, SP_ID, UNKNOWN_ID, request_body
from tests.test_cli import cli
from tests.triggers.test_http_trigger import payload

JOB = "scim.0b9e8b8a8f7e4f6c9d0a3d3c6f6f1a11.7e4d9f3a-1c2b-4a5d-8e6f-0a1b2c3d4e5f"
NEW_VERSION = "Microsoft.KeyVault.SecretNewVersionCreated"


@pytest.fixture
def conn_env(app_env, azurite, monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("CONNECTIONS_TABLE", "conn" + uuid.uuid4().hex[:12])
    monkeypatch.setenv("CONNECTION_QUEUE_NAME", "work-" + uuid.uuid4().hex[:12])
    # The stand-in vault's events name it "standin-kv", as Key Vault's own events name a vault: it is allowed.
    monkeypatch.setenv("KEY_VAULT_ALLOWED_HOSTS", f"{app_env.keyvault.host},standin-kv.vault.azure.net")
    app_env.graph.jobs[SP_ID] = {JOB: new_job(JOB)}
    app_env.graph.stored_secrets[SP_ID] = [{"key": "BaseAddress", "value": SCIM_URL}]
    work_queue(app_env)  # created, as the infra creates it
    return app_env


def handler(function):
    return function.build().get_user_function()


def work_queue(env):
    """The connection-work queue, drained by the connection_work function as the host would."""
    from standins.queue_host import QueueHost

    host = QueueHost(
        os.environ["AzureWebJobsStorage"], os.environ["CONNECTION_QUEUE_NAME"], handler(function_app.connection_work)
    )
    host.create()
    return host


def http(method: str, route: str, body=None, *, params=None, headers=None, route_params=None) -> func.HttpRequest:
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    return func.HttpRequest(
        method,
        f"https://app.azurewebsites.net/api/{route}",
        headers=headers or {},
        params=params or {},
        route_params=route_params or {},
        body=data,
    )


async def put(name: str, body, headers=None):
    request = http("PUT", f"connections/{name}", body, headers=headers, route_params={"name": name})
    return await handler(function_app.connection)(request)


async def get(name: str, headers=None):
    return await handler(function_app.connection)(
        http("GET", f"connections/{name}", headers=headers, route_params={"name": name})
    )


async def delete(name: str, headers=None):
    return await handler(function_app.connection)(
        http("DELETE", f"connections/{name}", headers=headers, route_params={"name": name})
    )


async def run(name: str):
    return await handler(function_app.run_connection)(
        http("POST", f"connections/{name}/run", route_params={"name": name})
    )


async def listing(params):
    return await handler(function_app.list_connections)(http("GET", "connections", params=params))


async def deliver(event_json: str):
    """Event Grid hands one event to the trigger, as the worker decodes it."""
    from azure.functions.eventgrid import EventGridEventInConverter
    from azure.functions.meta import Datum

    event = EventGridEventInConverter.decode(Datum(event_json, "json"), trigger_metadata={})
    return await handler(function_app.acquire_from_event_grid)(event)


def connection_body(**overrides):
    return request_body(**{"correlationId": None, **overrides})


# ---- create, read, list, delete ------------------------------------------------------------------------------------


async def test_a_connection_is_created_read_replaced_and_deleted(conn_env):
    created = await put("contoso-scim", connection_body())
    assert created.status_code == 201
    stored = payload(created)
    assert stored["name"] == "contoso-scim"
    assert stored["request"] == connection_body()
    assert created.headers["ETag"] == stored["etag"]
    assert (stored["lastOutcome"], stored["appliedVersions"]) == (None, {})
    read = await get("contoso-scim")
    assert payload(read)["etag"] == stored["etag"]
    steps = ["validateCredentials", "acquireAccessToken"]
    replaced = await put("contoso-scim", connection_body(steps=steps), {"If-Match": stored["etag"]})
    assert replaced.status_code == 200
    assert payload(replaced)["etag"] != stored["etag"]
    assert (await delete("contoso-scim", {"If-Match": payload(replaced)["etag"]})).status_code == 204
    assert (await get("contoso-scim")).status_code == 404
    assert (await delete("contoso-scim", {"If-Match": "*"})).status_code == 404


async def test_replacing_or_deleting_without_if_match_is_428_and_changes_nothing(conn_env, caplog):
    created = payload(await put("guarded", connection_body()))
    for response in (await put("guarded", connection_body(dryRun=True)), await delete("guarded")):
        assert response.status_code == 428
        assert payload(response)["error"]["code"] == "preconditionRequired"
    assert payload(await get("guarded"))["etag"] == created["etag"]
    assert created["createdBy"] == created["updatedBy"] == "functionKey"


async def test_every_change_emits_a_connection_changed_event_naming_hosts_and_secrets_never_values(conn_env, caplog):
    with caplog.at_level(logging.INFO, logger="shared.events"):
        created = payload(await put("audited", connection_body()))
        moved = connection_body(credentials=[{"key": "BaseAddress", "value": "https://scim.other.example/v2"},
                                             {"key": "SecretToken", "secretRef": "scim-token"}])  # fmt: skip
        replaced = payload(await put("audited", moved, {"If-Match": created["etag"]}))
        await delete("audited", {"If-Match": replaced["etag"]})
    events = [
        json.loads(r.getMessage().split(" ", 1)[1])
        for r in caplog.records
        if r.name == "shared.events" and r.getMessage().startswith("ConnectionChanged ")
    ]
    assert [(e["connection"], e["change"], e["by"]) for e in events] == [
        ("audited", "created", "functionKey"),
        ("audited", "replaced", "functionKey"),
        ("audited", "deleted", "functionKey"),
    ]
    host = conn_env.keyvault.host
    assert (events[0].get("hostsBefore"), events[0]["hostsAfter"]) == ("", "scim.example.com")
    assert (events[1]["hostsBefore"], events[1]["hostsAfter"]) == ("scim.example.com", "scim.other.example")
    assert events[1]["secretsAfter"] == f"{host}/secrets/scim-token"
    assert events[2]["target"] == SP_ID
    assert CANARY_TOKEN not in json.dumps(events)


async def test_if_match_and_if_none_match_are_honoured(conn_env):
    first = payload(await put("etags", connection_body()))
    assert (await put("etags", connection_body(), {"If-None-Match": "*"})).status_code == 412
    second = await put("etags", connection_body(), {"If-Match": first["etag"]})
    assert second.status_code == 200
    stale = await put("etags", connection_body(dryRun=True), {"If-Match": first["etag"]})
    assert stale.status_code == 412
    assert payload(stale)["error"]["code"] == "preconditionFailed"
    assert payload(await get("etags"))["request"] == connection_body()  # the stale write was not applied
    assert (await delete("etags", {"If-Match": first["etag"]})).status_code == 412
    assert (await delete("etags", {"If-Match": payload(second)["etag"]})).status_code == 204
    assert (await put("nope", connection_body(), {"If-Match": "*"})).status_code == 412
    unknown = await put("nope", connection_body(), {"If-None-Match": first["etag"]})
    assert unknown.status_code == 400  # If-None-Match takes only '*' on a PUT
    assert (await get("nope")).status_code == 404


async def test_concurrent_updates_of_one_connection_never_lose_a_write(conn_env):
    etag = payload(await put("race", connection_body()))["etag"]
    results = await asyncio.gather(
        put("race", connection_body(correlationId="a"), {"If-Match": etag}),
        put("race", connection_body(correlationId="b"), {"If-Match": etag}),
    )
    assert sorted(r.status_code for r in results) == [200, 412]
    winner = next(payload(r) for r in results if r.status_code == 200)
    assert payload(await get("race"))["request"]["correlationId"] == winner["request"]["correlationId"]


@pytest.mark.parametrize(
    ("name", "body", "status", "code"),
    [
        ("Bad_Name", connection_body(), 400, "invalidRequest"),
        ("x" * 64, connection_body(), 400, "invalidRequest"),
        ("ok", connection_body(credentials="nope"), 400, "invalidRequest"),
        ("ok", connection_body(dry_run=True), 400, "invalidRequest"),
        ("ok", connection_body(credentials=[{"key": "SecretToken", "value": "inline-token-1234"}]), 403, None),
        ("ok", connection_body(credentials=[{"key": "SecretToken", "secretRef": "https://evil.example/secrets/x"}]),
         403, "vaultHostNotAllowed"),
    ],
)  # fmt: skip
async def test_a_bad_connection_is_refused_naming_the_problem(conn_env, monkeypatch, name, body, status, code):
    monkeypatch.setenv("ALLOW_INLINE_SECRETS", "true")  # never for a connection
    response = await put(name, body)
    assert response.status_code == status
    problem = payload(response)
    assert response.mimetype == "application/problem+json"
    if code:
        assert problem["error"]["code"] == code
    assert "inline-token-1234" not in response.get_body().decode()


async def test_the_list_is_paged_with_a_continuation_token(conn_env):
    for index in range(5):
        assert (await put(f"page-{index}", connection_body())).status_code == 201
    seen, token, pages = [], None, 0
    while True:
        params = {"top": "2", **({"continuationToken": token} if token else {})}
        page = payload(await listing(params))
        assert len(page["value"]) <= 2
        seen += [c["name"] for c in page["value"]]
        token, pages = page["continuationToken"], pages + 1
        if token is None:
            break
    assert sorted(seen) == [f"page-{i}" for i in range(5)]
    assert pages >= 3
    assert (await listing({"top": "0"})).status_code == 400
    assert (await listing({"continuationToken": "Not_A_Name"})).status_code == 400


# ---- run -------------------------------------------------------------------------------------------------------------


async def test_running_a_connection_records_its_outcome_and_the_versions_it_applied(conn_env):
    await put("run-me", connection_body(steps=["validateCredentials", "acquireAccessToken"], correlationId="cx"))
    response = await run("run-me")
    outcome = payload(response)
    assert response.status_code == 200
    assert (outcome["outcome"], outcome["trigger"], outcome["connection"]) == ("succeeded", "connection", "run-me")
    stored = payload(await get("run-me"))
    assert stored["lastOutcome"]["outcome"] == "succeeded"
    assert stored["lastOutcome"]["correlationId"] == "cx"
    version = conn_env.keyvault.secrets["scim-token"][-1].version
    [(secret, applied)] = stored["appliedVersions"].items()
    assert (secret, applied["version"]) == (f"{conn_env.keyvault.url}/secrets/scim-token", version)
    assert applied["created"].endswith("Z")  # when Key Vault created the version: a later one never goes back
    assert (await run("missing")).status_code == 404
    text = json.dumps(stored)
    for canary in CANARIES:
        assert canary not in text


# ---- rotation --------------------------------------------------------------------------------------------------------


def rotate(env, value: str) -> str:
    """A new version of scim-token in the vault, which the provisioning app now expects."""
    version = env.keyvault.set_secret("scim-token", value)
    env.graph.service_principals[SP_ID] = {"BaseAddress": SCIM_URL, "SecretToken": value}
    return version


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
async def test_a_new_secret_version_is_applied_to_every_connection_that_uses_it(conn_env, outcomes, schema):
    steps = ["validateCredentials", "saveSecrets", "restartJob"]
    await put("uses-it", connection_body(steps=steps))
    await put("also-uses-it", connection_body(steps=["acquireAccessToken"]))
    other = [{"key": "BaseAddress", "value": SCIM_URL}, {"key": "SecretToken", "secretRef": "other-token"}]
    conn_env.keyvault.set_secret("other-token", "another-value-1234")
    await put("does-not", connection_body(credentials=other))
    # warm the cache with the old value: a rotation must never use it
    await run("uses-it")
    conn_env.graph.reset()
    conn_env.graph.jobs[SP_ID] = {JOB: new_job(JOB, "Quarantine", quarantine())}
    version = rotate(conn_env, "rotated-token-value-5678")
    await deliver(conn_env.keyvault.event(NEW_VERSION, "scim-token", schema=schema))
    assert conn_env.graph.stored_secrets[SP_ID][-1] == {"key": "SecretToken", "value": "rotated-token-value-5678"}
    assert [a[0] for a in conn_env.graph.actions] == ["validateCredentials", "saveSecrets", "restart"]
    assert [a[0] for a in conn_env.graph.authorized] == ["servicePrincipals"]
    rotation = [o for o in outcomes() if o["trigger"] == "rotation"]
    assert sorted(o["connection"] for o in rotation) == ["also-uses-it", "uses-it"]
    assert all(o["outcome"] == "succeeded" for o in rotation)
    secret_id = f"{conn_env.keyvault.url}/secrets/scim-token"
    for name in ("uses-it", "also-uses-it"):
        assert payload(await get(name))["appliedVersions"][secret_id]["version"] == version
    assert payload(await get("does-not"))["appliedVersions"] == {}


async def test_a_redelivered_or_concurrent_event_applies_the_version_once(conn_env):
    await put("once", connection_body(steps=["saveSecrets"]))
    rotate(conn_env, "rotated-once-value-9012")
    event = conn_env.keyvault.event(NEW_VERSION, "scim-token")
    results = await asyncio.gather(deliver(event), deliver(event), return_exceptions=True)
    # A delivery that found the other one applying it is never reported done: it raises, so Event Grid retries it.
    busy = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, RetryableFailure) and r.outcome.error_code == "rotationInProgress" for r in busy)
    await deliver(event)  # the retry: applied already, skipped
    puts = [s for s in conn_env.graph.seen if s.method == "PUT"]
    assert len(puts) == 1


async def test_a_pinned_reference_is_not_rotated(conn_env):
    pinned = conn_env.keyvault.secrets["scim-token"][-1].version
    credentials = [
        {"key": "BaseAddress", "value": SCIM_URL},
        {"key": "SecretToken", "secretRef": f"scim-token/{pinned}"},
    ]
    await put("pinned", connection_body(credentials=credentials))
    rotate(conn_env, "rotated-but-pinned-3456")
    await deliver(conn_env.keyvault.event(NEW_VERSION, "scim-token"))
    assert conn_env.graph.seen == []


async def test_an_event_for_a_vault_the_app_may_not_use_is_ignored(conn_env, caplog):
    await put("safe", connection_body())
    event = json.loads(conn_env.keyvault.event(NEW_VERSION, "scim-token"))
    event["data"]["Id"] = event["data"]["Id"].replace(conn_env.keyvault.host, "evil.vault.azure.net")
    with caplog.at_level(logging.WARNING):
        await deliver(json.dumps(event))
    assert conn_env.graph.seen == []
    assert "not in KEY_VAULT_ALLOWED_HOSTS" in caplog.text


@pytest.mark.parametrize(
    "data",
    [{"ObjectType": "Secret"}, {"Id": "not a uri", "ObjectName": "x"}, {"Id": "https://h/keys/x/1"}, "not json", [1]],
)
async def test_a_malformed_key_vault_event_is_rejected_not_retried(conn_env, outcomes, data):
    event = {"id": "e", "topic": "t", "subject": "s", "eventType": NEW_VERSION, "data": data, "dataVersion": "1",
             "eventTime": "2026-11-25T08:00:00Z"}  # fmt: skip
    await deliver(json.dumps(event))
    assert outcomes()[-1]["outcome"] == "rejected"
    assert outcomes()[-1]["trigger"] == "rotation"


async def test_quirky_event_data_is_read_defensively(conn_env):
    await put("quirks", connection_body(steps=["saveSecrets"]))
    version = rotate(conn_env, "quirky-rotated-value-77")
    event = json.loads(conn_env.keyvault.event(NEW_VERSION, "scim-token"))
    event["data"] = {"id": " " + event["data"]["Id"] + " ", "objectName": " scim-token ", "version": f" {version} ",
                     "vaultName": " standin-kv ", "NBF": 1559081980, "EXP": "not a number",
                     "ObjectType": " Secret "}  # fmt: skip
    await deliver(json.dumps(event))
    assert conn_env.graph.stored_secrets[SP_ID][-1]["value"] == "quirky-rotated-value-77"


async def test_a_failed_re_apply_raises_after_all_were_tried_and_redelivery_retries_only_it(conn_env):
    await put("will-fail", connection_body(steps=["restartJob"]))
    await put("will-pass", connection_body(steps=["acquireAccessToken"]))
    rotate(conn_env, "rotated-partial-value-11")
    original = conn_env.graph.handle

    def restart_down(seen):
        if seen.path.endswith("/restart"):
            return Reply(503, {"error": {"code": "ServiceUnavailable", "message": "down"}})
        return original(seen)

    event = conn_env.keyvault.event(NEW_VERSION, "scim-token")
    conn_env.graph.handle = restart_down
    try:
        with pytest.raises(RetryableFailure):
            await deliver(event)
    finally:
        del conn_env.graph.handle
    assert len(conn_env.graph.authorized) == 1  # will-pass was applied despite will-fail
    await deliver(event)  # Event Grid's redelivery
    assert len(conn_env.graph.authorized) == 1  # will-pass skipped
    assert len([a for a in conn_env.graph.actions if a[0] == "restart"]) == 1


async def test_a_connection_deleted_while_rotation_runs_is_skipped(conn_env):
    from shared.rotation import KeyVaultEvent, handle_key_vault_event
    from shared.runtime import get_pipeline, get_store

    await put("gone", connection_body())
    store = get_store()

    class Vanishing:
        async def find_by_secret(self, secret_id, *, limit=None):
            names = await store.find_by_secret(secret_id, limit=limit)
            await store.delete("gone")
            return names

        def __getattr__(self, name):
            return getattr(store, name)

    current = conn_env.keyvault.secrets["scim-token"][-1].version
    event = KeyVaultEvent(NEW_VERSION, None, conn_env.keyvault.url, "scim-token", current, None)
    report = await handle_key_vault_event(event, store=Vanishing(), pipeline=get_pipeline())
    assert report.skipped == ["gone"]
    assert conn_env.graph.seen == []


async def test_a_rotation_reads_only_the_connections_it_affects(conn_env):
    from shared.rotation import KeyVaultEvent, handle_key_vault_event
    from shared.runtime import get_pipeline, get_store

    conn_env.keyvault.set_secret("other-token", "another-value-1234")
    other = [{"key": "BaseAddress", "value": SCIM_URL}, {"key": "SecretToken", "secretRef": "other-token"}]
    for index in range(4):
        await put(f"unrelated-{index}", connection_body(credentials=other))
    await put("related", connection_body())
    store = get_store()
    reads = []

    class Counting:
        async def get(self, name):
            reads.append(name)
            return await store.get(name)

        def __getattr__(self, name):
            return getattr(store, name)

    version = rotate(conn_env, "rotated-index-value-22")
    event = KeyVaultEvent(NEW_VERSION, None, conn_env.keyvault.url, "scim-token", version, None)
    await handle_key_vault_event(event, store=Counting(), pipeline=get_pipeline())
    assert set(reads) == {"related"}


@pytest.mark.parametrize("event_type", ["Microsoft.KeyVault.SecretNearExpiry", "Microsoft.KeyVault.SecretExpired"])
async def test_expiry_events_warn_once_per_connection_and_call_nothing(conn_env, caplog, event_type):
    await put("expiring-a", connection_body())
    await put("expiring-b", connection_body())
    conn_env.keyvault.set_secret("scim-token", CANARY_TOKEN, expires=1893456000)
    with caplog.at_level(logging.INFO, logger="shared.events"):
        await deliver(conn_env.keyvault.event(event_type, "scim-token", schema="cloudevents"))
    warnings = [
        json.loads(r.getMessage().split(" ", 1)[1])
        for r in caplog.records
        if r.name == "shared.events" and r.getMessage().startswith("SecretExpiryWarning ")
    ]
    assert sorted(w["connection"] for w in warnings) == ["expiring-a", "expiring-b"]
    assert warnings[0]["secret"] == "scim-token"
    assert warnings[0]["expires"] == "2030-01-01T00:00:00Z"
    assert conn_env.graph.seen == []


async def test_table_storage_down_is_503_and_a_rotation_is_retried(app_env, monkeypatch):
    monkeypatch.setenv("KEY_VAULT_ALLOWED_HOSTS", f"{app_env.keyvault.host},standin-kv.vault.azure.net")
    monkeypatch.setenv("AzureWebJobsStorage", "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                       "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
                       "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;")  # fmt: skip
    response = await put("down", connection_body())
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert payload(response)["retryable"] is True
    with pytest.raises(RetryableFailure):
        await deliver(app_env.keyvault.event(NEW_VERSION, "scim-token"))


# ---- sweep -----------------------------------------------------------------------------------------------------------


async def test_the_sweep_reports_each_connection_and_never_starts_a_job(conn_env, caplog):
    conn_env.graph.jobs[SP_ID] = {JOB: new_job(JOB, "Quarantine", quarantine("TooManyDeletes"))}
    conn_env.keyvault.set_secret("scim-token", CANARY_TOKEN, expires=int(__import__("time").time()) + 10 * 86400)
    await put("healthy-or-not", connection_body(steps=["restartJob"]))
    await put("broken", connection_body(servicePrincipalId=UNKNOWN_ID))
    with caplog.at_level(logging.INFO, logger="shared.events"):
        await handler(function_app.sweep_connections)(None)
        await work_queue(conn_env).drain()
    health = {
        json.loads(r.getMessage().split(" ", 1)[1])["connection"]: json.loads(r.getMessage().split(" ", 1)[1])
        for r in caplog.records
        if r.name == "shared.events" and r.getMessage().startswith("ConnectionHealth ")
    }
    assert set(health) == {"healthy-or-not", "broken"}
    ok = health["healthy-or-not"]
    assert (ok["jobStatus"], ok["quarantineReason"], ok["expiringSoon"]) == ("Quarantine", "TooManyDeletes", "true")
    assert 9 < float(ok["daysToExpiry"]) <= 10
    assert ok["expiringSecret"] == "scim-token"
    assert "error" in health["broken"]
    assert not [s for s in conn_env.graph.seen if s.method != "GET"]


# ---- command line ----------------------------------------------------------------------------------------------------


def test_the_cli_mirrors_the_routes(conn_env, tmp_path):
    request_file = tmp_path / "connection.json"
    request_file.write_text(json.dumps(connection_body()))
    env = dict(os.environ)
    created = cli("connections", "put", "cli-conn", "--request", str(request_file), env=env)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["name"] == "cli-conn"
    assert json.loads(cli("connections", "get", "cli-conn", env=env).stdout)["request"] == connection_body()
    assert "cli-conn" in [c["name"] for c in json.loads(cli("connections", "list", env=env).stdout)["value"]]
    ran = cli("connections", "run", "cli-conn", env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["trigger"] == "connection"
    unguarded = cli("connections", "delete", "cli-conn", env=env)
    assert unguarded.returncode == 3
    assert "preconditionRequired" in unguarded.stderr
    etag = json.loads(cli("connections", "get", "cli-conn", env=env).stdout)["etag"]
    assert cli("connections", "delete", "cli-conn", "--if-match", etag, env=env).returncode == 0
    missing = cli("connections", "get", "cli-conn", env=env)
    assert missing.returncode == 3
    assert "connectionNotFound" in missing.stderr
