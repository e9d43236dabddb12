"""The KQL queries and the workbook follow what the app really emits."""

import importlib.util
import json
import re
from pathlib import Path

from shared.graph import GraphCall
from shared.outcome import Outcome
from shared.request import Target
from shared.sweep import Health, job_health
from shared.telemetry import dimensions

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"


def build_workbook_module():
    spec = importlib.util.spec_from_file_location("build_workbook", DOCS / "build_workbook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_workbook_is_built_from_the_queries_and_up_to_date():
    assert json.loads((DOCS / "workbook.json").read_text()) == build_workbook_module().workbook()


def test_every_dimension_a_query_reads_is_one_the_app_emits():
    full = Outcome(
        outcome="failed",
        trigger="queue",
        target=Target(type="application", id="x"),
        credential_keys=["Url"],
        graph=GraphCall(
            status=503, request_id="r", client_request_id="c", error_code="serviceNotAvailable", attempts=4
        ),
        correlation_id="c",
        duration_ms=1.0,
        retryable=True,
        error_code="e",
        error_message="m",
        dequeue_count=1,
    )
    emitted = set(dimensions(full)) | {"steps", "jobStatus", "connection"}
    emitted |= set(Health(connection="c", job=job_health({}), health_score=1).properties())
    emitted |= {"reason", "playbook", "result", "kind", "dequeueCount", "errorCode"}  # recovery, work failures
    emitted |= {"connection", "vault", "secret", "expires", "expired", "eventType"}  # SecretExpiryWarning
    emitted |= {"change", "by", "byObjectId", "target", "hostsBefore", "hostsAfter", "secretsBefore", "secretsAfter"}
    queries = sorted((DOCS / "queries").glob("*.kql"))
    assert len(queries) == 9
    for path in queries:
        text = path.read_text()
        events = "AcquireAccessTokenOutcome|ConnectionHealth|SecretExpiryWarning|ConnectionChanged|ConnectionRecovery"
        assert re.search(rf'name (==|in) \(?"({events})"', text)
        used = set(re.findall(r"customDimensions\.(\w+)", text))
        assert used, path.name
        assert used <= emitted, f"{path.name} reads dimensions the app never emits: {used - emitted}"


def test_the_expiry_warning_carries_what_the_queries_read(caplog):
    import logging

    from shared.rotation import KeyVaultEvent, _warn_expiry

    with caplog.at_level(logging.INFO, logger="shared.events"):
        _warn_expiry(KeyVaultEvent("Microsoft.KeyVault.SecretExpired", None, "https://kv", "s", None, "2030"), "c")
    [record] = caplog.records
    assert {"connection", "secret", "expires"} <= set(json.loads(record.getMessage().split(" ", 1)[1]))
