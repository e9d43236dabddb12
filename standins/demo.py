"""``python -m standins.demo`` (``make demo``): the whole pipeline offline, through the real function handlers.

Starts the stand-ins (managed identity, Key Vault, Graph) and Azurite, points the app settings at them, puts a
secret in the stand-in vault, then sends one request through the HTTP trigger and one through the queue
(enqueued as ``python -m shared enqueue`` does, handed to the queue trigger as the host would), and prints each
outcome and what each stand-in saw. It lives beside the stand-ins (``standins/``), not in ``shared/``, because it
drives ``function_app``.

It ends on its own output and leaves nothing behind: the app's clients are closed on the loop that made them, the
telemetry is exported and shut down while the ingestion stand-in still listens (so the exporter has nothing left to
retry at exit), and every temporary file (the test CA, Azurite's data, the exporter's offline storage) lives in one
folder that is removed at the end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

SP_ID = "0b9e8b8a-8f7e-4f6c-9d0a-3d3c6f6f1a11"
APP_ID = "5d3c8a2e-1f4b-4c6d-8e9f-0a1b2c3d4e5f"
SCIM_URL = "https://scim.example.com/v2"
QUEUE = "acquire-access-token"
JOB = "scim.0b9e8b8a8f7e4f6c9d0a3d3c6f6f1a11.7e4d9f3a-1c2b-4a5d-8e6f-0a1b2c3d4e5f"
SP_HELD = "3c1d2e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"  # a second connection's service principal: its job deleted too much
JOB_HELD = "scim.3c1d2e4f5a6b4c7d8e9fa0b1c2d3e4f5.1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


class _Outcomes(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(json.loads(record.getMessage().split(" ", 1)[1]))


def _sp_request(body: dict[str, Any]) -> Any:
    """``POST /api/servicePrincipals/{SP_ID}/synchronization/acquireAccessToken`` as the host hands it over."""
    import azure.functions as func

    return func.HttpRequest(
        "POST",
        f"http://localhost:7071/api/servicePrincipals/{SP_ID}/synchronization/acquireAccessToken",
        route_params={"id": SP_ID},
        headers={"Content-Type": "application/json"},
        body=json.dumps(body).encode(),
    )


def _mask(value: str) -> str:
    return value if value.startswith("https://") else f"<{len(value)} characters>"


def run_demo() -> int:
    from standins.base import scratch_folder

    # What the SDKs (the exporter's offline storage) and Azurite put in the temporary folder goes there, and goes.
    with scratch_folder("demo-") as work:
        return _demo(work)


def _shutdown_telemetry() -> None:
    """Export what is buffered and stop the exporters, once: a provider shut down drops its exit handler, which would
    otherwise export once more after the ingestion stand-in has stopped. (Shutting down exports; a flush just before
    it would collect the exporter's CPU counter twice in one clock tick, which it logs as a division by zero.)"""
    from opentelemetry import _logs, metrics, trace

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider()):
        shutdown = getattr(provider, "shutdown", None)
        if callable(shutdown) and id(provider) not in _shut_down:
            shutdown()
            _shut_down.add(id(provider))


_shut_down: set[int] = set()


