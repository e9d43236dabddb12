"""The HTTP client alone: ways to send Graph's POST against one fast asynchronous server that answers after 100 ms.

Isolates the question the throughput figures raise: how many requests in flight can the Graph client hold, and at
what CPU per request? The server is hypercorn (HTTP/1.1 and HTTP/2 over TLS, a trustme certificate) in its own
process; each client sends the same small JSON POST from 16, 64 and 256 concurrent workers for a few seconds:

- httpx, one pool of 64 connections with keep-alive 32 (what the app used before);
- httpx through the app's pools (shared/transport.py: 8 pools of 16, each filled before the next is used);
- httpx over HTTP/2 (one connection multiplexes every request; needs the h2 package, installed for the benchmark);
- aiohttp, one connector (the alternative the results propose).

hypercorn closes a connection after 1,000 requests by default (``keep_alive_max_requests``), which over HTTP/2 ends
the one connection every request shares with a GOAWAY: httpcore then fails the requests in flight on it
(``WriteError``, ``RemoteProtocolError``) instead of moving them to a new connection. The limit is raised here so that
the figures are about throughput; the app's Graph client retries a repeatable call that fails that way.

`make bench` runs :func:`compare` and adds its table to bench/RESULTS.md; alone:
.venv-bench/bin/python bench/transport.py [--seconds 4]
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
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

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
CONFIG = "keep_alive_max_requests = 1_000_000_000\n"
PORT = 8443
URL = f"https://127.0.0.1:{PORT}/v1.0/servicePrincipals/x/synchronization/acquireAccessToken"
BODY = {"credentials": [{"key": "BaseAddress", "value": "https://scim.example.com/v2"}]}

Post = Callable[[], Awaitable[None]]


async def measure(name: str, post: Post, concurrency: int, seconds: float) -> dict[str, Any]:
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
    return {
        "client": name,
        "concurrency": concurrency,
        "rps": rate,
        "share": rate / (concurrency / 0.1),
        "p50": statistics.median(latencies) * 1000,
        "cpu_ms": cpu * 1000 / len(latencies),
    }


@asynccontextmanager
async def httpx_one_pool(ca: str) -> Any:
    import httpx

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca), limits=limits) as client:

        async def post() -> None:
            (await client.post(URL, json=BODY)).raise_for_status()

        yield post


@asynccontextmanager
async def httpx_app_pools(ca: str) -> Any:
    sys.path.insert(0, str(ROOT))
    from shared.transport import PooledClient

    client = PooledClient(verify=ssl.create_default_context(cafile=ca))
    try:

        async def post() -> None:
            (await client.request("POST", URL, json=BODY)).raise_for_status()

        yield post
    finally:
        await client.aclose()


@asynccontextmanager
async def httpx_http2(ca: str) -> Any:
    import httpx

    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca), http2=True) as client:

        async def post() -> None:
            response = await client.post(URL, json=BODY)
            response.raise_for_status()
            assert response.http_version == "HTTP/2", response.http_version

        yield post


@asynccontextmanager
async def aiohttp_connector(ca: str) -> Any:
    import aiohttp

    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=ca), limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post() -> None:
            async with session.post(URL, json=BODY) as response:
                response.raise_for_status()
                await response.read()

        yield post


CLIENTS: dict[str, Callable[[str], AbstractAsyncContextManager[Post]]] = {
    "httpx, one pool of 64 (keep-alive 32)": httpx_one_pool,
    "httpx, the app's pools (8 x 16)": httpx_app_pools,
    "httpx, HTTP/2": httpx_http2,
    "aiohttp": aiohttp_connector,
}


async def _run(client: Callable[[str], AbstractAsyncContextManager[Post]], name: str, ca: str, concurrency: int,
               seconds: float) -> dict[str, Any]:  # fmt: skip
    async with client(ca) as post:
        return await measure(name, post, concurrency, seconds)


def compare(seconds: float = 4, concurrencies: tuple[int, ...] = (16, 64, 256)) -> list[dict[str, Any]]:
    """One row per client and concurrency; a client that fails says so in ``error``."""
    import trustme

    folder = Path(tempfile.mkdtemp(prefix="transport-"))
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    (folder / "app.py").write_text(SERVER)
    (folder / "config.py").write_text(CONFIG)
    server = subprocess.Popen(
        [sys.executable, "-m", "hypercorn", "app:app", "--bind", f"127.0.0.1:{PORT}", "--config", "file:config.py",
         "--certfile", "server.pem", "--keyfile", "server.pem"],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    rows = []
    try:
        time.sleep(3)
        for name, client in CLIENTS.items():
            for concurrency in concurrencies:
                try:
                    rows.append(asyncio.run(_run(client, name, str(folder / "ca.pem"), concurrency, seconds)))
                except Exception as exc:  # noqa: BLE001 - a client that cannot keep up is a result too
                    rows.append({"client": name, "concurrency": concurrency, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        server.terminate()
        server.wait(10)
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4, help="how long each client runs at each concurrency")
    for row in compare(seconds=parser.parse_args().seconds):
        print(json.dumps(row))
