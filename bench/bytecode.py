"""The first request's imports of the app's own modules, with and without bytecode caches.

Flex Consumption runs the app from a read-only package, where Python cannot write ``__pycache__``: a module without
a valid cache is compiled from source in every new process, on every instance. The remote build (Oryx) installs
requirements.txt with pip, which compiles the installed packages, but compiles nothing of the app's own, and copies
the files with ``rsync -rcE`` (no ``--times``), so a cache that records its source's modification time no longer
matches after the copy; a cache that records the source's hash does. Each mode below is a copy of the app
(function_app.py, host.json, shared/) in a temporary folder, imported in fresh processes that may not write caches:

- ``source``: no caches, as deployed today: every module compiled from source;
- ``stale``: timestamp caches (compileall's default) whose sources' times then changed, as after Oryx's copy;
- ``timestamp``: valid timestamp caches, what a writable folder has from the second start on;
- ``checked-hash``: caches that record the source's hash (``make bytecode``), checked against the source, sources'
  times changed as after the copy.

The modules timed are those a first HTTP request loads (found by running one against the stand-ins), imported after
``azure.functions`` (which every Python function app pays, and which comes compiled from pip in every mode).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODES = ("source", "stale", "timestamp", "checked-hash")

DISCOVER = """
import asyncio, json, sys
sys.path.insert(0, {app!r})
import azure.functions as func
import function_app
request = func.HttpRequest(
    "POST",
    "http://localhost:7071/api/servicePrincipals/{sp}/synchronization/acquireAccessToken",
    route_params={{"id": {sp!r}}},
    headers={{"Content-Type": "application/json"}},
    body={body!r},
)
handler = function_app.acquire_for_service_principal.build().get_user_function()
outcome = json.loads(asyncio.run(handler(request)).get_body())
assert outcome["outcome"] == "succeeded", outcome
print(json.dumps(sorted(m for m in sys.modules if m == "function_app" or m == "shared" or m.startswith("shared."))))
"""

PROBE = """
import importlib, json, sys, time
sys.path.insert(0, {app!r})
import azure.functions
started = time.perf_counter()
for name in {modules!r}:
    importlib.import_module(name)
elapsed = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed}}))
"""


def copy_app(destination: Path) -> Path:
    destination.mkdir(parents=True)
    for name in ("function_app.py", "host.json"):
        shutil.copy2(ROOT / name, destination / name)
    shutil.copytree(ROOT / "shared", destination / "shared", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return destination


def compile_app(app: Path, mode: str | None) -> None:
    if mode is None:
        return
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-f", "--invalidation-mode", mode, "function_app.py", "shared"],
        cwd=app,
        check=True,
    )


def touch_sources(app: Path, seconds: float = 120) -> None:
    """What a copy without --times does: every source gets a new modification time."""
    for source in [app / "function_app.py", *(app / "shared").rglob("*.py")]:
        stat = source.stat()
        os.utime(source, (stat.st_atime + seconds, stat.st_mtime + seconds))


def prepare(work: Path) -> dict[str, Path]:
    apps = {mode: copy_app(work / mode.replace("-", "_")) for mode in MODES}
    compile_app(apps["stale"], "timestamp")
    touch_sources(apps["stale"])
    compile_app(apps["timestamp"], "timestamp")
    compile_app(apps["checked-hash"], "checked-hash")
    touch_sources(apps["checked-hash"])
    return apps


def caches(app: Path) -> list[Path]:
    return sorted(app.rglob("__pycache__/*.pyc"))


def measure(env: dict[str, str], runs: int, body: bytes, sp: str) -> dict[str, Any]:
    """Median time of the first request's app imports in each mode (fresh processes, modes taking turns)."""
    work = Path(tempfile.mkdtemp(prefix="bench-bytecode-"))
    try:
        env = {**env, "PYTHONDONTWRITEBYTECODE": "1"}  # a read-only package: nothing is written, in any mode
        discovery = copy_app(work / "discover")
        found = subprocess.run(
            [sys.executable, "-c", DISCOVER.format(app=str(discovery), sp=sp, body=body)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        modules = json.loads(found.stdout.strip().splitlines()[-1])
        apps = prepare(work)
        before = {mode: [(p, p.stat().st_mtime_ns) for p in caches(app)] for mode, app in apps.items()}
        samples: dict[str, list[float]] = {mode: [] for mode in MODES}
        for round_ in range(runs + 1):
            for mode, app in apps.items():
                code = PROBE.format(app=str(app), modules=modules)
                out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
                if round_:  # the first round warms the file system cache
                    samples[mode].append(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
        after = {mode: [(p, p.stat().st_mtime_ns) for p in caches(app)] for mode, app in apps.items()}
        assert before == after, "a measured process wrote a cache"
        assert not before["source"], "the source mode has caches"
        return {
            "modules": len(modules),
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            **{mode: statistics.median(taken) * 1000 for mode, taken in samples.items()},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rows(result: dict[str, Any]) -> list[str]:
    """The report's rows: each mode, and what is shipped beside its target."""
    name = "first request's app imports"
    shipped, baseline, source = result["checked-hash"], result["timestamp"], result["source"]
    ok = shipped <= 1.15 * baseline
    return [
        f"| {name}, compiled from source: no caches, as the remote build deploys the app's modules ({result['modules']} "
        f"modules of function_app and shared/ and the packages they import, after azure.functions; fresh processes "
        f"that cannot write caches; Python {result['python']}) | {source:.1f} ms | | | reported |",
        f"| {name}, timestamp caches made stale by a copy that resets the sources' times (Oryx's rsync) | "
        f"{result['stale']:.1f} ms | | | reported |",
        f"| {name}, valid timestamp caches (a writable folder, from its second start) | {baseline:.1f} ms | | | "
        "reported |",
        f"| {name}, checked-hash caches after the same copy (`make bytecode`: what is shipped) | {shipped:.1f} ms | "
        f"| {source - shipped:.1f} ms saved, {source / shipped:.1f}x faster than from source | <= 1.15x valid caches: "
        f"{'met' if ok else 'MISSED'} |",
    ]


ROW_PREFIX = "| first request's app imports"


def splice(report: str, new_rows: list[str]) -> str:
    """Put the rows into an existing report in place of the old ones, or after the import rows."""
    lines = [line for line in report.splitlines() if not line.startswith(ROW_PREFIX)]
    anchor = next(
        (i for i, line in enumerate(lines) if line.startswith("| ready to serve")),
        next(i for i, line in enumerate(lines) if line.startswith("| --- |")),
    )
    return "\n".join(lines[: anchor + 1] + new_rows + lines[anchor + 1 :]) + "\n"
