"""Telemetry never feeds itself: with the root logger at INFO (as the Functions Python worker sets it), one
outcome causes a bounded number of ingestion requests, each about the app's own telemetry, and an idle process
sends nothing more. Both ways Azure Monitor gets configured are tried: by the app, and by the worker."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from standins import IngestionStandIn

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("telemetry_idle.py")
IDLE_SECONDS = 4
# What the exporter and azure-core log about their own requests: none of it may reach ingestion.
SELF_TALK = ("Request URL", "Response status", "Transmission succeeded", "/v2.1/track", "Request headers")


def sample_logger_name() -> str:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    return values["PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["app", "worker"])
def test_one_outcome_then_idle_sends_a_bounded_number_of_requests_about_the_app_only(app_env, mode):
    ingestion = IngestionStandIn(app_env.identity, app_env.ca.server_context()).start()
    env = {
        **os.environ,
        "APPLICATIONINSIGHTS_CONNECTION_STRING": ingestion.connection_string,
        # Export batches every 100 ms instead of 5 s: a loop shows up within the idle interval.
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "PYTHONPATH": str(ROOT),
    }
    if mode == "worker":
        env["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] = "true"
        env["PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME"] = sample_logger_name()
    else:
        env.pop("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", None)
    try:
        result = subprocess.run(
            [sys.executable, str(SCRIPT), mode, str(IDLE_SECONDS)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        flush_seconds = float(result.stdout.split()[-1])
        assert flush_seconds < 3, f"flush took {flush_seconds} s"
        posts = [s for s in ingestion.seen if s.path.endswith("/track")]
        # The event, one or two metric exports and the flush: a loop would make dozens in the idle interval.
        assert 1 <= len(posts) <= 6, f"{len(posts)} ingestion requests after one outcome"
        [event] = ingestion.events("AcquireAccessTokenOutcome")
        assert event["data"]["baseData"]["properties"]["correlationId"] == "idle-check"
        traces = [e["data"]["baseData"].get("message", "") for e in ingestion.of_type("MessageData")]
        assert not [t for t in traces if any(s in t for s in SELF_TALK)], traces
        assert not [t for t in traces if "a library's INFO record" in t]
    finally:
        ingestion.stop()
