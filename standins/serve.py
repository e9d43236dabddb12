"""``python -m standins.serve`` (``make serve``): the app's HTTP routes on localhost, against the stand-ins.

The Functions host (Core Tools' ``func start``) is the real host and cannot run on every machine; this plays its HTTP
part for the app's own decorated functions and nothing more, so that every documented request can be sent with
``curl``. :class:`FunctionsHost` is that part, a WSGI application, and ``tests/reliability/test_schemathesis.py``
drives the same one:

- the routes are the HTTP triggers' route templates under ``/api`` (``{id}`` matches one path segment), matched
  without regard to case as the host matches them; a method a route does not take is a 404, as from the host;
- a route at auth level FUNCTION needs the function key, as ``x-functions-key`` or ``?code=``, else 401 before any
  function runs; anonymous routes need nothing;
- the function gets the ``azure.functions.HttpRequest`` the worker would build (method, URL, headers, query, route
  params, body) and its reply is sent as it is; async functions run on one event loop of their own, as the worker
  keeps one.

``main`` starts the stand-ins (managed identity, Key Vault, Graph, Application Insights ingestion) and Azurite, points
the app settings at them, puts a secret tagged with its bindings in the stand-in vault and a service principal,
an application and a quarantined job in the Graph stand-in, then serves with hypercorn until Ctrl-C (SIGINT) or
SIGTERM, and stops everything it started: the app's clients, the telemetry, the stand-ins, Azurite and the one
temporary folder that holds the test CA, Azurite's data and the exporter's offline storage.
"""

from __future__ import annotations

import argparse
import asyncio
import http
import inspect
import json
import os
import re
import secrets
import signal
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

SP_ID = "0b9e8b8a-8f7e-4f6c-9d0a-3d3c6f6f1a11"
APP_ID = "5d3c8a2e-1f4b-4c6d-8e9f-0a1b2c3d4e5f"
SCIM_URL = "https://scim.example.com/v2"
JOB = "scim.0b9e8b8a8f7e4f6c9d0a3d3c6f6f1a11.7e4d9f3a-1c2b-4a5d-8e6f-0a1b2c3d4e5f"
SECRET = "scim-token"
ROUTE_PREFIX = "/api"

WsgiStart = Callable[[str, list[tuple[str, str]]], object]


@dataclass(frozen=True)
class Route:
    name: str  # the decorated function's name in function_app
    pattern: re.Pattern[str]
    template: str
    methods: frozenset[str]
    anonymous: bool


def http_routes() -> list[Route]:
    """The app's HTTP functions, read from the decorated functions themselves (``function_app.<name>.build()``).

    ``app.get_functions()`` is left alone (the worker calls it once per app): an HTTP trigger without an auth level of
    its own takes the app's, as the host indexes it."""
    import azure.functions as func
    from azure.functions.decorators.function_app import FunctionBuilder

    import function_app

    routes = []
    for name, builder in vars(function_app).items():
        if not isinstance(builder, FunctionBuilder):
            continue
        trigger: Any = builder.build().get_trigger()
        if trigger.type != "httpTrigger":
            continue
        level = trigger.auth_level or function_app.app.auth_level
        segments = re.sub(r"\\\{(\w+)(?::[^}]*)?\\\}", r"(?P<\1>[^/]+)", re.escape(trigger.route))
        routes.append(
            Route(
                name=name,
                pattern=re.compile(f"^{ROUTE_PREFIX}/{segments}/?$", re.IGNORECASE),
                template=f"{ROUTE_PREFIX}/{trigger.route}",
                methods=frozenset(str(getattr(m, "value", m)).upper() for m in trigger.methods or ("GET", "POST")),
                anonymous=getattr(level, "value", level) == func.AuthLevel.ANONYMOUS.value,
            )
        )
    return routes


class _Loop:
    """One event loop in a thread of its own for the functions, as the worker keeps one."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="functions-host")
        self._thread.start()

    def run(self, awaitable: Awaitable[Any], timeout: float = 120) -> Any:
        async def wait() -> Any:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wait(), self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class FunctionsHost:
    """WSGI: route, check the function key, build the ``HttpRequest`` the worker would, call the function, reply."""

    def __init__(self, function_key: str) -> None:
        self.function_key = function_key
        self.routes = http_routes()
        self._loop = _Loop()

    def __call__(self, environ: dict[str, Any], start_response: WsgiStart) -> Iterable[bytes]:
        import azure.functions as func

        import function_app

        path, method = environ.get("PATH_INFO") or "/", environ["REQUEST_METHOD"].upper()
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(name):
                headers[name.replace("_", "-").lower()] = environ[name]
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        for route in self.routes:
            match = route.pattern.match(path)
            if not match or method not in route.methods:
                continue
            if not route.anonymous and not self._key_matches(headers.get("x-functions-key"), query.get("code")):
                start_response("401 Unauthorized", [("Content-Length", "0")])  # the host, before any function runs
                return [b""]
            host = headers.get("host") or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT')}"
            qs = environ.get("QUERY_STRING")
            request = func.HttpRequest(
                method,
                f"http://{host}{path}{'?' + qs if qs else ''}",
                headers=headers,
                params=query,
                route_params=match.groupdict(),
                body=body,
            )
            handler = getattr(function_app, route.name).build().get_user_function()
            result = handler(request)
            response = self._loop.run(result) if inspect.isawaitable(result) else result
            reply = response.get_body()
            reply_headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-type"]
            reply_headers.append(("Content-Type", response.mimetype))
            start_response(f"{response.status_code} {_phrase(response.status_code)}", reply_headers)
            return [reply]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such route in the function app"]

    def _key_matches(self, *given: str | None) -> bool:
        return any(value is not None and secrets.compare_digest(value, self.function_key) for value in given)

    def close(self) -> None:
        """Close the app's clients on the loop that made them, then stop the loop."""
        from shared import runtime

        try:
            self._loop.run(runtime.aclose(), timeout=30)
        finally:
            self._loop.stop()


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def _shutdown_telemetry() -> None:
    """Export what is buffered and stop the exporters while the ingestion stand-in still listens."""
    from opentelemetry import _logs, metrics, trace

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider()):
        shutdown = getattr(provider, "shutdown", None)
        if callable(shutdown):
            shutdown()


