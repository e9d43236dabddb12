"""Outcome telemetry as the Azure Monitor exporter really sends it, received by the ingestion stand-in."""

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import azure.functions as func
import pytest

import function_app
from shared import telemetry
from standins import IngestionStandIn
from tests.conftest import CANARIES, SCIM_URL, SP_ID, request_body
from tests.test_cli import cli
from tests.triggers.test_http_trigger import call_sp

ROOT = Path(__file__).resolve().parent.parent.parent
CONTRACT_DIMENSIONS = {
    "outcome",
    "targetType",
    "targetId",
    "trigger",
    "graphStatus",
    "graphRequestId",
    "clientRequestId",
    "attempts",
    "durationMs",
    "correlationId",
    "credentialKeys",
}  # graphErrorCode too, when Graph answered with an error


def wait_for(found: Callable[[], list], *, seconds: float = 15) -> list:
    deadline = time.monotonic() + seconds
    while True:
        telemetry.flush()
        result = found()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def outcome_events(app_env, correlation_id: str) -> list[dict]:
    return [
        e
        for e in app_env.ingestion.events("AcquireAccessTokenOutcome")
        if e["data"]["baseData"]["properties"].get("correlationId") == correlation_id
    ]


async def test_each_outcome_is_one_custom_event_with_the_outcome_fields_as_dimensions(app_env):
    response = await call_sp(request_body(servicePrincipalId=None, correlationId="telemetry-ok"))
    outcome = json.loads(response.get_body())
    [event] = wait_for(lambda: outcome_events(app_env, "telemetry-ok"))
    assert event["name"] == "Microsoft.ApplicationInsights.Event"
    assert event["data"]["baseData"]["name"] == "AcquireAccessTokenOutcome"
    dims = event["data"]["baseData"]["properties"]
    assert set(dims) >= CONTRACT_DIMENSIONS
    assert dims["outcome"] == "succeeded"
    assert (dims["targetType"], dims["targetId"], dims["trigger"]) == ("servicePrincipal", SP_ID, "http")
    assert (dims["graphStatus"], dims["attempts"]) == ("204", "1")
    assert dims["graphRequestId"] == outcome["graph"]["requestId"]
    assert dims["clientRequestId"] == outcome["graph"]["clientRequestId"]
    assert dims["credentialKeys"] == "BaseAddress,SecretToken"
    assert float(dims["durationMs"]) > 0


async def test_graph_key_vault_and_token_calls_are_dependencies_of_the_request(app_env):
    await call_sp(request_body(servicePrincipalId=None, correlationId="telemetry-deps"))
    [event] = wait_for(lambda: outcome_events(app_env, "telemetry-deps"))
    operation = event["tags"]["ai.operation.id"]

    def in_operation() -> list[dict]:
        deps = [d for d in app_env.ingestion.dependencies() if d["tags"].get("ai.operation.id") == operation]
        names = {d["data"]["baseData"]["name"] for d in deps}
        return (
            deps
            if any("acquireAccessToken" in n for n in names)
            and any("/msi/token" in n for n in names)
            and any("/secrets/" in n for n in names)
            else []
        )

    deps = wait_for(in_operation)
    by_name = {d["data"]["baseData"]["name"]: d["data"]["baseData"] for d in deps}
    graph = by_name[f"POST /v1.0/servicePrincipals/{SP_ID}/synchronization/acquireAccessToken"]
    assert (graph["type"], graph["resultCode"], graph["target"]) == ("HTTP", "204", app_env.graph.host_port)
    assert by_name["GET /secrets/scim-token/"]["resultCode"] == "200"
    assert by_name["GET /msi/token"]["resultCode"] == "200"
    assert "AcquireAccessToken" in by_name  # the request's own span, the parent of the calls


async def test_a_rejection_carries_graphs_error_code(app_env):
    app_env.graph.service_principals[SP_ID] = {"SecretToken": "other"}
    await call_sp(request_body(servicePrincipalId=None, correlationId="telemetry-rejected"))
    [event] = wait_for(lambda: outcome_events(app_env, "telemetry-rejected"))
    dims = event["data"]["baseData"]["properties"]
    assert (dims["outcome"], dims["graphStatus"]) == ("rejected", "400")
    assert dims["graphErrorCode"] == dims["errorCode"] == "CredentialValidationUnavailable"


