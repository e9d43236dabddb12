"""Indexing: what the host sees of the app, and what importing function_app costs on a cold start."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT / "tests" / "data" / "function_metadata.json"


def test_the_function_metadata_is_exactly_the_snapshot(app_functions):
    # Any change to a binding (name, route, methods, auth level, expression) shows here and must be deliberate:
    # regenerate the snapshot and say why in the commit.
    metadata = {
        f.get_function_name(): json.loads(json.dumps([b.get_dict_repr() for b in f.get_bindings()], default=str))
        for f in app_functions
    }
    assert metadata == json.loads(SNAPSHOT.read_text())


def test_importing_the_function_app_loads_nothing_heavy_and_calls_nothing():
    probe = (
        "import sys, socket\n"
        "def refuse(*a, **k): raise AssertionError('network at import')\n"
        "socket.socket.connect = refuse\n"
        "import function_app\n"
        "heavy = ('pydantic', 'httpx', 'azure.identity', 'azure.keyvault', 'azure.data', 'opentelemetry', 'aiohttp',\n"
        "         'azure.monitor', 'stamina')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy) or m.startswith('shared')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(result.stdout.replace("'", '"')) == ["shared", "shared.settings", "shared.telemetry"]


def test_each_trigger_reaches_the_app_in_one_typed_hop():
    # A helper returning ModuleType makes every call behind it Any under strict mypy: each trigger imports the module
    # it calls in its own body instead, so the call is checked against the module's signatures (and stays lazy).
    import ast

    tree = ast.parse((ROOT / "function_app.py").read_text())
    untyped = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "ModuleType" in ast.unparse(node.returns or "")
    ]
    assert untyped == []
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert "types" not in imported
