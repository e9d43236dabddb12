"""What is deployed (``.funcignore``) and what a copied ``local.settings.sample.json`` starts with."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pathspec
import pytest

from shared.settings import SETTING_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]
APP_FILES = {"function_app.py", "host.json", "requirements.txt"}  # and everything under shared/

# What the project's own commands leave in the project folder: the virtual environments of `make install`,
# `make worker` and `make bench`, npm's node_modules, the tools' caches, bytecode, azd's environments, Azurite's
# data when it is started by hand in the folder (its default names, or --location .azurite), Core Tools' settings.
CREATED = [
    ".venv/bin/python",
    ".venv/lib/python3.11/site-packages/azure/functions/__init__.py",
    ".venv/.installed",
    ".venv-313/bin/python3.13",
    ".venv-313/lib/python3.13/site-packages/azure_functions_runtime/__init__.py",
    ".venv-infra/bin/checkov",
    ".venv-bench/lib/python3.11/site-packages/msgraph/__init__.py",
    "node_modules/.bin/azurite",
    "node_modules/.installed",
    "node_modules/azurite/package.json",
    ".azure/config.json",
    ".azure/dev/.env",
    ".azurite/__azurite_db_queue__.json",
    "__azurite_db_queue__.json",
    "__azurite_db_queue_extent__.json",
    "__azurite_db_table__.json",
    "__blobstorage__/0a1b",
    "__queuestorage__/0a1b",
    "__tablestorage__/0a1b",
    "__pycache__/function_app.cpython-311.pyc",
    "__pycache__/function_app.cpython-314.pyc",
    "shared/__pycache__/pipeline.cpython-311.pyc",
    "shared/__pycache__/pipeline.cpython-312.pyc",
    "shared/__pycache__/pipeline.cpython-313.opt-1.pyc",
    "shared/__pycache__/pipeline.cpython-313t.pyc",
    "standins/__pycache__/serve.cpython-313.pyc",
    "tests/unit/__pycache__/test_packaging.cpython-311-pytest-9.2.0.pyc",
    ".pytest_cache/v/cache/nodeids",
    ".mypy_cache/3.11/shared/pipeline.data.json",
    ".ruff_cache/0.17.6/1234",
    ".hypothesis/examples/0a/1b",
    ".coverage",
    "build/lib/shared/__init__.py",
    "entra_provisioning_authorizer.egg-info/PKG-INFO",
    "local.settings.json",
    ".vscode/settings.json",
]


def funcignore_lines(text: str | None = None) -> list[str]:
    text = (ROOT / ".funcignore").read_text(encoding="utf-8") if text is None else text
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def gitignore_excludes(lines: list[str]) -> pathspec.PathSpec:
    """git's own rules (azd reads the file as a gitignore file)."""
    return pathspec.GitIgnoreSpec.from_lines(lines)


def core_tools_excludes(lines: list[str]) -> re.Pattern[str]:
    """Core Tools' matcher (``func azure functionapp publish``), as its GitIgnoreParser builds it: each pattern
    (a leading ``/`` dropped) becomes a regular expression anchored at the start of the relative path and ended by a
    word boundary, ``**`` any characters, ``*`` any but ``/``. A name matches at the root only."""

    def regex(pattern: str) -> str:
        escaped = re.sub(r"[\-\[\]/{}()+?.\\^$|]", lambda m: "\\" + m.group(0), pattern)
        return escaped.replace("**", "(.+)").replace("*", "([^\\/]+)")

    patterns = sorted(line[1:] if line.startswith("/") else line for line in lines)
    return re.compile("^((" + ")|(".join(regex(p) for p in patterns) + "))\\b", re.ASCII)


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [line for line in listed.splitlines() if (ROOT / line).is_file()]


def deployed(lines: list[str], paths: list[str]) -> dict[str, set[str]]:
    spec, core_tools = gitignore_excludes(lines), core_tools_excludes(lines)
    return {
        "gitignore": {p for p in paths if not spec.match_file(p)},
        "core tools": {p for p in paths if not core_tools.match(p)},
    }


def is_app_file(path: str) -> bool:
    return path in APP_FILES or path.startswith("shared/")


def test_the_funcignore_has_no_negations():
    """Core Tools' matcher and git's disagree on negations; plain patterns mean the same to both."""
    assert not [line for line in funcignore_lines() if line.startswith("!")]


