"""Outcome telemetry (docs/reference.md, "Telemetry") with azure-monitor-opentelemetry.

- One custom event ``AcquireAccessTokenOutcome`` per outcome, its custom dimensions the outcome's fields
  flattened. It is a log record on the ``shared.outcome`` logger carrying ``microsoft.custom_event.name``, which
  the Azure Monitor exporter turns into a ``customEvents`` row; without Application Insights it is a plain log
  line with the outcome JSON.
- Metrics ``acquire_access_token.outcomes`` (counter; ``outcome``, ``trigger``) and
  ``acquire_access_token.duration`` (histogram, ms).
- Spans: one ``AcquireAccessToken`` span per request (a child of the Functions invocation), under which the
  Graph calls (one HTTP dependency per attempt, from the distro's httpx instrumentation), the Key Vault and the
  token calls (azure-core's own spans) show as dependencies.

Configured once per process. Inside Azure Functions with ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true`` the
Python worker configures Azure Monitor itself and hands each invocation's trace context over; anywhere else
(Core Tools without that setting, the CLI) :func:`configure` does it from ``APPLICATIONINSIGHTS_CONNECTION_STRING``.
Unset, telemetry is logs only. ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` (identity-based ingestion) is read
by the exporter itself. No value and no token is ever set on an event, a metric or a span: key names only.

The exporter batches log records and sends them every 5 s. A fresh process's first outcome is sent at once
instead (one export, in a background thread): on Flex Consumption every cold start is a fresh worker, and a
worker stopped before its first scheduled export (SIGTERM runs no exit handlers) would lose exactly that outcome.
:func:`shutdown` flushes and shuts the providers down, for a process that ends on its own terms.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from contextlib import AbstractContextManager
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram
    from opentelemetry.trace import Span

    from .outcome import Outcome

__all__ = [
    "EVENT_NAME",
    "EXPORTED_LOGGER",
    "configure",
    "emit_event",
    "emit_outcome",
    "flush",
    "hold_sdk_loggers",
    "shutdown",
    "span",
]

EVENT_NAME = "AcquireAccessTokenOutcome"
CUSTOM_EVENT_ATTRIBUTE = "microsoft.custom_event.name"

# Only this logger's records (and its children's) are exported: never the root logger, which the Functions Python
# worker sets to INFO and on which the exporter's and azure-core's own HTTP logging lands. Exporting those makes an
# export log more records, which are exported in turn: a loop that never goes idle. In Azure the worker configures
# Azure Monitor itself, with the logger named by the app setting PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME, which the
# infra and local.settings.sample.json set to this same name.
EXPORTED_LOGGER = "shared"

# Loggers that speak about every HTTP request the SDKs send, the exporter's own included. They are held at WARNING,
# so that even a handler on the root logger cannot turn one export into more.
SDK_HTTP_LOGGERS = (
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.monitor.opentelemetry.exporter",
    "azure.identity",
    "httpx",
    "httpcore",
)

outcome_log = logging.getLogger("shared.outcome")
outcome_log.setLevel(logging.INFO)


def hold_sdk_loggers() -> None:
    """Hold the SDKs' per-request loggers at WARNING (they stay quieter if someone set them higher)."""
    for name in SDK_HTTP_LOGGERS:
        sdk_logger = logging.getLogger(name)
        if sdk_logger.level < logging.WARNING:
            sdk_logger.setLevel(logging.WARNING)


@cache
def _instruments() -> tuple[Counter, Histogram]:
    """The two metrics, created on first use (OpenTelemetry is not needed to index the app)."""
    from opentelemetry import metrics

    meter = metrics.get_meter("shared")
    outcomes = meter.create_counter(
        "acquire_access_token.outcomes", unit="{outcome}", description="Outcomes of acquireAccessToken requests"
    )
    duration = meter.create_histogram(
        "acquire_access_token.duration", unit="ms", description="Duration of acquireAccessToken requests"
    )
    return outcomes, duration


def span(name: str, **attributes: str) -> AbstractContextManager[Span]:
    """A span of the app's tracer, current for the ``with`` block (a child of the invocation's span)."""
    from opentelemetry import trace

    return trace.get_tracer("shared").start_as_current_span(name, attributes=attributes)


_lock = threading.Lock()
_configured = False


