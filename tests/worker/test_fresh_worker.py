"""The first outcome of a fresh worker reaches Application Insights, even when the worker is stopped soon after.

On Flex Consumption every cold start is a fresh worker whose first invocation is the one that matters, and an
instance is stopped (SIGTERM, no interpreter exit handlers) whenever the platform reclaims it. The Azure Monitor
exporter the worker configures batches log records and sends them every 5 s (``OTEL_BLRP_SCHEDULE_DELAY``), so
without help a fresh worker's first outcomes wait in memory for the first scheduled export and die with the
process. The worker here runs in its own process, with the batching Azure uses, against the session's stand-ins.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import SCIM_URL, SP_ID
from tests.worker.conftest import ROOT, deployed_settings

SCRIPT = Path(__file__).with_name("fresh_worker.py")
# Stopped this long after its first reply: well inside the exporter's 5 s batch interval.
STOP_AFTER_SECONDS = 1.5


def outcome_events(ingestion, correlation_id: str) -> list[dict]:
    return [
        e
        for e in ingestion.events("AcquireAccessTokenOutcome")
        if e["data"]["baseData"]["properties"].get("correlationId") == correlation_id
    ]


def test_the_first_outcome_of_a_fresh_worker_is_exported_before_the_worker_is_stopped(app_env):
    deployed = deployed_settings()
    env = {
        **os.environ,
        **app_env.environment(),
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": deployed["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"],
        "PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME": deployed["PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME"],
        # The exporter's own batching, as in Azure (the session's worker exports every 100 ms instead).
        "OTEL_BLRP_SCHEDULE_DELAY": "5000",
        "OTEL_BSP_SCHEDULE_DELAY": "5000",
        "FRESH_SP_ID": SP_ID,
        "FRESH_SCIM_URL": SCIM_URL,
        "FRESH_CORRELATION_ID": "fresh-worker-first",
    }
    with tempfile.TemporaryFile(mode="w+") as stderr:
        worker = subprocess.Popen(
            [sys.executable, str(SCRIPT)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        try:
            assert worker.stdout is not None
            line = worker.stdout.readline()
            stderr.seek(0)
            assert line.strip() == "replied 200", line + stderr.read()[-3000:]
            time.sleep(STOP_AFTER_SECONDS)
            worker.send_signal(signal.SIGTERM)  # as the platform stops an instance
            worker.wait(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()
    assert worker.returncode == -signal.SIGTERM
    [event] = outcome_events(app_env.ingestion, "fresh-worker-first")
    assert event["data"]["baseData"]["properties"]["outcome"] == "succeeded"
    assert event["data"]["baseData"]["properties"]["trigger"] == "http"
