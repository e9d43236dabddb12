"""The app as the real worker runtime sees it: indexing, metadata the host accepts, and every trigger invoked with
the payloads the host sends, checked through the protocol's own messages."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re

import pytest

from tests.conftest import APP_ID, CANARIES, SCIM_URL, SP_ID, UNKNOWN_ID, flushed_within, request_body

pytestmark = pytest.mark.asyncio(loop_scope="session")

SP_ROUTE = "servicePrincipals/{id}/synchronization/acquireAccessToken"
APP_ROUTE = "applications/{id}/synchronization/acquireAccessToken"
# What each function must look like to the host: trigger type, methods, route, auth level (HTTP), or the queue
# name expression and connection (queue).
EXPECTED = {
    "acquire_for_service_principal": ("httpTrigger", ["POST"], SP_ROUTE, "FUNCTION"),
    "acquire_for_application": ("httpTrigger", ["POST"], APP_ROUTE, "FUNCTION"),
    "acquire_access_token": ("httpTrigger", ["POST"], "acquireAccessToken", "FUNCTION"),
    "health_check": ("httpTrigger", ["GET"], "health", "ANONYMOUS"),
    "health_detail": ("httpTrigger", ["GET"], "health/detail", "FUNCTION"),
    "openapi": ("httpTrigger", ["GET"], "openapi.json", "ANONYMOUS"),
    "swagger": ("httpTrigger", ["GET"], "swagger.json", "ANONYMOUS"),
    "connection": ("httpTrigger", ["GET", "PUT", "DELETE"], "connections/{name}", "FUNCTION"),
    "list_connections": ("httpTrigger", ["GET"], "connections", "FUNCTION"),
    "run_connection": ("httpTrigger", ["POST"], "connections/{name}/run", "FUNCTION"),
    "acquire_from_queue": ("queueTrigger", "%REQUEST_QUEUE_NAME%", "AzureWebJobsStorage"),
    "connection_work": ("queueTrigger", "%CONNECTION_QUEUE_NAME%", "AzureWebJobsStorage"),
    "acquire_from_event_grid": ("eventGridTrigger",),
    "sweep_connections": ("timerTrigger", "%SWEEP_SCHEDULE%"),
}
FUNCTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")
TRIGGERS = {"httpTrigger", "queueTrigger", "eventGridTrigger", "timerTrigger"}


def reply(invocation) -> tuple[int, dict]:
    http = invocation.http
    body = http.body.bytes or http.body.string.encode()
    return int(http.status_code), json.loads(body)


def header(invocation, name: str) -> str | None:
    return {k.lower(): v for k, v in invocation.http.headers.items()}.get(name)


# ---- start-up --------------------------------------------------------------------------------------------------


async def test_worker_init_indexes_the_app_and_succeeds(worker):
    pb = worker.pb
    response = worker.init_response
    assert response.result.status == pb.StatusResult.Success, response.result.exception.message
    assert response.worker_metadata.runtime_name == "python"
    assert response.worker_metadata.runtime_version.startswith("3.1")
    for capability in ("RawHttpBodyBytes", "RpcHttpBodyOnly", "TypedDataCollection", "WorkerStatus"):
        assert response.capabilities[capability] == "true"
    # The worker configured Azure Monitor itself (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY), as in Azure.
    assert response.capabilities.get("WorkerOpenTelemetryEnabled") == "true"


async def test_the_function_metadata_is_exactly_the_apps_functions(worker):
    assert set(worker.metadata) == set(EXPECTED)


async def test_every_function_has_metadata_the_host_accepts(worker):
    pb = worker.pb
    ids = set()
    for name, metadata in worker.metadata.items():
        assert FUNCTION_NAME.match(name), name
        assert metadata.function_id
        assert metadata.function_id not in ids
        ids.add(metadata.function_id)
        assert metadata.language == "python"
        assert metadata.properties["worker_indexed"] == "True"
        raw = [json.loads(b) for b in metadata.raw_bindings]
        triggers = [b for b in raw if b["type"] in TRIGGERS]
        assert len(triggers) == 1, f"{name}: a function has exactly one trigger"
        assert {b["name"] for b in raw} == set(metadata.bindings)
        for binding in raw:
            assert binding["direction"] in ("IN", "OUT", "INOUT")
            info = metadata.bindings[binding["name"]]
            assert info.type == binding["type"]
            expected_direction = {"IN": pb.BindingInfo.Direction.Value("in"), "OUT": pb.BindingInfo.out}
            assert info.direction == expected_direction[binding["direction"]]
        trigger = triggers[0]
        expected = EXPECTED[name]
        assert trigger["type"] == expected[0]
        assert trigger["direction"] == "IN"
        if trigger["type"] == "httpTrigger":
            assert (trigger["methods"], trigger["route"], trigger["authLevel"]) == expected[1:]
            assert not trigger["route"].startswith("/")
            [output] = [b for b in raw if b["direction"] == "OUT"]
            assert (output["type"], output["name"]) == ("http", "$return")
        elif trigger["type"] == "queueTrigger":
            assert (trigger["queueName"], trigger["connection"]) == expected[1:]
            assert re.fullmatch(r"%[A-Z_]+%", trigger["queueName"])
        elif trigger["type"] == "timerTrigger":
            assert trigger["schedule"] == expected[1]
            assert trigger["runOnStartup"] is False  # a sweep on every cold start would multiply the Graph reads


async def test_every_function_loads(worker):
    loaded = await worker.load_all()
    assert {name: r.result.status for name, r in loaded.items()} == dict.fromkeys(
        EXPECTED, worker.pb.StatusResult.Success
    )


# ---- HTTP --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["bytes", "string"])
async def test_an_http_request_on_the_service_principal_route_is_authorized(worker, app_env, form):
    body = json.dumps(request_body(servicePrincipalId=None, correlationId=f"worker-http-{form}"))
    invocation = await worker.invoke(
        "acquire_for_service_principal",
        {
            "req": worker.http(
                "POST",
                f"servicePrincipals/{SP_ID}/synchronization/acquireAccessToken",
                body=body.encode() if form == "bytes" else body,
                params={"id": SP_ID},
                headers={"Content-Type": "application/json", "X-Functions-Key": "k"},
            )
        },
    )
    assert invocation.succeeded, invocation.response.result.exception.message
    status, outcome = reply(invocation)
    assert (status, outcome["outcome"], outcome["correlationId"]) == (200, "succeeded", f"worker-http-{form}")
    assert header(invocation, "content-type").startswith("application/json")
    assert app_env.graph.authorized == [("servicePrincipals", SP_ID, ["BaseAddress", "SecretToken"])]
    [outcome_log] = [log for log in invocation.logs if log.category == "shared.outcome"]
    assert outcome_log.level == worker.pb.RpcLog.Information
    assert f'"correlationId":"worker-http-{form}"' in outcome_log.message
    assert outcome_log.log_category == worker.pb.RpcLog.User


async def test_the_application_route_and_the_body_route(worker, app_env):
    on_path = await worker.invoke(
        "acquire_for_application",
        {
            "req": worker.http(
                "POST",
                f"applications/{APP_ID}/synchronization/acquireAccessToken",
                body=json.dumps(request_body(servicePrincipalId=None)).encode(),
                params={"id": APP_ID},
            )
        },
    )
    in_body = await worker.invoke(
        "acquire_access_token",
        {"req": worker.http("POST", "acquireAccessToken", body=json.dumps(request_body(dryRun=True)))},
    )
    assert reply(on_path)[1]["target"] == {"type": "application", "id": APP_ID}
    assert reply(in_body)[1]["outcome"] == "validated"


@pytest.mark.parametrize(
    ("body", "params", "status", "code"),
    [
        (b"{not json", {"id": SP_ID}, 400, "invalidRequest"),
        (b"", {"id": SP_ID}, 400, "invalidRequest"),
        (json.dumps(request_body(servicePrincipalId=None, dry_run=True)).encode(), {"id": SP_ID}, 400, None),
        (json.dumps(request_body(servicePrincipalId=None)).encode(), {"id": "not-a-guid"}, 400, None),
        (json.dumps(request_body(servicePrincipalId=None)).encode(), {"id": UNKNOWN_ID}, 404, None),
        (b"\xef\xbb\xbf" + json.dumps(request_body(servicePrincipalId=None)).encode(), {"id": SP_ID}, 200, None),
    ],
)
async def test_bad_http_input_gets_a_problem_reply_never_a_worker_failure(worker, app_env, body, params, status, code):
    invocation = await worker.invoke(
        "acquire_for_service_principal",
        {
            "req": worker.http(
                "POST", "servicePrincipals/x/synchronization/acquireAccessToken", body=body, params=params
            )
        },
    )
    assert invocation.succeeded
    got, payload = reply(invocation)
    assert got == status
    if status != 200:
        assert header(invocation, "content-type") == "application/problem+json"
        assert payload["status"] == status
    if code:
        assert payload["error"]["code"] == code


async def test_the_caller_role_is_read_from_the_lower_cased_principal_header(worker, app_env, monkeypatch):
    monkeypatch.setenv("CALLER_AUTH", "entra")
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")  # App Service Authentication on, as CALLER_AUTH=entra needs
    principal = {"auth_typ": "aad", "claims": [{"typ": "roles", "val": "Provisioning.Operator"}]}
    encoded = base64.b64encode(json.dumps(principal).encode()).decode()
    path = f"servicePrincipals/{SP_ID}/synchronization/acquireAccessToken"
    body = json.dumps(request_body(servicePrincipalId=None)).encode()
    allowed = await worker.invoke(
        "acquire_for_service_principal",
        {"req": worker.http("POST", path, body=body, params={"id": SP_ID}, headers={"X-MS-CLIENT-PRINCIPAL": encoded})},
    )
    refused = await worker.invoke(
        "acquire_for_service_principal", {"req": worker.http("POST", path, body=body, params={"id": SP_ID})}
    )
    assert reply(allowed)[0] == 200
    assert reply(refused)[0] == 403


async def test_a_throttled_graph_gets_503_with_retry_after(worker, app_env):
    from standins.base import Reply

    app_env.graph.fail_next(*[Reply(503, {"error": {"code": "ServiceUnavailable", "message": "busy"}})] * 4)
    invocation = await worker.invoke(
        "acquire_access_token", {"req": worker.http("POST", "acquireAccessToken", body=json.dumps(request_body()))}
    )
    assert reply(invocation)[0] == 503
    assert int(header(invocation, "retry-after")) >= 1


async def test_health_and_openapi_run_in_the_worker_thread_pool(worker, app_env):
    health = await worker.invoke("health_check", {"req": worker.http("GET", "health")})
    document = await worker.invoke("openapi", {"req": worker.http("GET", "openapi.json")})
    assert reply(health) == (200, reply(health)[1])
    assert reply(health)[1]["status"] == "healthy"
    status, openapi = reply(document)
    assert status == 200
    assert openapi["openapi"].startswith("3.1")


# ---- queue -------------------------------------------------------------------------------------------------------


def queue_metadata(worker, dequeue_count: int) -> dict:
    pb = worker.pb
    return {
        "DequeueCount": pb.TypedData(json=str(dequeue_count)),
        "Id": pb.TypedData(string="0f2c0a7e-6f3e-4d1b-9a53-000000000001"),
        "InsertionTime": pb.TypedData(json='"2026-11-25T08:00:00+00:00"'),
        "ExpirationTime": pb.TypedData(json='"2026-12-02T08:00:00+00:00"'),
        "NextVisibleTime": pb.TypedData(json='"2026-11-25T08:02:00+00:00"'),
        "PopReceipt": pb.TypedData(string="AgAAAAMAAAAAAAAA"),
    }


@pytest.mark.parametrize("form", ["string", "bytes"])
async def test_a_queue_message_is_decoded_and_authorized(worker, app_env, outcomes, form):
    text = base64.b64encode(json.dumps(request_body(correlationId=f"worker-queue-{form}")).encode()).decode()
    data = worker.pb.TypedData(string=text) if form == "string" else worker.pb.TypedData(bytes=text.encode())
    invocation = await worker.invoke("acquire_from_queue", {"msg": data}, queue_metadata(worker, 3))
    assert invocation.succeeded
    [emitted] = outcomes()
    assert (emitted["outcome"], emitted["trigger"], emitted["dequeueCount"]) == ("succeeded", "queue", 3)
    assert app_env.graph.authorized


async def test_a_malformed_queue_message_completes_with_a_rejection(worker, app_env, outcomes):
    invocation = await worker.invoke(
        "acquire_from_queue", {"msg": worker.pb.TypedData(string="%%% not base64 %%%")}, queue_metadata(worker, 1)
    )
    assert invocation.succeeded  # completed: never retried
    assert outcomes()[-1]["outcome"] == "rejected"


async def test_a_failed_queue_request_fails_the_invocation_so_the_host_retries(worker, app_env, outcomes):
    from standins.base import Reply

    app_env.graph.fail_next(*[Reply(500, {"error": {"code": "InternalServerError", "message": "x"}})] * 4)
    text = json.dumps(request_body())
    invocation = await worker.invoke(
        "acquire_from_queue", {"msg": worker.pb.TypedData(string=text)}, queue_metadata(worker, 2)
    )
    assert not invocation.succeeded
    exception = invocation.response.result.exception
    assert "InternalServerError" in exception.message
    for canary in CANARIES:
        assert canary not in exception.message + exception.stack_trace
    assert outcomes()[-1]["outcome"] == "failed"


# ---- Event Grid --------------------------------------------------------------------------------------------------


def event_grid_schema(data) -> str:
    return json.dumps(
        {
            "id": "evt-1",
            "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.EventGrid/topics/provisioning",
            "subject": "provisioning/ticket",
            "eventType": "Provisioning.AcquireAccessTokenRequested",
            "eventTime": "2026-11-25T08:00:00.0000000Z",
            "data": data,
            "dataVersion": "1.0",
            "metadataVersion": "1",
        }
    )


def cloud_events_schema(data, event_type="Provisioning.AcquireAccessTokenRequested") -> str:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": "ce-1",
            "source": "/provisioning/tickets",
            "type": event_type,
            "time": "2026-11-25T08:00:00Z",
            "datacontenttype": "application/json",
            "data": data,
        }
    )


@pytest.mark.parametrize("schema", [event_grid_schema, cloud_events_schema])
async def test_an_event_in_either_schema_is_authorized(worker, app_env, outcomes, schema):
    event = schema(request_body(correlationId="worker-event"))
    invocation = await worker.invoke("acquire_from_event_grid", {"event": worker.pb.TypedData(json=event)})
    assert invocation.succeeded, invocation.response.result.exception.message
    assert (outcomes()[-1]["outcome"], outcomes()[-1]["trigger"]) == ("succeeded", "eventGrid")


async def test_an_event_of_another_type_is_ignored(worker, app_env, outcomes):
    event = cloud_events_schema({"anything": 1}, event_type="Something.Else")
    invocation = await worker.invoke("acquire_from_event_grid", {"event": worker.pb.TypedData(json=event)})
    assert invocation.succeeded
    assert outcomes() == []
    assert app_env.graph.seen == []


async def test_an_event_with_a_bad_request_completes_with_a_rejection(worker, app_env, outcomes):
    event = event_grid_schema({"servicePrincipalId": SP_ID, "credentials": "nope"})
    invocation = await worker.invoke("acquire_from_event_grid", {"event": worker.pb.TypedData(json=event)})
    assert invocation.succeeded
    assert outcomes()[-1]["outcome"] == "rejected"


# ---- logs and telemetry --------------------------------------------------------------------------------------------


async def test_no_log_streamed_to_the_host_carries_a_secret(worker):
    assert worker.logs.messages, "the worker streamed no logs at all"
    for log in worker.logs.messages:
        for canary in CANARIES:
            assert canary not in log.message


async def test_telemetry_stays_bounded_under_the_worker_and_flush_returns(worker, app_env):
    ingestion = app_env.ingestion
    invocation = await worker.invoke(
        "acquire_access_token",
        {"req": worker.http("POST", "acquireAccessToken", body=json.dumps(request_body(correlationId="worker-idle")))},
    )
    assert reply(invocation)[0] == 200
    assert flushed_within(3), "flush did not return: the exporter keeps finding more to send"
    settled = len([s for s in ingestion.seen if s.path.endswith("/track")])
    await asyncio.sleep(
        3
    )  # idle, with exports scheduled every 100 ms: a self-feeding exporter would post dozens of times
    assert flushed_within(3)
    idle = [s for s in ingestion.seen if s.path.endswith("/track")][settled:]
    assert len(idle) <= 2, f"{len(idle)} ingestion requests from an idle worker"
    events = [
        e
        for e in ingestion.events("AcquireAccessTokenOutcome")
        if e["data"]["baseData"]["properties"].get("correlationId") == "worker-idle"
    ]
    assert len(events) == 1
    traces = [e["data"]["baseData"].get("message", "") for e in ingestion.of_type("MessageData")]
    assert not [t for t in traces if "Request URL" in t or "Transmission" in t or "/v2.1/track" in t]


# ---- connections and the timer -------------------------------------------------------------------------------------


async def test_connections_routes_and_the_sweep_timer_run_in_the_worker(worker, app_env, azurite, monkeypatch, caplog):
    import logging
    import uuid

    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("CONNECTIONS_TABLE", "worker" + uuid.uuid4().hex[:10])
    body = json.dumps(request_body(correlationId=None)).encode()
    created = await worker.invoke(
        "connection",
        {"req": worker.http("PUT", "connections/w-conn", body=body, params={"name": "w-conn"})},
    )
    assert reply(created)[0] == 201
    assert header(created, "etag")
    listed = await worker.invoke("list_connections", {"req": worker.http("GET", "connections")})
    assert [c["name"] for c in reply(listed)[1]["value"]] == ["w-conn"]
    ran = await worker.invoke(
        "run_connection", {"req": worker.http("POST", "connections/w-conn/run", params={"name": "w-conn"})}
    )
    assert reply(ran)[1]["trigger"] == "connection"
    timer = json.dumps({"Schedule": {"AdjustForDST": True}, "ScheduleStatus": None, "IsPastDue": False})
    from azure.storage.queue import QueueClient

    work = QueueClient.from_connection_string(azurite.connection_string, os.environ["CONNECTION_QUEUE_NAME"])
    work.create_queue()
    with caplog.at_level(logging.INFO, logger="shared.events"):
        swept = await worker.invoke("sweep_connections", {"timer": worker.pb.TypedData(json=timer)})
        assert swept.succeeded, swept.response.result.exception.message
        [message] = list(work.receive_messages())  # the timer enqueued the connection's check
        checked = await worker.invoke(
            "connection_work", {"msg": worker.pb.TypedData(string=message.content)}, queue_metadata(worker, 1)
        )
    assert checked.succeeded, checked.response.result.exception.message
    assert "ConnectionHealth" in caplog.text
    assert '"connection":"w-conn"' in caplog.text


VAULT_TOPIC = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/standin-kv"


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
async def test_the_worker_hands_a_key_vault_events_topic_to_the_app_which_trusts_only_its_vaults(
    worker, app_env, azurite, monkeypatch, outcomes, caplog, schema
):
    import logging
    import uuid

    from shared import runtime

    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("CONNECTIONS_TABLE", "wkv" + uuid.uuid4().hex[:10])
    monkeypatch.setenv("KEY_VAULT_ALLOWED_HOSTS", f"{app_env.keyvault.host},standin-kv.vault.azure.net")
    runtime.reset()
    body = json.dumps(request_body(correlationId=None)).encode()
    created = await worker.invoke(
        "connection", {"req": worker.http("PUT", "connections/w-kv", body=body, params={"name": "w-kv"})}
    )
    assert reply(created)[0] == 201
    version = app_env.keyvault.set_secret("scim-token", "worker-rotated-value-0042")
    app_env.graph.service_principals[SP_ID] = {"BaseAddress": SCIM_URL, "SecretToken": "worker-rotated-value-0042"}
    genuine = json.loads(
        app_env.keyvault.event("Microsoft.KeyVault.SecretNewVersionCreated", "scim-token", version, schema=schema)
    )
    forged = dict(genuine)
    forged["source" if schema == "cloudevents" else "topic"] = (
        "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.EventGrid/topics/provisioning"
    )
    with caplog.at_level(logging.INFO):
        ignored = await worker.invoke(
            "acquire_from_event_grid", {"event": worker.pb.TypedData(json=json.dumps(forged))}
        )
    assert ignored.succeeded  # completed, never retried
    assert [o for o in outcomes() if o["trigger"] == "rotation"] == []
    assert "its topic/source is not a Key Vault resource id" in caplog.text
    applied = await worker.invoke("acquire_from_event_grid", {"event": worker.pb.TypedData(json=json.dumps(genuine))})
    assert applied.succeeded, applied.response.result.exception.message
    [rotation] = [o for o in outcomes() if o["trigger"] == "rotation"]
    assert (rotation["outcome"], rotation["connection"]) == ("succeeded", "w-kv")