def test_of_the_tracked_files_exactly_the_app_is_deployed():
    files = tracked_files()
    app = {path for path in files if is_app_file(path)}
    assert app >= APP_FILES
    assert "shared/__init__.py" in app
    for matcher, kept in deployed(funcignore_lines(), files).items():
        assert kept - app == set(), f"{matcher} deploys what is not the app"
        assert app - kept == set(), f"{matcher} leaves out part of the app"


@pytest.mark.parametrize("path", CREATED)
def test_nothing_the_project_commands_create_is_deployed(path: str):
    for matcher, kept in deployed(funcignore_lines(), [path]).items():
        assert not kept, f"{matcher} deploys {path}"


# The runtime's bytecode of the app (`make bytecode`): the deployed package is read-only, so what is not shipped
# compiled is compiled from source in every new process.
RUNTIME_BYTECODE = ["__pycache__/function_app.cpython-313.pyc", "shared/__pycache__/pipeline.cpython-313.pyc"]


@pytest.mark.parametrize("path", RUNTIME_BYTECODE)
def test_the_runtimes_bytecode_of_the_app_is_deployed(path: str):
    for matcher, kept in deployed(funcignore_lines(), [path]).items():
        assert kept == {path}, f"{matcher} leaves out {path}"


def test_make_bytecode_compiles_the_app_as_the_deployed_runtime_reads_it():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    [command] = [line.strip() for line in makefile.splitlines() if "compileall" in line]
    assert command.startswith("$(PYTHON313) -m compileall")  # the runtime's version: its cache tag, cpython-313
    assert "--invalidation-mode checked-hash" in command  # valid after a copy that resets times, never stale
    assert command.endswith(" function_app.py shared")


def test_the_checks_catch_what_the_old_funcignore_shipped():
    """The matchers are not vacuous: under git's rules the file as it was deployed a Python 3.13 environment, azd's
    environments and the npm files; under Core Tools' a root-only name left a development Python's bytecode in."""
    old = [".git*", ".venv", ".vscode", "__pycache__", "node_modules", "tests", "bench", "docs", "infra", "standins"]
    shipped = deployed(old, CREATED + tracked_files())
    wrongly_shipped = {".venv-313/bin/python3.13", ".azure/config.json", "package.json", "scripts/audit.py"}
    assert shipped["gitignore"] >= wrongly_shipped
    assert "shared/__pycache__/pipeline.cpython-311.pyc" in shipped["core tools"]


# --- local.settings.sample.json ---------------------------------------------------------------------------------

SAMPLE = ROOT / "local.settings.sample.json"
# Read by the Functions host, the Python worker or the Azure Monitor exporter, not by the app's Settings.
HOST_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "AzureWebJobsStorage",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
    "PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
# App settings of the contract's settings table with the value they must have in the sample (their defaults).
DEFAULTS = {
    "SECRET_BINDING": "required",
    "CALLER_AUTH": "key",
    "CONNECTION_QUEUE_NAME": "connection-work",
    "RECOVERY_MIN_HOURS": "12",
}


def sample_values() -> dict[str, str]:
    values = json.loads(SAMPLE.read_text(encoding="utf-8"))["Values"]
    assert all(isinstance(value, str) for value in values.values()), "app settings are strings"
    return dict(values)


def test_the_sample_parses_with_the_app_settings():
    values = sample_values()
    settings = Settings.from_env(values)  # raises SettingsError naming a setting it cannot parse
    for name in DEFAULTS.keys() & set(SETTING_NAMES):  # the new settings Settings already knows
        parsed = getattr(settings, name.lower())
        assert str(parsed) == values[name] or parsed == float(values[name]), name


def test_the_sample_names_only_settings_someone_reads():
    unknown = set(sample_values()) - set(SETTING_NAMES) - HOST_SETTINGS - set(DEFAULTS)
    assert not unknown
    assert "REQUIRED_APP_ROLE" not in sample_values()


def test_the_sample_carries_the_new_settings_at_their_defaults():
    values = sample_values()
    assert {name: values.get(name) for name in DEFAULTS} == DEFAULTS


def test_a_copied_sample_does_not_turn_telemetry_on_without_a_target():
    """The worker's configure_azure_monitor refuses an empty connection string, and the exporter logs an error for
    an empty authentication string: a copied sample must start under `func start` as it is."""
    values = sample_values()
    connection_string = values.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()
    if values.get("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", "").strip().lower() == "true":
        assert connection_string, "telemetry on with an empty APPLICATIONINSIGHTS_CONNECTION_STRING"
    if "APPLICATIONINSIGHTS_AUTHENTICATION_STRING" in values:
        assert values["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].strip(), "an empty authentication string"
