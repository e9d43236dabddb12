"""`make bench` reports every target beside its figure, says met or MISSED truthfully, and says whether telemetry was
on for every figure (the benchmark itself runs outside `make test`; its report is checked here with made-up figures).
"""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    return module


def throughput(concurrency: int, rps: float, telemetry: str) -> dict[str, object]:
    return {
        "concurrency": concurrency,
        "rps": rps,
        "ideal": concurrency / 0.1,
        "requests": 100,
        "tokens": 1,
        "p50": 101.0,
        "p99": 150.0,
        "cpu_ms": 1.5,
        "rss_kb_per_request": 20.0,
        "telemetry": telemetry,
    }


def results(*, import_ms: float, kv32: float, rps64: float, first_ours: float) -> dict[str, object]:
    probe = {"rss_mb": 30.0}
    first = {"ours": {"ms": first_ours}, "msgraph": {"ms": 500.0}}
    warm = {"ours": {"p50": 0.4, "p99": 0.9}, "msgraph": {"p50": 0.8, "p99": 1.5}, "bare_p50": 1.0}
    kv = {1: 50.0, 4: 52.0, 16: 58.0, 32: kv32}
    return {
        "cold": {
            "ours": {**probe, "ms": import_ms},
            "ours_beyond_functions": {**probe, "ms": import_ms - 86.0},
            "ours_package": {**probe, "ms": 80.0},
            "functions_library": {**probe, "ms": 86.0},
            "msgraph_app": {**probe, "ms": 250.0},
            "ours_ready": {**probe, "ms": 300.0},
            "msgraph": {**probe, "ms": 180.0},
        },
        "first": {f"{kind}, telemetry {t}": first for t in ("on", "off") for kind in ("function app", "library")},
        "warm": {"on": warm, "off": warm},
        "kv": {"on": kv, "off": kv},
        "throughput": [
            throughput(16, 150, "off"),
            throughput(16, 150, "on"),
            throughput(64, rps64, "on"),
            throughput(256, 900, "on"),
            throughput(64, 300, "on, every trace"),
        ],
        "proposal": [throughput(64, 600, "on")],
        "transport": [
            {"client": "aiohttp", "concurrency": 64, "rps": 600.0, "share": 0.94, "p50": 105.0, "cpu_ms": 0.2},
            {"client": "httpx, HTTP/2", "concurrency": 64, "error": "WriteError: boom"},
        ],
    }


def row(text: str, starts: str) -> str:
    [line] = [line for line in text.splitlines() if line.startswith(f"| {starts}")]
    return line


def test_each_target_is_judged_by_its_figure(bench):
    good = bench.report(results(import_ms=92, kv32=60, rps64=600, first_ours=400), quick=False)
    bad = bench.report(results(import_ms=100, kv32=70, rps64=400, first_ours=600), quick=False)
    assert row(good, "cold start: import function_app beyond").endswith("<= 10 ms: met |")
    assert row(bad, "cold start: import function_app beyond").endswith("<= 10 ms: MISSED |")
    key_vault = "Key Vault: 1 / 4 / 16 / 32 references, 50 ms per read, cache off (median), telemetry on"
    assert row(good, key_vault).endswith("<= 1.3x: met |")
    assert "1.40x one | <= 1.3x: MISSED" in bad
    assert row(good, "throughput, telemetry on: 64 concurrent").endswith(">= 80%: met |")
    assert row(bad, "throughput, telemetry on: 64 concurrent").endswith(">= 80%: MISSED |")
    assert row(good, "throughput, telemetry on, every trace: 64").endswith(">= 80%: MISSED |")
    first = "first outcome: fresh process, import to first `succeeded` (token, Key Vault, Graph), as a function app, "
    assert row(good, first + "telemetry on").endswith("ours <= msgraph-sdk: met |")
    assert row(bad, first + "telemetry on").endswith("ours <= msgraph-sdk: MISSED |")
    assert "failed: WriteError: boom" in good


def test_every_figure_of_a_run_says_whether_telemetry_was_on(bench):
    text = bench.report(results(import_ms=92, kv32=60, rps64=600, first_ours=400), quick=True)
    measures = [line for line in text.splitlines() if re.match(r"\| (throughput|warm|first|Key Vault|memory)", line)]
    assert len(measures) >= 15
    assert all("telemetry" in line for line in measures)