def seed(stack: Any) -> str:
    """What the documented examples need: a tagged secret, the targets, a quarantined job, a stored secret set."""
    from standins.graph import new_job, quarantine

    token = secrets.token_hex(16)
    # The secret's owner binds it to the two targets and the SCIM endpoint (docs/security.md): untagged, it is refused.
    stack.keyvault.default_tags = {"provisioning-targets": f"{SP_ID} {APP_ID}", "provisioning-endpoints": SCIM_URL}
    stack.keyvault.set_secret(SECRET, token)
    stack.graph.service_principals[SP_ID] = {"BaseAddress": SCIM_URL, "SecretToken": token}
    stack.graph.applications[APP_ID] = {"BaseAddress": SCIM_URL, "SecretToken": token}
    stack.graph.jobs[SP_ID] = {JOB: new_job(JOB, "Quarantine", quarantine())}
    stack.graph.stored_secrets[SP_ID] = [
        {"key": "BaseAddress", "value": SCIM_URL},
        {"key": "SecretToken", "value": "the expired token"},
    ]
    return token


def banner(base: str, function_key: str, routes: list[Route], stack: Any) -> str:
    body = json.dumps(
        {
            "credentials": [{"key": "BaseAddress", "value": SCIM_URL}, {"key": "SecretToken", "secretRef": SECRET}],
            "correlationId": "ticket-4711",
        }
    )
    lines = [
        f"The function app's HTTP routes on {base}, against local stand-ins (no Azure, no Core Tools; the real host",
        "is `func start`). Key auth as the host does it: x-functions-key header or ?code=.",
        "",
    ]
    width = max(len(route.template) for route in routes)
    for route in routes:
        auth = "anonymous" if route.anonymous else "function key"
        lines.append(f"  {','.join(sorted(route.methods)):<16} {base}{route.template:<{width}}  {auth}")
    lines += [
        "",
        f"Key Vault stand-in: secret {SECRET!r}, tagged for servicePrincipal {SP_ID},",
        f"  application {APP_ID} and {SCIM_URL}",
        f"Graph stand-in: those two targets, job {JOB} (quarantined)",
        "Also running: the managed identity endpoint, Application Insights ingestion, Azurite (queues, tables)",
        "",
        "For the documented examples:",
        f"  export APP_URL={base} FUNCTION_KEY={function_key} SP_ID={SP_ID} APP_ID={APP_ID}",
        "",
        "Try it:",
        f'  curl -sS "{base}/api/servicePrincipals/{SP_ID}/synchronization/acquireAccessToken" '
        f"-H 'x-functions-key: {function_key}' -H 'Content-Type: application/json' -d '{body}'",
        "",
        "Ctrl-C stops the server, the stand-ins and Azurite.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The app's HTTP routes on localhost, against the local stand-ins.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071, help="default 7071, as func start")
    parser.add_argument("--function-key", default=None, help="default: a new random key, printed")
    args = parser.parse_args(argv)
    from .base import scratch_folder

    with scratch_folder("serve-") as work:  # the SDKs' and Azurite's temporary files go here, and go at the end
        return _serve(work, args.host, args.port, args.function_key or secrets.token_urlsafe(24))


def _serve(work: Path, host: str, port: int, function_key: str) -> int:
    from standins import Stack, TestCA
    from standins.azurite import Azurite

    ca = TestCA(work / "ca")
    os.environ["SSL_CERT_FILE"] = os.environ["REQUESTS_CA_BUNDLE"] = str(ca.bundle)  # before aiohttp is imported
    stack = Stack(ca)
    azurite = functions = None
    try:
        azurite = Azurite()
        os.environ.update(stack.environment())
        os.environ.update(
            {
                "AzureWebJobsStorage": azurite.connection_string,
                "CONNECTIONS_TABLE": "connections",
                # Key Vault's events name the stand-in vault "standin-kv", as Key Vault names a vault.
                "KEY_VAULT_ALLOWED_HOSTS": f"{stack.keyvault.host},standin-kv.vault.azure.net",
            }
        )
        seed(stack)
        functions = FunctionsHost(function_key)
        base = f"http://{'localhost' if host in ('127.0.0.1', 'localhost') else host}:{port}"
        print(banner(base, function_key, functions.routes, stack), flush=True)
        asyncio.run(_run(functions, host, port))
        return 0
    finally:
        if functions is not None:
            functions.close()
            _shutdown_telemetry()
        stack.stop()
        if azurite is not None:
            azurite.stop()


async def _run(app: FunctionsHost, host: str, port: int) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = "-"  # one line per request on stdout, as the host logs its executions
    config.errorlog = "-"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(app, config, mode="wsgi", shutdown_trigger=stop.wait)


if __name__ == "__main__":
    raise SystemExit(main())
