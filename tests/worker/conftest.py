"""The worker conformance suite: the app loaded and invoked by the real Azure Functions worker runtime (Python 3.13).

One worker for the whole suite, as one worker process serves a host: it is initialised (which indexes the app),
asked for the function metadata and has every function loaded, with telemetry configured the way Azure configures
it (the worker calls Azure Monitor's distro at start-up, ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true``, with
the logger named by ``PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME``, both read from the app settings that
infra/app/function.bicep deploys).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from standins import Stack

ROOT = Path(__file__).resolve().parents[2]
REPORT: list[str] = []


def sample_settings() -> dict[str, str]:
    return json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]


def deployed_settings() -> dict[str, str]:
    """The app settings infra/app/function.bicep gives the function app whose value is a literal."""
    bicep = (ROOT / "infra" / "app" / "function.bicep").read_text()
    return dict(re.findall(r"\{ name: '([A-Za-z0-9_]+)', value: '([^'$]*)' \}", bicep))


@pytest.fixture(scope="session")
async def worker(stack: Stack) -> AsyncIterator[object]:
    from tests.worker.host import WorkerHost

    sample = sample_settings()
    deployed = deployed_settings()
    os.environ.update(stack.environment())
    os.environ.update(
        {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": deployed["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"],
            "PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME": deployed["PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME"],
            "REQUEST_QUEUE_NAME": sample["REQUEST_QUEUE_NAME"],
            # Export every 100 ms rather than every 5 s: telemetry that feeds itself shows up within seconds.
            "OTEL_BLRP_SCHEDULE_DELAY": "100",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
    )
    host = WorkerHost(ROOT)
    host.start_logging()
    try:
        await host.init()
        await host.function_metadata()
        await host.load_all()
        REPORT.append("indexed by azure_functions_runtime " + _runtime_version() + ":")
        for name, metadata in host.metadata.items():
            bindings = ", ".join(
                f"{b['type']}({b.get('route') or b.get('queueName') or b['name']})"
                for b in map(json.loads, metadata.raw_bindings)
            )
            REPORT.append(f"  {name}: {bindings}")
        yield host
    finally:
        host.stop_logging()


def _runtime_version() -> str:
    from azure_functions_runtime.version import VERSION

    return VERSION


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.section("worker conformance")
        for line in REPORT:
            terminalreporter.write_line(line)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and "tests/worker/" in report.nodeid.replace("\\", "/"):
        name = report.nodeid.split("::", 1)[1]
        REPORT.append(f"  {'ok  ' if report.passed else report.outcome.upper() + ' '} {name}")
