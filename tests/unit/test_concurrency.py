"""One instance takes as much work at once as the benchmark says it does well: 16 requests in flight.

`make bench` (bench/RESULTS.md) measured one process at >= 90 % of ideal throughput with 16 requests in flight and far
less with 64. The HTTP per-instance concurrency (infra/app/function.bicep) and the queue trigger's batch (host.json:
the host runs at most ``batchSize`` + ``newBatchThreshold`` messages at once per queue function, per instance) are set
to that figure, and the figure they rest on is still in the report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IN_FLIGHT = 16


def test_the_queue_trigger_runs_at_most_the_measured_number_at_once():
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    assert queues["batchSize"] == 8  # one fetch; the rest is the threshold at which the host fetches the next
    assert queues["batchSize"] + queues["newBatchThreshold"] == IN_FLIGHT


def test_the_http_concurrency_is_the_same_figure():
    bicep = (ROOT / "infra" / "app" / "function.bicep").read_text()
    assert re.findall(r"perInstanceConcurrency:\s*(\d+)", bicep) == [str(IN_FLIGHT)]


def test_the_benchmark_still_reports_the_figure_it_rests_on():
    results = (ROOT / "bench" / "RESULTS.md").read_text()
    [row] = [
        line
        for line in results.splitlines()
        if line.startswith(f"| throughput, telemetry on: {IN_FLIGHT} concurrent, Graph 100 ms")
    ]
    share = int(re.search(r"\((\d+)%\)", row).group(1))  # type: ignore[union-attr]
    assert share >= 90, row