def _demo(work: Path) -> int:
    from standins import Stack, TestCA

    ca = TestCA(work / "ca")
    os.environ["SSL_CERT_FILE"] = str(ca.bundle)  # before aiohttp is imported
    stack = Stack(ca)
    azurite = None
    try:
        from standins.azurite import Azurite

        azurite = Azurite()
        os.environ.update(stack.environment())
        os.environ["AzureWebJobsStorage"] = azurite.connection_string
        os.environ["REQUEST_QUEUE_NAME"] = QUEUE
        # The stand-in vault's Key Vault events name it "standin-kv", as Key Vault's own events name a vault; the app
        # trusts an event only from a vault it may use, so that vault's host is allowed too.
        os.environ["KEY_VAULT_ALLOWED_HOSTS"] = f"{stack.keyvault.host},standin-kv.vault.azure.net"
        demo_token = os.urandom(16).hex()
        # The secrets' binding tags: each version may be sent for the demo's two targets and to its SCIM endpoint only.
        stack.keyvault.default_tags = {
            "provisioning-targets": f"{SP_ID} {APP_ID} {SP_HELD}",
            "provisioning-endpoints": SCIM_URL,
        }
        stack.keyvault.set_secret("scim-token", demo_token)
        stack.graph.service_principals[SP_ID] = {"BaseAddress": SCIM_URL, "SecretToken": demo_token}
        stack.graph.applications[APP_ID] = {"BaseAddress": SCIM_URL, "SecretToken": demo_token}
        outcomes = _Outcomes()
        logging.getLogger("shared.outcome").addHandler(outcomes)
        logging.getLogger("shared.outcome").setLevel(logging.INFO)
        from standins.graph import new_job, quarantine

        stack.graph.jobs[SP_ID] = {JOB: new_job(JOB, "Quarantine", quarantine())}
        stack.graph.stored_secrets[SP_ID] = [
            {"key": "BaseAddress", "value": SCIM_URL},
            {"key": "SecretToken", "value": "the expired token"},
            {"key": "UserName", "value": "provisioning-bot"},
        ]
        os.environ["CONNECTIONS_TABLE"] = "connections"
        http_outcome, queue_report, lifecycle, rotation, refused, fleet = asyncio.run(
            _run(azurite.connection_string, outcomes, stack)
        )
        print("== 1. HTTP: POST /api/servicePrincipals/{id}/synchronization/acquireAccessToken")
        print(json.dumps(http_outcome, indent=2))
        print("\n== 2. Queue: `python -m shared enqueue`, then the queue trigger")
        print(queue_report)
        print("\n== 3. The credential lifecycle: validateCredentials, saveSecrets, restartJob (a quarantined job)")
        print(json.dumps({k: lifecycle[k] for k in ("outcome", "steps", "job", "error")}, indent=2))
        print("\n== 4. Rotation: a stored connection, a new secret version, Key Vault's event, a redelivery")
        print(rotation["report"])
        print("\n== 5. A secret goes only where its owner sends it: another address, refused before Graph is called")
        print(refused["report"])
        print("\n== 6. The fleet: the sweep fans out through the work queue; an opted-in quarantine is recovered")
        print(fleet["report"])
        _shutdown_telemetry()  # everything exported, so that the ingestion stand-in has seen it all
        _print_seen(stack)
        ok = (
            http_outcome.get("outcome") == "succeeded"
            and outcomes.seen[1]["outcome"] == "succeeded"
            and lifecycle.get("outcome") == "succeeded"
            and (lifecycle.get("job") or {}).get("quarantine") is None
            and rotation["ok"]
            and refused["ok"]
            and fleet["ok"]
            and len(stack.ingestion.events("AcquireAccessTokenOutcome")) == 6
        )
        return 0 if ok else 1
    finally:
        _shutdown_telemetry()  # if the run stopped before that: the exporters go before the stand-in they send to
        stack.stop()
        if azurite is not None:
            azurite.stop()


