"""`make serve`: the app's HTTP routes on localhost against the stand-ins, and the host adapter it shares with the
Schemathesis suite.

End to end, ``python -m standins.serve`` runs as a user runs it: the documented example with a tagged secret answers
200 succeeded, a keyed route without the key 401, health without a key 200; Ctrl-C (SIGINT) ends it with no child
process left (Azurite) and nothing left in its temporary folder. In process, the adapter is checked for what the host
does: route params from the route template, the key as header or ``?code=``, case-insensitive routes, 404 for a method
a route does not take.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import APP_ID, SCIM_URL, SP_ID, request_body

ROOT = Path(__file__).resolve().parents[1]
ROUTE_BODY = {
    "credentials": [{"key": "BaseAddress", "value": SCIM_URL}, {"key": "SecretToken", "secretRef": "scim-token"}],
    "correlationId": "ticket-4711",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid``, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, object]]:
    port = _free_port()
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")}
    env["TMPDIR"] = str(tmpdir)
    process = subprocess.Popen(
        [sys.executable, "-m", "standins.serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    banner: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        banner.append(line)
        if line.startswith("Ctrl-C"):
            break
    base = f"http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/api/health", timeout=2)
            break
        except httpx.TransportError:
            time.sleep(0.2)
    try:
        yield {"process": process, "banner": "".join(banner), "base": base, "tmpdir": tmpdir}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _exported(banner: str) -> dict[str, str]:
    [line] = [line for line in banner.splitlines() if line.strip().startswith("export ")]
    return dict(pair.split("=", 1) for pair in line.split()[1:])


def test_make_serve_answers_the_documented_example_and_stops_cleanly_on_ctrl_c(served):
    process, base, banner = served["process"], served["base"], served["banner"]
    assert process.poll() is None, process.stderr.read()
    assert "func start" in banner  # the real host is named
    exported = _exported(banner)
    key = exported["FUNCTION_KEY"]
    assert exported["SP_ID"] == SP_ID
    assert [line for line in banner.splitlines() if line.strip().startswith("curl ") and key in line]

    url = f"{base}/api/servicePrincipals/{SP_ID}/synchronization/acquireAccessToken"
    answer = httpx.post(url, headers={"x-functions-key": key}, json=ROUTE_BODY, timeout=60)
    assert answer.status_code == 200, answer.text
    outcome = answer.json()
    assert (outcome["outcome"], outcome["graph"]["status"], outcome["correlationId"]) == (
        "succeeded",
        204,
        "ticket-4711",
    )

    refused = httpx.post(url, json=ROUTE_BODY, timeout=30)
    assert refused.status_code == 401
    assert httpx.post(url, headers={"x-functions-key": key + "x"}, json=ROUTE_BODY, timeout=30).status_code == 401

    health = httpx.get(f"{base}/api/health", timeout=30)
    assert (health.status_code, health.json()["status"]) == (200, "healthy")

    children = _descendants(process.pid)
    assert children, "Azurite runs as child processes of make serve"
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0, process.stderr.read()
    assert [pid for pid in children if _alive(pid)] == []
    assert list(served["tmpdir"].iterdir()) == []


@pytest.fixture
def client(app_env, azurite, monkeypatch) -> Iterator[httpx.Client]:
    from standins.serve import FunctionsHost

    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("CONNECTIONS_TABLE", "serveadapter")
    host = FunctionsHost("the-function-key")
    try:
        with httpx.Client(transport=httpx.WSGITransport(app=host), base_url="http://localhost:7071") as http:
            yield http
    finally:
        host.close()  # the app's clients, on the loop that made them


def test_the_adapter_takes_the_function_key_as_the_host_does(client):
    path = "/api/acquireAccessToken"
    assert client.post(path, json=request_body(dryRun=True)).status_code == 401
    assert client.post(path, json=request_body(dryRun=True), params={"code": "wrong"}).status_code == 401
    by_query = client.post(path, json=request_body(dryRun=True), params={"code": "the-function-key"})
    assert (by_query.status_code, by_query.json()["outcome"]) == (200, "validated")
    by_header = client.post(path, json=request_body(dryRun=True), headers={"x-functions-key": "the-function-key"})
    assert (by_header.status_code, by_header.json()["outcome"]) == (200, "validated")
    assert client.get("/api/openapi.json").status_code == 200  # anonymous


def test_the_adapter_fills_route_params_from_the_route_template(client):
    headers = {"x-functions-key": "the-function-key"}
    body = {**ROUTE_BODY, "dryRun": True}
    answer = client.post(f"/api/applications/{APP_ID}/synchronization/acquireAccessToken", headers=headers, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["target"] == {"type": "application", "id": APP_ID}
    # Routes match without regard to case, as the host's do; a method a route does not take is the host's 404.
    upper = client.post(
        f"/API/servicePrincipals/{SP_ID}/SYNCHRONIZATION/acquireAccessToken", headers=headers, json=body
    )
    assert (upper.status_code, upper.json()["target"]["id"]) == (200, SP_ID)
    assert client.delete("/api/health", headers=headers).status_code == 404
    assert client.get("/api/nowhere", headers=headers).status_code == 404


def test_the_adapter_serves_a_connection_round_trip(client):
    headers = {"x-functions-key": "the-function-key", "If-None-Match": "*"}
    stored = {**request_body(), "steps": ["acquireAccessToken"]}
    stored.pop("correlationId")
    created = client.put("/api/connections/contoso-scim", headers=headers, content=json.dumps(stored))
    assert created.status_code == 201, created.text
    got = client.get("/api/connections/contoso-scim", headers={"x-functions-key": "the-function-key"})
    assert (got.status_code, got.json()["name"], got.json()["request"]["servicePrincipalId"]) == (
        200,
        "contoso-scim",
        SP_ID,
    )
