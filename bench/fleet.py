"""The fleet's fan-out at 100, 1,000 and 10,000 connections (docs/fleet.md): figures for bench/RESULTS.md.

Against the stand-ins and Azurite, through the real function handlers: the sweep timer and a Key Vault rotation
event each page the connections (or read the secret's index) and enqueue one message per connection; the
connection-work queue function then does one connection's check or re-apply. Measured: the time the timer and the
event delivery take (beside the 10-minute function timeout and Event Grid's 30-second wait), the Table Storage and
queue requests they make per connection, and a sample of the per-connection work (its time, Table and Graph
requests). Table and queue requests are counted at the HTTP transport azure-core uses.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

SIZES = (100, 1_000, 10_000)
SAMPLE = 60  # per-connection work measured on this many messages
FUNCTION_TIMEOUT_S = 600  # host.json functionTimeout
EVENT_GRID_WAIT_S = 30
ROW_PREFIX = "| fleet:"
SP_ID = "0b9e8b8a-8f7e-4f6c-9d0a-3d3c6f6f1a11"
SCIM_URL = "https://scim.example.com/v2"
JOB = "scim.0b9e8b8a8f7e4f6c9d0a3d3c6f6f1a11.7e4d9f3a-1c2b-4a5d-8e6f-0a1b2c3d4e5f"


class _Counter:
    """Counts the HTTP requests azure-core's aiohttp transport sends, by port."""

    def __init__(self) -> None:
        self.by_port: dict[int, int] = {}

    def install(self) -> None:
        from urllib.parse import urlsplit

        from azure.core.pipeline.transport import AioHttpTransport

        original = AioHttpTransport.send
        counter = self

        async def send(transport: Any, request: Any, **kwargs: Any) -> Any:
            port = urlsplit(request.url).port or 0
            counter.by_port[port] = counter.by_port.get(port, 0) + 1
            return await original(transport, request, **kwargs)

        AioHttpTransport.send = send  # type: ignore[method-assign]

    def snapshot(self, port: int) -> int:
        return self.by_port.get(port, 0)


async def _one_size(n: int, stack: Any, azurite: Any, counter: _Counter, quick: bool) -> dict[str, Any]:
    import function_app
    from shared import runtime
    from shared.runtime import get_store
    from shared.store import ConnectionRecord
    from standins.graph import new_job
    from standins.queue_host import QueueHost

    os.environ["CONNECTIONS_TABLE"] = "fleet" + uuid.uuid4().hex[:10]
    os.environ["CONNECTION_QUEUE_NAME"] = "fleet-" + uuid.uuid4().hex[:10]
    runtime.reset()  # a new container for the new table and queue
    stack.graph.jobs[SP_ID] = {JOB: new_job(JOB)}
    stack.graph.stored_secrets[SP_ID] = [{"key": "BaseAddress", "value": SCIM_URL}]
    work_function = function_app.connection_work.build().get_user_function()
    host = QueueHost(os.environ["AzureWebJobsStorage"], os.environ["CONNECTION_QUEUE_NAME"], work_function)
    host.create()
    store = get_store()
    request = {
        "servicePrincipalId": SP_ID,
        "credentials": [{"key": "BaseAddress", "value": SCIM_URL}, {"key": "SecretToken", "secretRef": "scim-token"}],
        "steps": ["saveSecrets"],
    }
    from shared.references import secret_id

    secret = secret_id(stack.keyvault.url, "scim-token")
    gate = asyncio.Semaphore(48)

    async def create(index: int) -> None:
        async with gate:
            await store.create(ConnectionRecord(name=f"c-{index:05d}", request=request, secret_ids=((secret, False),)))

    started = time.perf_counter()
    await asyncio.gather(*(create(i) for i in range(n)))
    setup_s = time.perf_counter() - started
    table, queue = azurite.table_port, azurite.port

    # The sweep timer: page and enqueue.
    before = counter.snapshot(table), counter.snapshot(queue)
    started = time.perf_counter()
    await function_app.sweep_connections.build().get_user_function()(None)
    sweep_s = time.perf_counter() - started
    sweep_table = counter.snapshot(table) - before[0]
    sweep_queue = counter.snapshot(queue) - before[1]
    check = await _drain_sample(host, counter, stack, table, SAMPLE)
    host.queue.clear_messages()

    # A rotation of the secret every connection uses: the event delivery reads the index and enqueues.
    stack.keyvault.set_secret("scim-token", f"rotated-{uuid.uuid4().hex}")
    event = stack.keyvault.event("Microsoft.KeyVault.SecretNewVersionCreated", "scim-token")
    from azure.functions.eventgrid import EventGridEventInConverter
    from azure.functions.meta import Datum

    deliver = function_app.acquire_from_event_grid.build().get_user_function()
    before = counter.snapshot(table), counter.snapshot(queue)
    started = time.perf_counter()
    await deliver(EventGridEventInConverter.decode(Datum(event, "json"), trigger_metadata={}))
    rotation_s = time.perf_counter() - started
    rotation_table = counter.snapshot(table) - before[0]
    rotation_queue = counter.snapshot(queue) - before[1]
    # The fanout message: page the secret's index and enqueue one rotate per connection.
    before = counter.snapshot(table), counter.snapshot(queue)
    started = time.perf_counter()
    await _drain_sample(host, counter, stack, table, 1)
    fanout_s = time.perf_counter() - started
    fanout_table = counter.snapshot(table) - before[0]
    fanout_queue = counter.snapshot(queue) - before[1]
    rotate = await _drain_sample(host, counter, stack, table, SAMPLE)
    host.queue.clear_messages()
    return {
        "n": n,
        "setup_s": setup_s,
        "sweep_s": sweep_s,
        "sweep_table_per": sweep_table / n,
        "sweep_queue_per": sweep_queue / n,
        "rotation_s": rotation_s,
        "rotation_queue": rotation_queue,
        "rotation_table": rotation_table,
        "fanout_s": fanout_s,
        "fanout_table_per": fanout_table / n,
        "fanout_queue_per": fanout_queue / n,
        "check": check,
        "rotate": rotate,
    }


