"""Schemathesis against the served OpenAPI 3.1 document: every operation, positive and negative data, a fixed seed.

A small WSGI adapter plays the Functions host for HTTP: it matches the route, hands the request to the decorated
function as an ``azure.functions.HttpRequest`` (route params, query, headers) and returns its reply; the function
key is the host's business and is not checked here. The app runs against the stand-ins and Azurite. Schemathesis'
checks: no 5xx but the documented ones, every status documented, every reply's content type and body matching the
document, data the document calls valid accepted and data it calls invalid refused.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import threading
from urllib.parse import parse_qsl

import azure.functions as func
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

import function_app
from tests.conftest import indexed_functions

FUNCTION_KEY = "schemathesis-function-key"
ROUTES: list[tuple[re.Pattern[str], str, set[str], bool]] = []
for function in indexed_functions():
    trigger = function.get_trigger()
    if trigger.type != "httpTrigger":
        continue
    pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(trigger.route))
    methods = {getattr(m, "value", m) for m in trigger.methods}
    anonymous = getattr(trigger.auth_level, "value", trigger.auth_level) == "anonymous"
    ROUTES.append((re.compile(f"^/api/{pattern}$"), function.get_function_name(), methods, anonymous))


class _Loop:
    """One event loop in its own thread for the handlers, as the worker keeps one."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True, name="functions-host").start()

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)


LOOP = _Loop()


def host(environ, start_response):
    """WSGI: route, build the HttpRequest the worker would, call the function, return its reply."""
    path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    for pattern, name, methods, anonymous in ROUTES:
        match = pattern.match(path)
        if match and method in methods:
            if not anonymous and FUNCTION_KEY not in (headers.get("x-functions-key"), query.get("code")):
                start_response("401 Unauthorized", [("Content-Length", "0")])  # the host, before any function
                return [b""]
            request = func.HttpRequest(
                method,
                f"https://app.example{path}",
                headers=headers,
                params=query,
                route_params=match.groupdict(),
                body=body,
            )
            handler = getattr(function_app, name).build().get_user_function()
            result = handler(request)
            response = LOOP.run(result) if inspect.isawaitable(result) else result
            reply_headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-type"]
            reply_headers.append(("Content-Type", response.mimetype))
            start_response(f"{response.status_code} X", reply_headers)
            return [response.get_body()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such route in the function app"]


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


@pytest.fixture
def api_env(app_env, azurite, monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("CONNECTIONS_TABLE", "schemathesis")
    monkeypatch.setenv("GRAPH_MAX_ATTEMPTS", "1")
    return app_env


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_the_app_does_what_its_openapi_document_says(case, api_env):
    from schemathesis.specs.openapi.checks import positive_data_acceptance, unsupported_method

    # The Functions host answers a method a route does not take with 404, before the app: not the app's to change.
    excluded = [unsupported_method]
    if not filter_body(None, case.body):
        excluded.append(positive_data_acceptance)  # a repeated key: a 400 the schema cannot foresee (see above)
    case.call_and_validate(headers={"x-functions-key": FUNCTION_KEY}, excluded_checks=excluded)
