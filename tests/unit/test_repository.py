"""The repository stands on its own, and its reference says what the code does."""

import ast
import re
import subprocess
from pathlib import Path

from shared.settings import SETTING_NAMES

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference.md"


def tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in listed.splitlines() if (ROOT / line).is_file()]


def test_nothing_sends_a_reader_outside_the_repository():
    team_folder = "../" + "shared"
    contract = "CONTRACT" + ".md"
    section = "CONTRACT" + " section"
    offenders = []
    for path in tracked_files():
        if path.suffix in (".png", ".lock") or path.name == "package-lock.json":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if team_folder in text or contract in text or section in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders


def imported_modules(package: Path) -> set[str]:
    found = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
    return found


def test_the_app_package_depends_on_neither_the_tests_nor_the_stand_ins_nor_azure_functions():
    modules = imported_modules(ROOT / "shared")
    assert not {m for m in modules if m == "tests" or m.startswith("tests.")}
    assert not {m for m in modules if m == "azure.functions" or m.startswith("azure.functions.")}
    # The demo is `python -m standins.demo` (make demo): the deployed app, which ships without standins/, never
    # imports them.
    assert not {m for m in modules if m == "standins" or m.startswith("standins.")}


def test_the_stand_ins_are_not_deployed():
    ignored = (ROOT / ".funcignore").read_text().split()
    assert {"tests", "standins", "bench", "docs", "infra"} <= set(ignored)


def table_rows(heading: str) -> list[list[str]]:
    text = REFERENCE.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_reference_lists_exactly_the_app_settings():
    names = [row[0].strip("`") for row in table_rows("App settings")[1:]]
    assert names == list(SETTING_NAMES)


def test_the_reference_lists_exactly_the_http_routes(app_functions):
    rows = table_rows("HTTP routes")
    routes = {
        re.match(r"`(GET|POST|PUT|DELETE) /api/(\S+)`", row[0]).group(2) for row in rows if row[0].startswith("`")
    }
    served = {f.get_trigger().route for f in app_functions if f.get_trigger().type == "httpTrigger"}
    assert routes == served


def test_the_reference_lists_every_status_the_openapi_document_names():
    from shared.openapi import openapi_document

    statuses = {row[0] for row in table_rows("HTTP routes") if row[0].isdigit()}
    documented = {
        code
        for path in openapi_document()["paths"].values()
        for op in path.values()
        if isinstance(op, dict)
        for code in op["responses"]
    }
    assert documented <= statuses


def requirement_lines(name: str) -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_every_dependency_is_pinned():
    # requirements.txt is the hashed lock made from requirements.in (tests/unit/test_lock.py checks it).
    for name in ("requirements.in", "requirements-dev.txt", "requirements-worker.txt", "requirements-infra.txt"):
        for line in requirement_lines(name):
            assert re.match(r"^[A-Za-z0-9_.-]+==[0-9][^;\s]*(\s*;\s*python_version\s*[<>=]+\s*\"3\.\d+\")?$", line), (
                f"{name}: {line}"
            )


def test_python_313_deploys_with_the_worker_runtime_pinned():
    lines = requirement_lines("requirements.in")
    assert 'azure-functions-runtime==1.3.0; python_version >= "3.13"' in lines
    assert 'azure-functions==2.3.0; python_version >= "3.13"' in lines
    assert 'azure-functions==1.26.0; python_version < "3.13"' in lines
    lock = (ROOT / "requirements.txt").read_text()  # what the remote build installs
    assert "azure-functions-runtime==1.3.0 ; python_full_version >= '3.13'" in lock
    assert "azure-functions==2.3.0 ; python_full_version >= '3.13'" in lock
    function = (ROOT / "infra" / "app" / "function.bicep").read_text()
    assert re.search(r"name: 'python'\s*\n(\s*//.*\n)*\s*version: '3\.13'", function)
