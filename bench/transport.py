"""The HTTP client alone: httpx and aiohttp against one fast asynchronous server that answers after 100 ms.

Isolates the question issue-level throughput figures raise: can the Graph client hold 64 or 256 requests in flight?
The server is hypercorn (HTTP/1.1 over TLS, a trustme certificate) in its own process; each client sends the same
small JSON POST from 16, 64 and 256 concurrent workers for a few seconds. Prints one JSON line per run: requests
per second, the share of the ideal (concurrency / 100 ms), p50 latency and CPU per request.

Run from the project root with the bench venv: .venv-bench/bin/python bench/transport.py
"""

from __future__ import annotations

import asyncio
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = """
import asyncio
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await asyncio.sleep(0.1)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""
URL = "https://127.0.0.1:8443/v1.0/servicePrincipals/x/synchronization/acquireAccessToken"
BODY = {"credentials": [{"key": "BaseAddress", "value": "https://scim.example.com/v2"}]}


async def measure(name: str, post, concurrency: int, seconds: float) -> None:
    await post()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await post()
            latencies.append(time.perf_counter() - started)

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    rate = len(latencies) / elapsed
    print(json.dumps({"client": name, "concurrency": concurrency, "rps": round(rate),
                      "ideal": f"{rate / (concurrency / 0.1):.0%}", "p50_ms": round(statistics.median(latencies) * 1000),
                      "cpu_ms_per_request": round(cpu * 1000 / len(latencies), 2)}))  # fmt: skip


async def with_httpx(ca: str, concurrency: int) -> None:
    import httpx

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)  # what the app uses
    async with httpx.AsyncClient(verify=ca, limits=limits) as client:

        async def post() -> None:
            (await client.post(URL, json=BODY)).raise_for_status()

        await measure("httpx", post, concurrency, 4)


async def with_aiohttp(ca: str, concurrency: int) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=ca), limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post() -> None:
            async with session.post(URL, json=BODY) as response:
                response.raise_for_status()
                await response.read()

        await measure("aiohttp", post, concurrency, 4)


def main() -> None:
    import trustme

    folder = Path(tempfile.mkdtemp(prefix="transport-"))
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    (folder / "app.py").write_text(SERVER)
    server = subprocess.Popen(
        [sys.executable, "-m", "hypercorn", "app:app", "--bind", "127.0.0.1:8443",
         "--certfile", "server.pem", "--keyfile", "server.pem"],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(3)
        for run in (with_httpx, with_aiohttp):
            for concurrency in (16, 64, 256):
                asyncio.run(run(str(folder / "ca.pem"), concurrency))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