async def _drain_sample(host: Any, counter: _Counter, stack: Any, table: int, count: int) -> dict[str, float]:
    """Hand ``count`` messages to the queue function one at a time; the median time and requests per message."""
    times: list[float] = []
    tables: list[int] = []
    graphs: list[int] = []
    pages = host.queue.receive_messages(messages_per_page=1, visibility_timeout=60)
    from azure.functions.queue import QueueMessage

    for message in pages:
        if len(times) >= count:
            break
        body = message.content
        queue_message = QueueMessage(
            id=message.id, body=body.encode() if isinstance(body, str) else body, dequeue_count=message.dequeue_count
        )
        graph_before, table_before = len(stack.graph.seen), counter.snapshot(table)
        started = time.perf_counter()
        await host.function(queue_message)
        times.append(time.perf_counter() - started)
        tables.append(counter.snapshot(table) - table_before)
        graphs.append(len(stack.graph.seen) - graph_before)
        host.queue.delete_message(message)
    return {
        "ms": statistics.median(times) * 1000 if times else 0.0,
        "table": statistics.median(tables) if tables else 0.0,
        "graph": statistics.median(graphs) if graphs else 0.0,
        "samples": float(len(times)),
    }


def measure(quick: bool = False) -> list[dict[str, Any]]:
    """Every size in a fresh stack; the stand-ins answer at once (the figures are the app's and Azurite's own)."""
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    from standins import Stack, TestCA

    ca = TestCA(work / "ca")
    os.environ["SSL_CERT_FILE"] = os.environ["REQUESTS_CA_BUNDLE"] = str(ca.bundle)
    stack = Stack(ca)
    from standins.azurite import Azurite

    azurite = Azurite()
    os.environ.update(stack.environment())
    os.environ.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    os.environ["AzureWebJobsStorage"] = azurite.connection_string
    os.environ["KEY_VAULT_ALLOWED_HOSTS"] = f"{stack.keyvault.host},standin-kv.vault.azure.net"
    tags = {"provisioning-targets": SP_ID, "provisioning-endpoints": SCIM_URL}
    stack.keyvault.default_tags = tags
    stack.keyvault.set_secret("scim-token", "fleet-bench-token-value")
    stack.graph.service_principals[SP_ID] = {}
    import logging

    logging.getLogger("shared").setLevel(logging.ERROR)  # no per-connection event lines on the terminal
    counter = _Counter()
    counter.install()
    sizes = SIZES[:2] if quick else SIZES

    async def run_all() -> list[dict[str, Any]]:
        from shared import runtime

        try:
            return [await _one_size(n, stack, azurite, counter, quick) for n in sizes]
        finally:
            await runtime.aclose()

    try:
        return asyncio.run(run_all())
    finally:
        stack.stop()
        azurite.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def rows(results: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in results:
        n = r["n"]
        out.append(
            f"{ROW_PREFIX} sweep timer at {n:,} connections (page + enqueue one check each) | {r['sweep_s']:.1f} s "
            f"({r['sweep_s'] / n * 1000:.2f} ms per connection); {r['sweep_table_per']:.3f} Table and "
            f"{r['sweep_queue_per']:.2f} queue requests per connection | | | < {FUNCTION_TIMEOUT_S} s "
            f"function timeout: {'met' if r['sweep_s'] < FUNCTION_TIMEOUT_S else 'MISSED'} |"
        )
        out.append(
            f"{ROW_PREFIX} rotation event delivery at {n:,} connections (current version, a look at the index, one "
            f"fanout message) | {r['rotation_s'] * 1000:.0f} ms; {r['rotation_table']} Table and "
            f"{r['rotation_queue']} queue request(s) in all | | | < {EVENT_GRID_WAIT_S} s Event Grid wait, whatever "
            f"the number: {'met' if r['rotation_s'] < EVENT_GRID_WAIT_S else 'MISSED'} |"
        )
        out.append(
            f"{ROW_PREFIX} rotation fanout message at {n:,} connections (page the index + enqueue one rotate each) | "
            f"{r['fanout_s']:.1f} s ({r['fanout_s'] / n * 1000:.2f} ms per connection); "
            f"{r['fanout_table_per']:.3f} Table and {r['fanout_queue_per']:.2f} queue requests per connection | | | "
            f"< {FUNCTION_TIMEOUT_S} s function timeout: {'met' if r['fanout_s'] < FUNCTION_TIMEOUT_S else 'MISSED'} |"
        )
        for kind, label in (("check", "check (job read, secret properties, health event)"), ("rotate", "re-apply")):
            work = r[kind]
            out.append(
                f"{ROW_PREFIX} per-connection {label} at {n:,} connections, median of {work['samples']:.0f} | "
                f"{work['ms']:.1f} ms; {work['table']:.0f} Table and {work['graph']:.0f} Graph requests | | | "
                "flat as the fleet grows: reported |"
            )
    return out


def splice(report: str, new_rows: list[str]) -> str:
    """Put the rows into an existing report in place of the old ones, at the end of the first table."""
    lines = [line for line in report.splitlines() if not line.startswith(ROW_PREFIX)]
    start = next(i for i, line in enumerate(lines) if line.startswith("| --- |"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[:end] + new_rows + lines[end:]) + "\n"
