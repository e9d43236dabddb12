"""Every fault of Graph, Key Vault and the identity endpoint, through the real clients and every trigger.

Each row says how the fault ends: the outcome and whether it is retryable, the HTTP status (with Retry-After where
a retry may help), what the queue does with the message (completed, or raised for the host to retry), and the
error code. Every run must emit exactly one outcome.
"""

import json
import socket
from dataclasses import dataclass, field

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage

import function_app
from shared.triggers import RetryableFailure
from standins.base import Reply
from tests.conftest import SP_ID, request_body


@dataclass
class Fault:
    name: str
    graph: list[Reply] = field(default_factory=list)
    keyvault: list[Reply] = field(default_factory=list)
    setup: str | None = None
    outcome: str = "failed"
    status: int = 503
    code: str | None = None


def graph_error(status: int, code: str, headers: dict | None = None) -> Reply:
    return Reply(status, {"error": {"code": code, "message": f"{code} from Graph"}}, headers or {})


def kv_error(status: int, code: str, inner: str | None = None, headers: dict | None = None) -> Reply:
    error: dict = {"code": code, "message": f"{code} from Key Vault"}
    if inner:
        error["innererror"] = {"code": inner}
    return Reply(status, {"error": error}, headers or {})


THROTTLED = graph_error(429, "TooManyRequests", {"Retry-After": "0"})
FAULTS = [
    Fault("graph 429 with Retry-After, then 204", graph=[THROTTLED], outcome="succeeded", status=200),
    Fault(
        "graph 429 without Retry-After, then 204",
        graph=[graph_error(429, "TooManyRequests")],
        outcome="succeeded",
        status=200,
    ),
    Fault("graph 429 on every attempt", graph=[THROTTLED] * 4, code="TooManyRequests"),
    Fault(
        "graph 429 with a Retry-After too long to wait",
        graph=[graph_error(429, "TooManyRequests", {"Retry-After": "3600"})],
        code="TooManyRequests",
    ),
    Fault("graph 500 once", graph=[graph_error(500, "InternalServerError")], outcome="succeeded", status=200),
    Fault(
        "graph 500 on every attempt", graph=[graph_error(500, "InternalServerError")] * 4, code="InternalServerError"
    ),
    Fault("graph 503 on every attempt", graph=[graph_error(503, "ServiceUnavailable")] * 4, code="ServiceUnavailable"),
    Fault("graph times out on every attempt", graph=[Reply(204, delay=1.5)] * 4, code="graphUnreachable"),
    Fault("graph resets the connection once", graph=[Reply(0, reset=True)], outcome="succeeded", status=200),
    Fault("graph resets the connection on every attempt", graph=[Reply(0, reset=True)] * 4, code="graphUnreachable"),
    Fault(
        "graph 502 with an HTML body on every attempt",
        graph=[Reply(502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"})] * 4,
        code="graphUnavailable",
    ),
    Fault(
        "graph 400 with a body that is not JSON",
        graph=[Reply(400, b"not json", {"Content-Type": "text/plain"})],
        outcome="rejected",
        status=422,
        code="graph400",
    ),
    Fault(
        "graph 400 with Graph's error",
        graph=[graph_error(400, "BadRequest")],
        outcome="rejected",
        status=422,
        code="BadRequest",
    ),
    Fault(
        "graph 403",
        graph=[graph_error(403, "Authorization_RequestDenied")],
        status=502,
        code="Authorization_RequestDenied",
    ),
    Fault(
        "graph 401",
        graph=[graph_error(401, "InvalidAuthenticationToken")],
        status=502,
        code="InvalidAuthenticationToken",
    ),
    Fault(
        "graph 404",
        graph=[graph_error(404, "Request_ResourceNotFound")],
        outcome="rejected",
        status=404,
        code="Request_ResourceNotFound",
    ),
    Fault(
        "key vault 403 (RBAC)",
        keyvault=[kv_error(403, "Forbidden", "ForbiddenByRbac")],
        status=502,
        code="ForbiddenByRbac",
    ),
    Fault(
        "key vault 404",
        keyvault=[kv_error(404, "SecretNotFound")],
        outcome="rejected",
        status=422,
        code="SecretNotFound",
    ),
    Fault(
        "key vault disabled secret",
        keyvault=[kv_error(403, "Forbidden", "SecretDisabled")],
        outcome="rejected",
        status=422,
        code="SecretDisabled",
    ),
    Fault(
        "key vault 429 on every attempt",
        keyvault=[kv_error(429, "Throttled", headers={"Retry-After": "0"})] * 3,
        code="Throttled",
    ),
    Fault(
        "key vault 429 once",
        keyvault=[kv_error(429, "Throttled", headers={"Retry-After": "0"})],
        outcome="succeeded",
        status=200,
    ),
    Fault("key vault 500 on every attempt", keyvault=[kv_error(500, "InternalError")] * 3, code="InternalError"),
    Fault("identity endpoint down", setup="identity-down", status=502, code="tokenUnavailable"),
    Fault("identity endpoint refuses", setup="identity-refuses", status=502, code="tokenUnavailable"),
]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def faulty(app_env, monkeypatch):
    monkeypatch.setenv("GRAPH_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("SECRET_CACHE_SECONDS", "0")

    def arm(fault: Fault) -> None:
        if fault.setup == "identity-down":
            monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{closed_port()}/msi/token")
        elif fault.setup == "identity-refuses":
            monkeypatch.setenv("IDENTITY_HEADER", "not-the-header")
        app_env.reset()
        # The first Key Vault request of a fresh client is the 401 challenge; the faults answer the real reads.
        app_env.keyvault.fail_next()
        app_env.graph.fail_next(*fault.graph)
        if fault.keyvault:
            original = app_env.keyvault.handle
            pending = list(fault.keyvault)

            def handle(seen):
                if "authorization" in seen.headers and pending:
                    return pending.pop(0)
                return original(seen)

            monkeypatch.setattr(app_env.keyvault, "handle", handle)

    return arm


def check(outcome: dict, fault: Fault) -> None:
    assert outcome["outcome"] == fault.outcome, outcome
    assert outcome["retryable"] is (fault.outcome == "failed")
    if fault.code:
        assert outcome["error"]["code"] == fault.code, outcome


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_over_http(faulty, outcomes, fault):
    faulty(fault)
    body = json.dumps(request_body(servicePrincipalId=None)).encode()
    request = func.HttpRequest(
        "POST",
        f"https://app.example/api/servicePrincipals/{SP_ID}/synchronization/acquireAccessToken",
        route_params={"id": SP_ID},
        body=body,
    )
    response = await function_app.acquire_for_service_principal.build().get_user_function()(request)
    assert response.status_code == fault.status, response.get_body()
    payload = json.loads(response.get_body())
    check(payload, fault)
    if fault.status == 503:
        assert int(response.headers["Retry-After"]) >= 1
    assert len(outcomes()) == 1


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_from_the_queue(faulty, outcomes, fault):
    faulty(fault)
    message = QueueMessage(id="m", body=json.dumps(request_body()).encode(), dequeue_count=1, pop_receipt="p")
    handler = function_app.acquire_from_queue.build().get_user_function()
    if fault.outcome == "failed":
        with pytest.raises(RetryableFailure):  # the host retries, then moves it to the poison queue
            await handler(message)
    else:
        assert await handler(message) is None  # the host completes the message
    [outcome] = outcomes()
    check(outcome, fault)
    assert outcome["dequeueCount"] == 1
