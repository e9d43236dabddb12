"""``python -m shared demo``: the whole pipeline offline, through the real function handlers.

Starts the stand-ins (managed identity, Key Vault, Graph), points the app settings at them, puts a secret in the
stand-in vault, sends one request through the HTTP trigger, and prints the outcome and what each stand-in saw.
It lives beside the stand-ins (``tests/``), not in ``shared/``, because it drives ``function_app``.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

SP_ID = "0b9e8b8a-8f7e-4f6c-9d0a-3d3c6f6f1a11"
SCIM_URL = "https://scim.example.com/v2"


def _mask(value: str) -> str:
    return value if value.startswith("https://") else f"<{len(value)} characters>"


def run_demo() -> int:
    from tests.standins import Stack, TestCA

    ca = TestCA(Path(tempfile.mkdtemp(prefix="demo-ca-")))
    os.environ["SSL_CERT_FILE"] = str(ca.bundle)  # before aiohttp is imported
    stack = Stack(ca)
    try:
        os.environ.update(stack.environment())
        demo_token = os.urandom(16).hex()
        stack.keyvault.set_secret("scim-token", demo_token)
        stack.graph.service_principals[SP_ID] = {"BaseAddress": SCIM_URL, "SecretToken": demo_token}
        outcome = asyncio.run(_http_request())
        print("== HTTP POST /api/servicePrincipals/{id}/synchronization/acquireAccessToken")
        print(json.dumps(outcome, indent=2))
        _print_seen(stack)
        return 0 if outcome.get("outcome") == "succeeded" else 1
    finally:
        stack.stop()


async def _http_request() -> dict[str, object]:
    import azure.functions as func

    import function_app
    from shared.runtime import get_pipeline

    body = {
        "credentials": [
            {"key": "BaseAddress", "value": SCIM_URL},
            {"key": "SecretToken", "secretRef": "scim-token"},
        ],
        "correlationId": "demo-1",
    }
    request = func.HttpRequest(
        "POST",
        f"http://localhost:7071/api/servicePrincipals/{SP_ID}/synchronization/acquireAccessToken",
        route_params={"id": SP_ID},
        headers={"Content-Type": "application/json"},
        body=json.dumps(body).encode(),
    )
    handler = function_app.acquire_for_service_principal.build().get_user_function()
    try:
        response = await handler(request)
        return dict(json.loads(response.get_body()))
    finally:
        await get_pipeline().close()


def _print_seen(stack: object) -> None:
    from tests.standins import Stack

    assert isinstance(stack, Stack)
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
        for credential in seen.json()["credentials"]:
            print(f"    {credential['key']} = {_mask(credential['value'])}")
