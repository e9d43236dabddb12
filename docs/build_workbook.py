"""Write docs/workbook.json from the queries in docs/queries/ (one source for both).

Run: python docs/build_workbook.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

PANELS = [
    ("success-rate.kql", "Success rate by trigger", "table"),
    ("failures-by-graph-error.kql", "Rejections and failures by error code", "table"),
    ("latency-percentiles.kql", "Latency percentiles (ms)", "table"),
    ("rotations-applied.kql", "Key Vault rotations applied to connections", "table"),
    ("expiring-secrets.kql", "Secrets expiring soon or expired, per connection", "table"),
    ("quarantined-jobs.kql", "Provisioning jobs in quarantine", "table"),
    ("connection-changes.kql", "Connection changes: who, what, where it points", "table"),
    ("fleet-health.kql", "Fleet by health score (lowest first)", "table"),
    ("recoveries.kql", "Recoveries and work that reached the poison queue", "table"),
]


def query(name: str) -> str:
    return (HERE / "queries" / name).read_text(encoding="utf-8").strip()


def workbook() -> dict[str, object]:
    items: list[dict[str, object]] = [
        {
            "type": 1,
            "content": {
                "json": "## Entra provisioning authorizer\nOutcomes of requests and connection runs "
                "(`AcquireAccessTokenOutcome`), rotations, expiring secrets (`SecretExpiryWarning`) and the sweep's "
                "view of each connection (`ConnectionHealth`)."
            },
            "name": "title",
        },
        {
            "type": 9,
            "content": {
                "version": "KqlParameterItem/1.0",
                "parameters": [
                    {
                        "id": "timerange",
                        "version": "KqlParameterItem/1.0",
                        "name": "TimeRange",
                        "type": 4,
                        "isRequired": True,
                        "value": {"durationMs": 86400000},
                        "typeSettings": {"allowCustom": True},
                    }
                ],
            },
            "name": "parameters",
        },
    ]
    for file_name, title, visualization in PANELS:
        items.append(
            {
                "type": 3,
                "content": {
                    "version": "KqlItem/1.0",
                    "query": query(file_name),
                    "size": 0,
                    "title": title,
                    "timeContextFromParameter": "TimeRange",
                    "queryType": 0,
                    "resourceType": "microsoft.insights/components",
                    "visualization": visualization,
                },
                "name": file_name.removesuffix(".kql"),
            }
        )
    return {
        "version": "Notebook/1.0",
        "items": items,
        "isLocked": False,
        "fallbackResourceIds": [],
        "$schema": "https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json",
    }


if __name__ == "__main__":
    (HERE / "workbook.json").write_text(json.dumps(workbook(), indent=2) + "\n", encoding="utf-8")
