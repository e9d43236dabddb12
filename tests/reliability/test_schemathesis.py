"""Schemathesis against the served OpenAPI 3.1 document: every operation, positive and negative data, a fixed seed.

The app is served by the same WSGI adapter as ``make serve`` (``standins.serve.FunctionsHost``): it matches the route,
checks the function key as the host does (401 before any function), hands the request to the decorated function as
an ``azure.functions.HttpRequest`` (route params, query, headers) and returns its reply. The app runs against the
stand-ins and Azurite. Schemathesis' checks: no 5xx but the documented ones, every status documented, every reply's
content type and body matching the document, data the document calls valid accepted and data it calls invalid
refused.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from standins.serve import FunctionsHost

FUNCTION_KEY = "schemathesis-function-key"
host = FunctionsHost(FUNCTION_KEY)


CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 4711,
        "checks": {
            # 404 (target or connection unknown), 412 (ETags) and 422 (a secret that is not in Key Vault) depend on
            # what exists, not on the request's shape: valid data may meet them.
            "positive_data_acceptance": {"expected-statuses": ["2xx", "304", "403", "404", "412", "422", "503"]},
        },
        "generation": {"max-examples": 25},
    }
)
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", host, config=CONFIG)


@schema.hook
def filter_body(ctx, body) -> bool:
    """The one rule JSON Schema cannot state (a credential key at most once across the items) is in the documents'
    descriptions; generated bodies that break it are left out rather than counted as valid."""
    credentials = body.get("credentials") if isinstance(body, dict) else None
    if not isinstance(credentials, list):
        return True
    keys = [item.get("key") for item in credentials if isinstance(item, dict)]
    return len(keys) == len({json.dumps(key) for key in keys})


@pytest.fixture(scope="module", autouse=True)
def close_the_host():
    """At the end, the app's clients made on the host's loop are closed there, as a worker does when it stops."""
    yield
    host.close()


@pytest.fixture
def api_env(app_env, azurite, monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("CONNECTIONS_TABLE", "schemathesis")
    monkeypatch.setenv("GRAPH_MAX_ATTEMPTS", "1")
    # A deployment as the infra leaves it, so that the deep health check (?deep=true) finds what it checks.
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient

    queues = QueueServiceClient.from_connection_string(azurite.connection_string)
    for name in ("acquire-access-token", "connection-work"):
        try:
            queues.create_queue(name)
        except Exception:  # noqa: S110 - already there
            pass
    TableServiceClient.from_connection_string(azurite.connection_string).create_table_if_not_exists("schemathesis")
    return app_env


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_the_app_does_what_its_openapi_document_says(case, api_env):
    from schemathesis.specs.openapi.checks import positive_data_acceptance, unsupported_method

    # The Functions host answers a method a route does not take with 404, before the app: not the app's to change.
    excluded = [unsupported_method]
    if not filter_body(None, case.body):
        excluded.append(positive_data_acceptance)  # a repeated key: a 400 the schema cannot foresee (see above)
    if (case.query or {}).get("continuationToken"):
        # A token is good only if a page gave it (it carries a check of the name it starts at): a made-up one of
        # the right shape is a 400 the schema cannot foresee.
        excluded.append(positive_data_acceptance)
    case.call_and_validate(headers={"x-functions-key": FUNCTION_KEY}, excluded_checks=excluded)
