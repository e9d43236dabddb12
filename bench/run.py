"""Benchmarks: figures, not claims. `make bench` runs this; it prints a table and writes bench/RESULTS.md.

1. Cold start: `import function_app` in fresh processes (wall time, peak RSS), beside importing msgraph-sdk's
   GraphServiceClient; and "ready": import plus building the pipeline's clients, the work of a first request.
2. Warm overhead: in-process time per request beyond the Graph round trip, against the local stand-ins with no
   added latency; the same call made through msgraph-sdk against the same stand-in.
3. Key Vault: resolving 1, 4, 16 and 32 references (cache off) against a vault that takes 50 ms per read.
4. Throughput against a Graph that takes 100 ms: 16 concurrent requests with telemetry off, then with Azure
   Monitor on (to the ingestion stand-in) at 16, 64 and 256: requests per second against the ideal
   (concurrency / 100 ms), p50 and p99 latency, CPU per request, peak RSS growth per request in flight, and how
   many Graph tokens were fetched (must be 1).

Run from the project root: python bench/run.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SP_ID = "0b9e8b8a-8f7e-4f6c-9d0a-3d3c6f6f1a11"
SCIM_URL = "https://scim.example.com/v2"
TOKEN = "bench-token-value-0123456789"

IMPORT_PROBE = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
started = time.perf_counter()
{statement}
elapsed = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""

READY_STATEMENT = """
import asyncio, function_app
from shared.runtime import build_pipeline
from shared.settings import Settings
async def ready():
    pipeline = build_pipeline(Settings.from_env())
    await pipeline.close()
asyncio.run(ready())
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def probe(statement: str, runs: int, env: dict[str, str]) -> dict[str, float]:
    code = IMPORT_PROBE.format(root=str(ROOT), statement=statement)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)  # warm the .pyc cache
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "ms": statistics.median(s["seconds"] for s in samples) * 1000,
        "rss_mb": statistics.median(s["maxrss_kb"] for s in samples) / 1024,
    }


