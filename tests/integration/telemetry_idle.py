"""Run as a script by test_telemetry_loop.py: one outcome with the root logger at INFO, then an idle interval.

``app`` mode configures telemetry as the app does outside Azure (``shared.telemetry.configure``); ``worker`` mode
does what the Functions Python worker does at start-up when ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`` is true
(``configure_azure_monitor`` with the logger named by ``PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME``), then imports
the function app. Prints how long the final flush took.
"""

import logging
import os
import sys
import time

mode, idle = sys.argv[1], float(sys.argv[2])
logging.basicConfig(level=logging.INFO)  # as the Functions Python worker sets the root logger

if mode == "worker":
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(
        connection_string=os.environ["APPLICATIONINSIGHTS_CONNECTION_STRING"],
        logger_name=os.environ.get("PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME", ""),
    )
    import function_app  # noqa: F401 - indexing, as the worker does after configuring Azure Monitor
else:
    from shared import telemetry

    assert telemetry.configure(os.environ["APPLICATIONINSIGHTS_CONNECTION_STRING"])

from shared import telemetry  # noqa: E402 - after Azure Monitor is configured, as in the worker
from shared.outcome import Outcome  # noqa: E402
from shared.request import Target  # noqa: E402

logging.getLogger("some.library").info("a library's INFO record: not the app's, not exported")
telemetry.emit_outcome(
    Outcome(
        outcome="validated",
        trigger="cli",
        target=Target(type="servicePrincipal", id="0b9e8b8a-8f7e-4f6c-9d0a-3d3c6f6f1a11"),
        correlation_id="idle-check",
    )
)
time.sleep(idle)
started = time.monotonic()
telemetry.flush(5_000)
print(f"flush {time.monotonic() - started:.3f}")