def configure(connection_string: str | None) -> bool:
    """Send telemetry to Application Insights, once per process. Returns whether this call configured it."""
    global _configured
    hold_sdk_loggers()
    with _lock:
        if _configured or not connection_string:
            return False
        _configured = True
        if os.environ.get("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", "").lower() == "true":
            return False  # the Functions Python worker has configured Azure Monitor
        from opentelemetry import trace

        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            return False  # someone else configured OpenTelemetry in this process
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(
            connection_string=connection_string,
            logger_name=EXPORTED_LOGGER,
            enable_live_metrics=False,  # a worker or a CLI run, not a long-lived server to watch live
            instrumentation_options={
                name: {"enabled": False}
                for name in ("django", "fastapi", "flask", "psycopg2", "requests", "urllib", "urllib3")
            },
        )
        return True


def _providers() -> tuple[object, object, object]:
    from opentelemetry import _logs, metrics, trace

    return trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider()


def flush(timeout_millis: int = 10_000) -> None:
    """Export what is buffered (the CLI calls this before it exits)."""
    for provider in _providers():
        force_flush = getattr(provider, "force_flush", None)
        if callable(force_flush):
            force_flush(timeout_millis)


_shut_down = False


def shutdown(timeout_millis: int = 5_000) -> None:
    """Export what is buffered, then shut the providers down; idempotent. After it nothing more is exported."""
    global _shut_down
    with _lock:
        if _shut_down:
            return
        _shut_down = True
    flush(timeout_millis)
    for provider in _providers():
        stop = getattr(provider, "shutdown", None)
        if callable(stop):
            stop()


_first_outcome_sent = False


def _send_first_outcome() -> None:
    """Export this process's first outcome now rather than at the exporter's next scheduled batch, once.

    The export runs in a daemon thread (the invocation does not wait for ingestion); its HTTP call is made with
    instrumentation suppressed, like every export, so it neither traces nor logs into telemetry."""
    global _first_outcome_sent
    if _first_outcome_sent:
        return
    _first_outcome_sent = True
    from opentelemetry import _logs, trace

    flushes = [
        force_flush
        for force_flush in (
            getattr(_logs.get_logger_provider(), "force_flush", None),  # the outcome event
            getattr(trace.get_tracer_provider(), "force_flush", None),  # its request's dependencies
        )
        if callable(force_flush)
    ]
    if flushes:  # nothing to send without an SDK provider (telemetry off: logs only)

        def send() -> None:
            for force_flush in flushes:
                force_flush(5_000)

        threading.Thread(target=send, name="telemetry-first-outcome", daemon=True).start()


def dimensions(outcome: Outcome) -> dict[str, str]:
    graph = outcome.graph
    flat: dict[str, Any] = {
        "outcome": outcome.outcome,
        "targetType": outcome.target.type if outcome.target else None,
        "targetId": outcome.target.id if outcome.target else None,
        "trigger": outcome.trigger,
        "graphStatus": graph.status if graph else None,
        "graphErrorCode": graph.error_code if graph else None,
        "graphRequestId": graph.request_id if graph else None,
        "clientRequestId": graph.client_request_id if graph else None,
        "attempts": graph.attempts if graph else 0,
        "durationMs": round(outcome.duration_ms, 1),
        "correlationId": outcome.correlation_id,
        "credentialKeys": ",".join(outcome.credential_keys),
        "retryable": outcome.retryable,
        "errorCode": outcome.error_code,
        "dequeueCount": outcome.dequeue_count,
        "steps": ",".join(f"{step.name}:{step.status}" for step in outcome.steps) or None,
        "jobStatus": outcome.job.status if outcome.job else None,
        "connection": outcome.connection,
    }
    return {
        key: str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in flat.items()
        if value is not None
    }


events_log = logging.getLogger("shared.events")
events_log.setLevel(logging.INFO)


def emit_event(name: str, properties: dict[str, str | None], *, level: int = logging.INFO) -> None:
    """A custom event of its own (``SecretExpiryWarning``, ``ConnectionHealth``): a log record the exporter turns
    into a ``customEvents`` row; without Application Insights, a log line with the properties as JSON."""
    flat = {key: value for key, value in properties.items() if value is not None}
    events_log.log(
        level,
        "%s %s",
        name,
        json.dumps(flat, separators=(",", ":")),
        extra={CUSTOM_EVENT_ATTRIBUTE: name, **flat},
    )


def emit_outcome(outcome: Outcome) -> None:
    level = logging.INFO if outcome.ok else logging.WARNING
    outcome_log.log(
        level,
        "%s %s",
        EVENT_NAME,
        json.dumps(outcome.to_dict(), separators=(",", ":")),
        extra={CUSTOM_EVENT_ATTRIBUTE: EVENT_NAME, **dimensions(outcome)},
    )
    attributes = {"outcome": outcome.outcome, "trigger": outcome.trigger}
    outcomes, duration = _instruments()
    outcomes.add(1, attributes)
    duration.record(outcome.duration_ms, attributes)
    _send_first_outcome()
