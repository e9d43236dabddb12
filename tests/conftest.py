"""Shared fixtures: one stand-in stack per session, the app pointed at it through its settings.

The test CA bundle must be in ``SSL_CERT_FILE`` before aiohttp is imported (it builds its default TLS context
at import), so it is made here, when pytest loads this file.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from standins import Stack, TestCA

# The worker conformance suite needs the worker runtime, which needs Python 3.13: `make worker` runs it there.
collect_ignore = [] if importlib.util.find_spec("azure_functions_runtime") else ["worker"]

_CA_DIR = Path(tempfile.mkdtemp(prefix="standin-ca-"))
CA = TestCA(_CA_DIR)
os.environ["SSL_CERT_FILE"] = str(CA.bundle)
os.environ["REQUESTS_CA_BUNDLE"] = str(CA.bundle)

SP_ID = "0b9e8b8a-8f7e-4f6c-9d0a-3d3c6f6f1a11"
APP_ID = "5d3c8a2e-1f4b-4c6d-8e9f-0a1b2c3d4e5f"
UNKNOWN_ID = "99999999-9999-4999-8999-999999999999"
SCIM_URL = "https://scim.example.com/v2"
# Canary values: a test fails if any of them shows up where secrets must never be.
CANARY_TOKEN = "canary-SecretToken-7f3a9c1e5b"
CANARY_PASSWORD = "canary-Password-2d8e4f6a0c"
CANARIES = (CANARY_TOKEN, CANARY_PASSWORD)
# The tags that bind a secret to the test targets and the SCIM endpoint (docs/security.md, "Secret bindings"). The
# unknown id is bound too (a service principal deleted since its owner bound the secret): Graph then answers 404.
BOUND_TAGS = {"provisioning-targets": f"{SP_ID}, {APP_ID} {UNKNOWN_ID}", "provisioning-endpoints": SCIM_URL}


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    stack = Stack(CA)
    yield stack
    # The exporters go before the ingestion stand-in they send to (no retries against a closed port at exit).
    from shared import telemetry

    telemetry.shutdown(5_000)
    stack.stop()
    import shutil

    shutil.rmtree(_CA_DIR, ignore_errors=True)


class _Everything(logging.Handler):
    """Keeps the text of every log record of the session (message, exception, stack)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.texts: list[str] = []
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += self._formatter.formatException(record.exc_info)
        if record.stack_info:
            text += record.stack_info
        self.texts.append(text)


@pytest.fixture(scope="session", autouse=True)
def no_canary_leaves_the_app(stack: Stack) -> Iterator[None]:
    """Across the whole suite: no canary value in any log record or in anything sent to Application Insights."""
    everything = _Everything()
    root = logging.getLogger()
    root.addHandler(everything)
    ours = logging.getLogger("shared")
    level = ours.level
    ours.setLevel(logging.DEBUG)  # every record of the app's own code, at every level
    yield
    ours.setLevel(level)
    assert everything in root.handlers, "the canary handler was detached during the session"
    root.removeHandler(everything)
    assert flushed_within(15), "telemetry did not flush: the exporter keeps finding more to send"
    sent = stack.ingestion.text(since_start=True)
    logged = "\n".join(everything.texts)
    leaked = [canary for canary in CANARIES if canary in sent or canary in logged]
    assert not leaked, f"canary values left the app (logs or telemetry): {leaked}"


def flushed_within(seconds: float) -> bool:
    """Flush telemetry in a thread, so that a flush that never returns fails a test instead of hanging the run."""
    import threading

    from shared import telemetry

    done = threading.Event()

    def flush() -> None:
        telemetry.flush(5_000)
        done.set()

    threading.Thread(target=flush, daemon=True, name="telemetry-flush").start()
    return done.wait(seconds)


@pytest.fixture
def app_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The app's settings point at the stand-ins; the stand-ins hold the usual secrets and targets.

    Each test gets the pipeline (and the token cache) a fresh Functions worker would have: the runtime is reset,
    and a new identity header per test makes sure no token of another test is used. A test that changes the
    environment after the first trigger ran calls ``runtime.reset()`` itself.
    """
    from shared import runtime

    runtime.reset()  # a fresh worker: the next trigger builds its clients from the environment set here
    stack.reset()
    stack.identity.header_secret = secrets.token_hex(16)
    for name in list(os.environ):
        if name in (
            "ALLOW_INLINE_SECRETS",
            "ALLOWED_TARGETS",
            "SECRET_BINDING",
            "REQUIRED_APP_ROLE",
            "KEY_VAULT_ALLOWED_HOSTS",
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            "AZURE_CLIENT_ID",
            "GRAPH_API_VERSION",
        ):
            monkeypatch.delenv(name)
    for name, value in stack.environment().items():
        monkeypatch.setenv(name, value)
    stack.keyvault.secrets.clear()
    stack.keyvault.forbidden.clear()
    stack.keyvault.updates.clear()
    stack.keyvault.listed.clear()
    stack.keyvault.writers = None
    # The usual secrets are bound, as their owner would bind them, to the usual targets and SCIM endpoint.
    stack.keyvault.default_tags = dict(BOUND_TAGS)
    stack.keyvault.set_secret("scim-token", CANARY_TOKEN)
    stack.keyvault.set_secret("scim-password", CANARY_PASSWORD)
    stack.graph.service_principals.clear()
    stack.graph.applications.clear()
    stack.graph.service_principals[SP_ID] = {"BaseAddress": SCIM_URL, "SecretToken": CANARY_TOKEN}
    stack.graph.applications[APP_ID] = {"BaseAddress": SCIM_URL, "SecretToken": CANARY_TOKEN}
    stack.identity.graph_roles = ["Synchronization.ReadWrite.All"]
    return stack


@pytest.fixture(scope="session", autouse=True)
async def close_the_process_pipeline() -> AsyncIterator[None]:
    """At the end, close the clients the triggers' pipeline holds, as a worker does when it stops."""
    yield
    from shared import runtime

    await runtime.aclose()


@pytest.fixture
async def pipeline(app_env: Stack) -> AsyncIterator[object]:
    from shared.runtime import build_pipeline
    from shared.settings import Settings

    built = build_pipeline(Settings.from_env())
    yield built
    await built.close()


@functools.cache
def indexed_functions() -> list[Any]:
    """The function app's functions; ``get_functions()`` may be called once per app, so once per session."""
    import function_app

    return list(function_app.app.get_functions())


@pytest.fixture(scope="session")
def app_functions() -> list[object]:
    return indexed_functions()


def request_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "servicePrincipalId": SP_ID,
        "credentials": [
            {"key": "BaseAddress", "value": SCIM_URL},
            {"key": "SecretToken", "secretRef": "scim-token"},
        ],
        "correlationId": "ticket-4711",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture(scope="session")
def azurite() -> Iterator[object]:
    from standins.azurite import Azurite

    emulator = Azurite()
    yield emulator
    emulator.stop()


@pytest.fixture
def outcomes(caplog: pytest.LogCaptureFixture) -> Callable[[], list[dict[str, object]]]:
    """The outcomes emitted so far in this test, as the telemetry logger wrote them."""
    caplog.set_level(logging.INFO, logger="shared.outcome")

    def emitted() -> list[dict[str, object]]:
        prefix = "AcquireAccessTokenOutcome "
        return [
            json.loads(r.getMessage()[len(prefix) :])
            for r in caplog.records
            if r.name == "shared.outcome" and r.getMessage().startswith(prefix)
        ]

    return emitted


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record at every level, for the canary checks."""
    caplog.set_level(logging.DEBUG)
    return caplog