async def test_outcome_count_and_duration_metrics_arrive(app_env):
    await call_sp(request_body(servicePrincipalId=None, correlationId="telemetry-metrics", dryRun=True))

    def validated(name: str) -> Callable[[], list]:
        return lambda: [
            m for m in app_env.ingestion.metrics(name) if m["properties"] == {"outcome": "validated", "trigger": "http"}
        ]

    [*_, counter] = wait_for(validated("acquire_access_token.outcomes"), seconds=20)
    assert counter["value"] >= 1
    [*_, duration] = wait_for(validated("acquire_access_token.duration"), seconds=20)
    assert duration["count"] >= 1
    assert duration["value"] > 0


async def test_no_canary_value_is_ever_sent_to_application_insights(app_env):
    await call_sp(request_body(servicePrincipalId=None, correlationId="telemetry-canary"))
    await call_sp({"credentials": [{"key": "Password", "value": CANARIES[1]}], "correlationId": "telemetry-canary"})
    wait_for(lambda: outcome_events(app_env, "telemetry-canary")[1:])
    sent = app_env.ingestion.text()
    assert "telemetry-canary" in sent
    for canary in CANARIES:
        assert canary not in sent


def run_cli(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    credentials = ["--credential", f"BaseAddress={SCIM_URL}", "--credential", "SecretToken=@scim-token"]
    return cli("acquire", "--service-principal", SP_ID, *credentials, "--correlation-id", env["CORRELATION"], env=env)


def test_the_cli_sends_its_outcome_before_it_exits(app_env):
    result = run_cli({**os.environ, "CORRELATION": "telemetry-cli"})
    assert result.returncode == 0, result.stderr
    [event] = wait_for(lambda: outcome_events(app_env, "telemetry-cli"), seconds=5)
    assert event["data"]["baseData"]["properties"]["trigger"] == "cli"


@pytest.mark.parametrize("client_id", [None, "user-assigned"])
def test_identity_based_ingestion_sends_a_bearer_token_for_azure_monitor(app_env, monkeypatch, client_id):
    # An Application Insights resource with local auth off: no token, no ingestion.
    ingestion = IngestionStandIn(app_env.identity, app_env.ca.server_context()).start()
    ingestion.require_token = True
    correlation = f"telemetry-aad-{client_id}"
    env = {
        **os.environ,
        "CORRELATION": correlation,
        "APPLICATIONINSIGHTS_CONNECTION_STRING": ingestion.connection_string,
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD",
    }
    if client_id:
        monkeypatch.setattr(app_env.identity, "user_assigned", True)
        env["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] += f";ClientId={app_env.identity.client_id}"
        env["AZURE_CLIENT_ID"] = app_env.identity.client_id
    try:
        result = run_cli(env)
        assert result.returncode == 0, result.stderr
        [event] = ingestion.events("AcquireAccessTokenOutcome")
        assert event["data"]["baseData"]["properties"]["correlationId"] == correlation
        tracks = [s for s in ingestion.seen if s.path.endswith("/track")]
        assert tracks
        assert {s.status for s in tracks} == {200}
        assert all(s.headers["authorization"].startswith("Bearer ") for s in tracks)
        assert "https://monitor.azure.com/" in app_env.identity.issued
    finally:
        ingestion.stop()


async def test_queue_and_event_grid_outcomes_are_events_too(app_env):
    from azure.functions.queue import QueueMessage

    queue_body = json.dumps(request_body(correlationId="telemetry-queue", dryRun=True)).encode()
    await function_app.acquire_from_queue.build().get_user_function()(
        QueueMessage(id="m-1", body=queue_body, dequeue_count=2, pop_receipt="p")
    )
    await function_app.acquire_from_event_grid.build().get_user_function()(
        func.EventGridEvent(
            id="e-1",
            data=request_body(correlationId="telemetry-eventgrid", dryRun=True),
            topic="t",
            subject="s",
            event_type="Provisioning.AcquireAccessTokenRequested",
            event_time=None,
            data_version="1.0",
        )
    )
    [queued] = wait_for(lambda: outcome_events(app_env, "telemetry-queue"))
    assert {k: queued["data"]["baseData"]["properties"][k] for k in ("trigger", "dequeueCount", "outcome")} == {
        "trigger": "queue",
        "dequeueCount": "2",
        "outcome": "validated",
    }
    [event] = wait_for(lambda: outcome_events(app_env, "telemetry-eventgrid"))
    assert event["data"]["baseData"]["properties"]["trigger"] == "eventGrid"