def cold_start(runs: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS")}
    return {
        "ours": probe("import function_app", runs, env),
        "ours_package": probe("import shared.http_api, shared.triggers, shared.health, shared.openapi", runs, env),
        "functions_library": probe("import azure.functions", runs, env),
        "msgraph_app": probe("import azure.functions\nfrom msgraph import GraphServiceClient", runs, env),
        "ours_ready": probe(READY_STATEMENT, runs, env),
        "msgraph": probe("from msgraph import GraphServiceClient", runs, env),
    }


class Stand:
    """The stand-ins in their own process, the app's settings pointing at them (no Application Insights)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "standins_process.py"), SP_ID, SCIM_URL, TOKEN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        env = json.loads(self.process.stdout.readline())
        # Telemetry starts off; the throughput runs switch it on (configure() is once per process).
        self.ingestion = env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING")
        os.environ.update(env)  # SSL_CERT_FILE among them, before aiohttp is imported
        os.environ["SECRET_CACHE_SECONDS"] = "300"

    def command(self, *words: object) -> Any:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(10)


def request_body(credentials: list[dict[str, str]] | None = None, *, dry_run: bool = False) -> bytes:
    body: dict[str, Any] = {
        "servicePrincipalId": SP_ID,
        "credentials": credentials
        or [{"key": "BaseAddress", "value": SCIM_URL}, {"key": "SecretToken", "secretRef": "scim-token"}],
    }
    if dry_run:
        body["dryRun"] = True
    return json.dumps(body).encode()


def timed_calls(client: Any, attribute: str) -> list[float]:
    """Wrap ``client.<attribute>`` (an async HTTP call) to record how long each call takes."""
    spent: list[float] = []
    original = getattr(client, attribute)

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    setattr(client, attribute, wrapper)
    return spent


async def overhead(call: Callable[[], Any], network: list[float], n: int) -> dict[str, float]:
    """Time ``n`` calls; the overhead of each is its time minus the time of its one network call."""
    network.clear()
    overheads = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        overheads.append((time.perf_counter() - started - network[-1]) * 1000)
    return {
        "p50": percentile(overheads, 50),
        "p99": percentile(overheads, 99),
        "graph_p50": percentile([t * 1000 for t in network], 50),
    }


async def warm_ours(n: int) -> dict[str, float]:
    from shared.runtime import build_pipeline
    from shared.settings import Settings

    pipeline = build_pipeline(Settings.from_env())
    try:
        body = request_body()
        for _ in range(50):  # token, Key Vault cache, connections
            assert (await pipeline.run(body, trigger="http")).outcome == "succeeded"

        async def call() -> None:
            outcome = await pipeline.run(body, trigger="http")
            assert outcome.outcome == "succeeded", outcome.to_dict()

        return await overhead(call, timed_calls(pipeline.graph._http, "request"), n)
    finally:
        await pipeline.close()


async def warm_msgraph(n: int) -> dict[str, float] | None:
    try:
        import httpx
        from azure.identity.aio import ManagedIdentityCredential
        from kiota_authentication_azure.azure_identity_authentication_provider import (
            AzureIdentityAuthenticationProvider,
        )
        from msgraph import GraphRequestAdapter, GraphServiceClient
        from msgraph.generated.models.synchronization_secret import SynchronizationSecret
        from msgraph.generated.models.synchronization_secret_key_string_value_pair import (
            SynchronizationSecretKeyStringValuePair,
        )
        from msgraph.generated.service_principals.item.synchronization.acquire_access_token.acquire_access_token_post_request_body import (
            AcquireAccessTokenPostRequestBody,
        )
        from msgraph_core import GraphClientFactory
    except ImportError:
        return None

    graph_url = os.environ["GRAPH_ENDPOINT"]
    credential = ManagedIdentityCredential()
    auth = AzureIdentityAuthenticationProvider(
        credential,
        scopes=["https://graph.microsoft.com/.default"],
        allowed_hosts=[graph_url.split("//")[1].split(":")[0]],
    )
    http = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient())
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = f"{graph_url}/v1.0"
    client = GraphServiceClient(request_adapter=adapter)

    async def call() -> None:
        body = AcquireAccessTokenPostRequestBody(
            credentials=[
                SynchronizationSecretKeyStringValuePair(key=SynchronizationSecret.BaseAddress, value=SCIM_URL),
                SynchronizationSecretKeyStringValuePair(key=SynchronizationSecret.SecretToken, value=TOKEN),
            ]
        )
        await client.service_principals.by_service_principal_id(SP_ID).synchronization.acquire_access_token.post(body)

    try:
        for _ in range(50):
            await call()
        return await overhead(call, timed_calls(http, "send"), n)
    finally:
        await http.aclose()
        await credential.close()


async def key_vault(stand: Stand, runs: int) -> dict[int, float]:
    from shared.runtime import build_pipeline
    from shared.settings import Settings

    os.environ["SECRET_CACHE_SECONDS"] = "0"
    stand.command("latency", "keyvault", 0.05)
    from shared.keys import SYNCHRONIZATION_SECRET_KEYS

    keys = SYNCHRONIZATION_SECRET_KEYS[:32]
    for index in range(32):
        stand.command("secret", f"secret-{index}", f"value-{index}")
    pipeline = build_pipeline(Settings.from_env())
    results = {}
    try:
        await pipeline.run(request_body(dry_run=True), trigger="cli")  # challenge and token out of the way
        for count in (1, 4, 16, 32):
            body = request_body([{"key": keys[i], "secretRef": f"secret-{i}"} for i in range(count)], dry_run=True)
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                outcome = await pipeline.run(body, trigger="cli")
                samples.append((time.perf_counter() - started) * 1000)
                assert outcome.outcome == "validated", outcome.to_dict()
            results[count] = statistics.median(samples)
    finally:
        await pipeline.close()
        stand.command("latency", "keyvault", 0)
        os.environ["SECRET_CACHE_SECONDS"] = "300"
    return results


async def throughput(stand: Stand, seconds: float, concurrency: int = 16) -> dict[str, float]:
    """``concurrency`` workers against a Graph that takes 100 ms: rate, latency, CPU per request, memory per request."""
    import resource

    from shared.runtime import build_pipeline
    from shared.settings import Settings

    stand.command("latency", "graph", 0.1)
    tokens_before = stand.command("tokens")
    pipeline = build_pipeline(Settings.from_env())
    body = request_body()
    latencies: list[float] = []
    try:
        await pipeline.run(body, trigger="http")  # the token and the secret out of the way
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                outcome = await pipeline.run(body, trigger="http")
                latencies.append(time.perf_counter() - started)
                assert outcome.outcome == "succeeded", outcome.to_dict()

        cpu_started, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    finally:
        await pipeline.close()
        stand.command("latency", "graph", 0)
    done = len(latencies)
    return {
        "concurrency": concurrency,
        "rps": done / elapsed,
        "ideal": concurrency / 0.1,
        "requests": done,
        "tokens": stand.command("tokens") - tokens_before,
        "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "cpu_ms": cpu * 1000 / max(done, 1),
        "rss_kb_per_request": max(0, rss_after - rss_before) / concurrency,
    }


def faster(theirs: float, ours: float, *, word: str = "faster", opposite: str = "slower") -> str:
    ratio = theirs / ours
    return f"{ratio:.1f}x {word}" if ratio >= 1 else f"{1 / ratio:.1f}x {opposite}"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(
    cold: dict[str, Any],
    ours: dict[str, float],
    sdk: dict[str, float] | None,
    kv: dict[int, float],
    tput: dict[str, Any],
    quick: bool,
) -> str:
    import_ratio = cold["msgraph"]["ms"] / cold["ours"]["ms"]
    lines = [
        "# Benchmark results",
        "",
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}{' (quick run)' if quick else ''}. "
        "Produced by `make bench` (bench/run.py); figures vary with the machine, ratios much less.",
        "",
        "| measure | ours | msgraph-sdk | ratio | target |",
        "| --- | --- | --- | --- | --- |",
        f"| cold start: import (median wall, fresh processes) | {cold['ours']['ms']:.0f} ms | "
        f"{cold['msgraph']['ms']:.0f} ms | {faster(cold['msgraph']['ms'], cold['ours']['ms'])} | "
        f">= 1.5x faster: {verdict(import_ratio >= 1.5)} |",
        f"| cold start: import function_app beyond azure.functions alone | "
        f"{cold['ours']['ms'] - cold['functions_library']['ms']:.0f} ms | | | "
        f"<= 10 ms: {verdict(cold['ours']['ms'] - cold['functions_library']['ms'] <= 10)} |",
        f"| cold start: our package alone (shared/, without azure.functions) | {cold['ours_package']['ms']:.0f} ms | "
        f"{cold['msgraph']['ms']:.0f} ms | {faster(cold['msgraph']['ms'], cold['ours_package']['ms'])} | |",
        f"| cold start: azure.functions alone (every Python function app pays it) | "
        f"{cold['functions_library']['ms']:.0f} ms | | | |",
        f"| cold start: a function app's imports (function_app vs azure.functions + msgraph) | "
        f"{cold['ours']['ms']:.0f} ms | {cold['msgraph_app']['ms']:.0f} ms | "
        f"{faster(cold['msgraph_app']['ms'], cold['ours']['ms'])} | |",
        f"| cold start: peak RSS after import | {cold['ours']['rss_mb']:.0f} MB | {cold['msgraph']['rss_mb']:.0f} MB "
        f"| {faster(cold['msgraph']['rss_mb'], cold['ours']['rss_mb'], word='smaller', opposite='larger')} | |",
        f"| ready to serve: import + build clients | {cold['ours_ready']['ms']:.0f} ms "
        f"({cold['ours_ready']['rss_mb']:.0f} MB) | | | |",
    ]
    if sdk:
        lines += [
            f"| warm overhead beyond the Graph round trip, p50 | {ours['p50']:.2f} ms | {sdk['p50']:.2f} ms | "
            f"{sdk['p50'] / ours['p50']:.1f}x less | < 2 ms: {verdict(ours['p50'] < 2)} |",
            f"| warm overhead, p99 | {ours['p99']:.2f} ms | {sdk['p99']:.2f} ms | | |",
            f"| the Graph round trip itself (stand-in, p50) | {ours['graph_p50']:.2f} ms | {sdk['graph_p50']:.2f} ms"
            " | | |",
        ]
    else:
        lines += [
            f"| warm overhead, p50 / p99 | {ours['p50']:.2f} / {ours['p99']:.2f} ms | (not installed) | | "
            f"< 2 ms: {verdict(ours['p50'] < 2)} |"
        ]
    lines += [
        f"| Key Vault: 1 / 4 / 16 / 32 references, 50 ms per read, cache off (median) | {kv[1]:.0f} / {kv[4]:.0f} / "
        f"{kv[16]:.0f} / {kv[32]:.0f} ms | | 32 refs = {kv[32] / kv[1]:.2f}x one | <= 1.3x: {verdict(kv[32] <= 1.3 * kv[1])} |",
    ]
    targets = {16: 0.9, 64: 0.8}
    for run in tput["runs"]:
        share = run["rps"] / run["ideal"]
        goal = targets.get(int(run["concurrency"]))
        mark = f">= {goal:.0%}: {verdict(share >= goal)}" if goal else "reported"
        lines.append(
            f"| throughput, telemetry {run['telemetry']}: {run['concurrency']:.0f} concurrent, Graph 100 ms | "
            f"{run['rps']:.0f} req/s of {run['ideal']:.0f} ({share:.0%}); p50 {run['p50']:.0f} ms, p99 {run['p99']:.0f} ms;"
            f" {run['cpu_ms']:.2f} ms CPU per request | | | {mark} |"
        )
    heavy = tput["runs"][-1]
    lines += [
        f"| memory: peak RSS growth per in-flight request, {heavy['concurrency']:.0f} concurrent, telemetry on | "
        f"{heavy['rss_kb_per_request']:.0f} KB | | | reported |",
        f"| Graph tokens fetched during a throughput run | {tput['runs'][0]['tokens']} | | | "
        f"1: {verdict(tput['runs'][0]['tokens'] == 1)} |",
        "",
        "Notes",
        "",
        "- Warm overhead is the time `Pipeline.run` takes minus the time spent inside the HTTP call to Graph: "
        "validation, policy, the cached Key Vault value, the cached token, building the outcome and logging it. "
        "For msgraph-sdk it is the time of the `acquire_access_token.post` call minus the time inside httpx.",
        "- Import: `function_app.py` imports only `azure.functions` and two small modules of `shared/` "
        "(settings, telemetry); every other module is imported by the first invocation that needs it, so the "
        "host's indexing pays for `azure.functions` and little else. A test keeps the function metadata identical "
        "to a snapshot and checks that importing `function_app` loads nothing heavy.",
        "- Throughput: one run with telemetry off, then Azure Monitor configured as in Azure (to the ingestion "
        "stand-in) for 16, 64 and 256 concurrent requests. The stand-ins share the machine's two cores with the "
        "benchmark. At 64 and more, httpx's HTTP/1.1 pool holds one connection per request in flight and "
        "httpcore re-checks every idle connection on each request; raising the keep-alive limit to 256 was tried "
        "and made 64 concurrent worse (13 % of ideal, 11 ms CPU per request). HTTP/2, which Graph serves and which "
        "would multiplex every request over one connection, cannot be measured until the Graph stand-in speaks it. "
        "The first-outcome comparison with msgraph-sdk is not measured yet.",
        '- "Ready to serve" adds what a first request imports lazily (azure-identity, azure-keyvault-secrets, '
        "httpx, aiohttp) and the clients it builds, so `import function_app` stays cheap when the host indexes "
        "the app.",
    ]
    return "\n".join(lines) + "\n"


async def in_process(
    stand: Stand, quick: bool
) -> tuple[dict[str, float], dict[str, float] | None, dict[int, float], dict[str, Any]]:
    n = 300 if quick else 2000
    ours = await warm_ours(n)
    sdk = await warm_msgraph(n)
    kv = await key_vault(stand, 5 if quick else 20)
    seconds = 2 if quick else 5
    runs = [{**await throughput(stand, seconds, 16), "telemetry": "off"}]
    from shared import telemetry

    telemetry.configure(stand.ingestion)  # as in Azure: every outcome exported to (the stand-in's) ingestion
    for concurrency in (16, 64, 256):
        runs.append({**await throughput(stand, seconds, concurrency), "telemetry": "on"})
    telemetry.flush()
    return ours, sdk, kv, {"runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, for a smoke test")
    parser.add_argument("--output", default=str(ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args(argv)
    cold = cold_start(3 if args.quick else 15)
    stand = Stand()
    try:
        ours, sdk, kv, tput = asyncio.run(in_process(stand, args.quick))
    finally:
        stand.stop()
    text = report(cold, ours, sdk, kv, tput, args.quick)
    print(text)
    Path(args.output).write_text(text, encoding="utf-8")
    return 0


run: Callable[[list[str] | None], int] = main

if __name__ == "__main__":
    raise SystemExit(main())