async def _run(
    connection_string: str, outcomes: _Outcomes, stack: Any
) -> tuple[dict[str, Any], str, dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:

    import function_app
    from shared import runtime
    from shared.queueing import enqueue
    from standins.queue_host import QueueHost

    body = {
        "credentials": [
            {"key": "BaseAddress", "value": SCIM_URL},
            {"key": "SecretToken", "secretRef": "scim-token"},
        ],
        "correlationId": "demo-http",
    }
    request = _sp_request(body)
    handler = function_app.acquire_for_service_principal.build().get_user_function()
    try:
        response = await handler(request)
        http_outcome = dict(json.loads(response.get_body()))

        host = QueueHost(connection_string, QUEUE, function_app.acquire_from_queue.build().get_user_function())
        host.create()
        queued = {
            "applicationId": APP_ID,
            "credentials": [
                {"key": "BaseAddress", "value": SCIM_URL},
                {"key": "SecretToken", "secretRef": f"{os.environ['KEY_VAULT_URI']}/secrets/scim-token"},
            ],
            "correlationId": "demo-queue",
        }
        sent = enqueue(json.dumps(queued))
        await host.drain()
        outcome = outcomes.seen[-1]
        report = (
            f"enqueued message {sent.id} on {QUEUE!r} (base64 JSON, no secret in it)\n"
            f"queue trigger outcome: {json.dumps(outcome, indent=2)}\n"
            f"left on {QUEUE!r}: {len(host.remaining())}, on {QUEUE + '-poison'!r}: {len(host.poisoned())}"
        )
        lifecycle_body = {**body, "correlationId": "demo-lifecycle"}
        lifecycle_body["steps"] = ["validateCredentials", "saveSecrets", "restartJob"]
        lifecycle_request = _sp_request(lifecycle_body)
        lifecycle = dict(json.loads((await handler(lifecycle_request)).get_body()))
        rotation = await _rotation(stack, outcomes)
        refused = await _refused(stack, handler)
        fleet = await _fleet(stack, connection_string)
        return http_outcome, report, lifecycle, rotation, refused, fleet
    finally:
        await runtime.aclose()  # the pipeline and the connection store (its Table client's session), on this loop


def _print_seen(stack: Any) -> None:
    print("\n== What each stand-in saw")
    print(f"managed identity ({stack.identity.url}):")
    for seen in stack.identity.seen:
        print(f"  {seen.method} {seen.path} resource={seen.query.get('resource')} -> {seen.status}")
    print(f"Key Vault ({stack.keyvault.url}):")
    for seen in stack.keyvault.seen:
        auth = "with bearer token" if "authorization" in seen.headers else "no token (challenge)"
        print(f"  {seen.method} {seen.path}?api-version={seen.query.get('api-version')} {auth} -> {seen.status}")
    print(f"Microsoft Graph ({stack.graph.url}):")
    for seen in stack.graph.seen:
        print(f"  {seen.method} {seen.path} -> {seen.status}")
        body = seen.json() if seen.body else None
        if isinstance(body, dict):
            for pair in body.get("credentials") or body.get("value") or []:
                print(f"    {pair['key']} = {_mask(pair['value'])}")
            if "criteria" in body:
                print(f"    criteria = {json.dumps(body['criteria'])}")
    print(f"  stored secrets now: {', '.join(s['key'] for s in stack.graph.stored_secrets.get(SP_ID, []))}")
    ingestion = stack.ingestion
    posts = [s for s in ingestion.seen if s.path.endswith("/track")]
    print(f"Application Insights ingestion ({ingestion.url}): {len(posts)} POST /v2.1/track")
    for event in ingestion.events("AcquireAccessTokenOutcome"):
        dims = event["data"]["baseData"]["properties"]
        keys = ("outcome", "trigger", "targetType", "graphStatus", "correlationId")
        print(f"  customEvent AcquireAccessTokenOutcome: {', '.join(f'{k}={dims[k]}' for k in keys if k in dims)}")
        operation = event["tags"]["ai.operation.id"]
        for dependency in ingestion.dependencies():
            data = dependency["data"]["baseData"]
            if dependency["tags"].get("ai.operation.id") == operation and data.get("type") == "HTTP":
                print(f"    dependency: {data['name']} -> {data.get('resultCode', '')}")
    names = sorted(
        {
            m["name"]
            for m in (
                ingestion.metrics("acquire_access_token.outcomes") + ingestion.metrics("acquire_access_token.duration")
            )
        }
    )
    print(f"  metrics: {', '.join(names)}")


async def _rotation(stack: Any, outcomes: _Outcomes) -> dict[str, Any]:
    """PUT a connection, set a new version of its secret, deliver Key Vault's event twice."""
    import azure.functions as func
    from azure.functions.eventgrid import EventGridEventInConverter
    from azure.functions.meta import Datum

    import function_app

    lines = []
    connection = {
        "servicePrincipalId": SP_ID,
        "credentials": [
            {"key": "BaseAddress", "value": SCIM_URL},
            {"key": "SecretToken", "secretRef": "scim-token"},
        ],
        "steps": ["saveSecrets", "restartJob"],
    }
    put = func.HttpRequest(
        "PUT",
        "http://localhost:7071/api/connections/contoso-scim",
        route_params={"name": "contoso-scim"},
        headers={"Content-Type": "application/json"},
        body=json.dumps(connection).encode(),
    )
    created = await function_app.connection.build().get_user_function()(put)
    lines.append(f"PUT /api/connections/contoso-scim -> {created.status_code}, ETag {created.headers.get('ETag')}")
    new_value = os.urandom(16).hex()
    version = stack.keyvault.set_secret("scim-token", new_value)
    stack.graph.service_principals[SP_ID] = {"BaseAddress": SCIM_URL, "SecretToken": new_value}
    lines.append(f"Key Vault: new version {version} of scim-token")
    event_json = stack.keyvault.event("Microsoft.KeyVault.SecretNewVersionCreated", "scim-token")
    handler = function_app.acquire_from_event_grid.build().get_user_function()
    before = len(stack.graph.seen)
    await handler(EventGridEventInConverter.decode(Datum(event_json, "json"), trigger_metadata={}))
    applied = stack.graph.seen[before:]
    outcome = outcomes.seen[-1]
    lines.append(
        f"Event Grid delivers SecretNewVersionCreated: outcome {outcome['outcome']} (trigger {outcome['trigger']}, "
        f"connection {outcome.get('connection')}), steps "
        + ", ".join(f"{s['name']}:{s['status']}" for s in outcome["steps"])
    )
    for seen in applied:
        lines.append(f"  Graph saw {seen.method} {seen.path.rsplit('/synchronization/', 1)[-1]} -> {seen.status}")
    saved = {s["key"]: s["value"] for s in stack.graph.stored_secrets.get(SP_ID, [])}
    lines.append(f"  the saved SecretToken is the new version's value: {saved.get('SecretToken') == new_value}")
    before = len(stack.graph.seen)
    await handler(EventGridEventInConverter.decode(Datum(event_json, "json"), trigger_metadata={}))
    lines.append(f"Event Grid redelivers the same event: Graph calls made: {len(stack.graph.seen) - before} (skipped)")
    get = func.HttpRequest(
        "GET", "http://localhost:7071/api/connections/contoso-scim", route_params={"name": "contoso-scim"}, body=b""
    )
    stored = json.loads((await function_app.connection.build().get_user_function()(get)).get_body())
    lines.append(f"GET /api/connections/contoso-scim: lastOutcome {json.dumps(stored['lastOutcome'])}")
    lines.append(f"  appliedVersions {json.dumps(stored['appliedVersions'])}")
    ok = (
        outcome["outcome"] == "succeeded"
        and saved.get("SecretToken") == new_value
        and len(stack.graph.seen) == before
        and version in [entry["version"] for entry in stored["appliedVersions"].values()]
    )
    return {"report": "\n".join(lines), "ok": ok}


async def _refused(stack: Any, handler: Any) -> dict[str, Any]:
    """The confused-deputy attempt: a caller names the demo's secret with an address of their own."""

    attacker = "https://collector.attacker.example/scim"
    body = {
        "credentials": [
            {"key": "BaseAddress", "value": attacker},
            {"key": "SecretToken", "secretRef": "scim-token"},
        ],
        "steps": ["validateCredentials"],
        "dryRun": True,
        "correlationId": "demo-attacker",
    }
    request = _sp_request(body)
    before = len(stack.graph.seen)
    response = await handler(request)
    problem = json.loads(response.get_body())
    error = problem.get("error") or {}
    calls = len(stack.graph.seen) - before
    report = "\n".join(
        [
            f"the secret's tags: {json.dumps(stack.keyvault.default_tags)}",
            f"POST with BaseAddress={attacker} and SecretToken=scim-token",
            f"  -> {response.status_code} {error.get('code')}",
            f"  {error.get('message')}",
            f"  Graph calls made: {calls}",
        ]
    )
    ok = response.status_code == 403 and error.get("code") == "endpointNotBound" and calls == 0
    return {"report": report, "ok": ok}


def main() -> int:
    return run_demo()


async def _fleet(stack: Any, connection_string: str) -> dict[str, Any]:
    """Two quarantined connections that opted in to recovery; the sweep, then the connection-work queue."""
    import function_app
    from standins.graph import new_job, quarantine
    from standins.queue_host import QueueHost

    value = stack.keyvault.secrets["scim-token"][-1].value
    stack.graph.jobs[SP_ID] = {JOB: new_job(JOB, "Quarantine", quarantine("EncounteredQuarantineException"))}
    stack.graph.service_principals[SP_HELD] = {"BaseAddress": SCIM_URL, "SecretToken": value}
    stack.graph.jobs[SP_HELD] = {JOB_HELD: new_job(JOB_HELD, "Quarantine", quarantine("TooManyDeletes"))}
    stack.graph.stored_secrets[SP_HELD] = [{"key": "BaseAddress", "value": SCIM_URL}]
    put = function_app.connection.build().get_user_function()
    lines = []
    for name, sp in (("recover-me", SP_ID), ("deletes-held", SP_HELD)):
        body = {
            "servicePrincipalId": sp,
            "credentials": [
                {"key": "BaseAddress", "value": SCIM_URL},
                {"key": "SecretToken", "secretRef": "scim-token"},
            ],
            "recovery": True,
        }
        request = func_request("PUT", f"connections/{name}", body, {"name": name})
        lines.append(f"PUT /api/connections/{name} (recovery: true) -> {(await put(request)).status_code}")
    events = _Events()
    logging.getLogger("shared.events").addHandler(events)
    host = QueueHost(
        connection_string, os.environ["CONNECTION_QUEUE_NAME"], function_app.connection_work.build().get_user_function()
    )
    host.create()
    before = len(stack.graph.actions)
    await function_app.sweep_connections.build().get_user_function()(None)
    lines.append(
        f"the sweep timer enqueued {len(host.remaining())} check(s) on {os.environ['CONNECTION_QUEUE_NAME']!r}"
    )
    await host.drain()
    logging.getLogger("shared.events").removeHandler(events)
    for event in events.named("ConnectionHealth"):
        lines.append(
            f"  ConnectionHealth {event['connection']}: {event.get('statusCode')}, "
            f"{event.get('quarantineReason', 'no quarantine')}, healthScore {event.get('healthScore')}"
        )
    for event in events.named("ConnectionRecovery"):
        lines.append(
            f"  ConnectionRecovery {event['connection']}: {event['reason']} -> {event['playbook']}: {event['result']}"
        )
    actions = list(stack.graph.actions[before:])
    for action, sp, _job, detail in actions:
        lines.append(
            f"  Graph: {action} on {'recover-me' if sp == SP_ID else 'deletes-held'}"
            + (f" ({detail})" if action == "restart" else "")
        )
    recovered = stack.graph.jobs[SP_ID][JOB]["status"]["quarantine"] is None
    held = stack.graph.jobs[SP_HELD][JOB_HELD]["status"]["quarantine"] is not None
    lines.append(f"recover-me out of quarantine: {recovered}; deletes-held left to a person: {held}")
    untouched = not any(sp == SP_HELD for _, sp, _, _ in actions)
    return {"report": "\n".join(lines), "ok": recovered and held and untouched}


class _Events(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        name, _, text = record.getMessage().partition(" ")
        self.seen.append((name, json.loads(text)))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [event for seen, event in self.seen if seen == name]


def func_request(method: str, route: str, body: Any, route_params: dict[str, str]) -> Any:
    import azure.functions as func

    return func.HttpRequest(
        method,
        f"http://localhost:7071/api/{route}",
        route_params=route_params,
        headers={"Content-Type": "application/json"},
        body=json.dumps(body).encode(),
    )


if __name__ == "__main__":
    raise SystemExit(main())
