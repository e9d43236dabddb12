"""Run as a script by test_fresh_worker.py: one worker process's start, as the host drives it, then one request.

The worker is initialised (it configures Azure Monitor, PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY), asked for
the metadata and has its functions loaded; the first invocation is one acquireAccessToken request on the service
principal route. The script prints ``replied <status>`` and then waits to be stopped, as an idle worker does.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def main() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.worker.host import WorkerHost

    host = WorkerHost(ROOT)
    host.start_logging()
    init = await host.init()
    assert init.capabilities.get("WorkerOpenTelemetryEnabled") == "true", "the worker did not configure Azure Monitor"
    await host.function_metadata()
    await host.load_all()
    sp_id = os.environ["FRESH_SP_ID"]
    body = json.dumps(
        {
            "credentials": [
                {"key": "BaseAddress", "value": os.environ["FRESH_SCIM_URL"]},
                {"key": "SecretToken", "secretRef": "scim-token"},
            ],
            "correlationId": os.environ["FRESH_CORRELATION_ID"],
        }
    )
    invocation = await host.invoke(
        "acquire_for_service_principal",
        {
            "req": host.http(
                "POST",
                f"servicePrincipals/{sp_id}/synchronization/acquireAccessToken",
                body=body,
                params={"id": sp_id},
            )
        },
    )
    print(f"replied {invocation.http.status_code}", flush=True)
    await asyncio.sleep(3600)  # idle until the host stops the worker


asyncio.run(main())
