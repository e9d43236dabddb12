"""``python -m shared`` as an operator runs it: a real process, DefaultAzureCredential, the stand-ins."""

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from standins.base import Reply
from tests.conftest import CANARIES, SCIM_URL, SP_ID, UNKNOWN_ID, request_body

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m shared ARGS`` from the project root, in this process's environment unless ``env`` is given."""
    return subprocess.run(
        [sys.executable, "-m", "shared", *args],
        cwd=ROOT,
        env=dict(os.environ) if env is None else env,
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def acquire(*credentials: str, target: str = SP_ID, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    args = ["acquire", "--service-principal", target]
    for credential in credentials:
        args += ["--credential", credential]
    return cli(*args, *extra)


def test_acquire_exits_0_and_prints_the_succeeded_outcome(app_env):
    result = acquire(f"BaseAddress={SCIM_URL}", "SecretToken=@scim-token", extra=("--correlation-id", "op-1"))
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["outcome"] == "succeeded"
    assert outcome["trigger"] == "cli"
    assert outcome["correlationId"] == "op-1"
    assert app_env.graph.authorized == [("servicePrincipals", SP_ID, ["BaseAddress", "SecretToken"])]
    for canary in CANARIES:
        assert canary not in result.stdout + result.stderr


def test_acquire_takes_a_request_file_and_app_service_style_references(app_env, tmp_path):
    host = app_env.keyvault.host
    body = request_body(
        credentials=[
            {"key": "BaseAddress", "value": SCIM_URL},
            {"key": "SecretToken", "secretRef": f"@Microsoft.KeyVault(SecretUri=https://{host}/secrets/scim-token)"},
        ],
        dryRun=True,
    )
    path = tmp_path / "request.json"
    path.write_text(json.dumps(body))
    result = cli("acquire", "--request", str(path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outcome"] == "validated"
    assert app_env.graph.seen == []


def test_acquire_reads_keyvault_style_references_from_the_command_line(app_env):
    host = app_env.keyvault.host
    ref = f"SecretToken=@Microsoft.KeyVault(SecretUri=https://{host}/secrets/scim-token)"
    result = acquire(f"BaseAddress={SCIM_URL}", ref, extra=("--dry-run",))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("credentials", "target", "code", "error"),
    [
        (("Bogus=1",), SP_ID, 2, "invalidRequest"),
        (("SecretToken=@missing-secret",), SP_ID, 3, "SecretNotFound"),
        (("BaseAddress=" + SCIM_URL, "SecretToken=@scim-token"), UNKNOWN_ID, 3, "Request_ResourceNotFound"),
    ],
)
def test_acquire_exit_codes_tell_invalid_from_rejected(app_env, credentials, target, code, error):
    result = acquire(*credentials, target=target)
    assert result.returncode == code, result.stdout + result.stderr
    assert json.loads(result.stdout)["error"]["code"] == error


def test_acquire_exits_4_when_the_failure_may_pass(app_env):
    app_env.identity.graph_roles = []
    result = acquire(f"BaseAddress={SCIM_URL}", "SecretToken=@scim-token")
    assert result.returncode == 4, result.stdout + result.stderr
    outcome = json.loads(result.stdout)
    assert (outcome["outcome"], outcome["retryable"]) == ("failed", True)


def test_usage_errors_exit_2_with_a_message(app_env):
    result = cli("acquire", "--service-principal", SP_ID, "--credential", "no-equals-sign")
    assert result.returncode == 2
    assert "expected KEY=VALUE or KEY=@REF" in result.stderr
    result = cli("acquire", "--request", "/nonexistent/request.json")
    assert result.returncode == 2
    assert "cannot read" in result.stderr


def test_a_bad_setting_is_named_and_exits_4(app_env, monkeypatch):
    monkeypatch.setenv("GRAPH_API_VERSION", "v9")
    result = acquire(f"BaseAddress={SCIM_URL}")
    assert result.returncode == 4
    assert "GRAPH_API_VERSION" in result.stderr


def test_the_apps_command_line_has_no_demo_and_never_imports_the_stand_ins():
    """The deployed package has no standins/: a command needing them would always fail there."""
    import ast

    result = cli("demo")
    assert result.returncode == 2
    assert "invalid choice: 'demo'" in result.stderr
    for path in (ROOT / "shared").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(name.split(".")[0] == "standins" for name in names), path


# ---- settings the command line cannot use: one line naming the setting, the documented exit status ----------------


def one_line_naming(result: subprocess.CompletedProcess[str], setting: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert setting in lines[0]
    return lines[0]


CONNECTION_COMMANDS = [
    ("connections", "list"),
    ("connections", "get", "contoso-scim"),
    ("connections", "delete", "contoso-scim"),
    ("connections", "run", "contoso-scim"),
    ("connections", "put", "contoso-scim", "--request", "-"),
]


@pytest.mark.parametrize("command", CONNECTION_COMMANDS, ids=lambda c: c[1])
@pytest.mark.parametrize(
    ("variables", "setting"),
    [
        ({}, "AzureWebJobsStorage"),
        ({"AzureWebJobsStorage": "garbage"}, "AzureWebJobsStorage"),
        ({"AzureWebJobsStorage": "AccountName=x"}, "AzureWebJobsStorage"),
        ({"AzureWebJobsStorage__tableServiceUri": "::::"}, "AzureWebJobsStorage__tableServiceUri"),
    ],
    ids=["unset", "garbage", "no-key", "bad-uri"],
)
def test_connections_without_usable_storage_exit_4_with_one_line_naming_the_setting(
    app_env, command, variables, setting
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AzureWebJobsStorage")} | variables
    result = cli(*command, stdin=json.dumps(request_body(correlationId=None)).encode(), env=env)
    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stdout == ""
    one_line_naming(result, setting)


@pytest.mark.parametrize(
    ("variables", "extra", "code", "setting"),
    [
        ({}, (), 2, "AzureWebJobsStorage"),
        ({"AzureWebJobsStorage": "garbage"}, (), 4, "AzureWebJobsStorage"),
        ({}, ("--connection-string", "garbage"), 2, "--connection-string"),
    ],
    ids=["unset", "garbage-setting", "garbage-flag"],
)
def test_enqueue_without_a_usable_queue_names_where_it_looked(app_env, tmp_path, variables, extra, code, setting):
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request_body()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AzureWebJobsStorage")} | variables
    result = cli("enqueue", "--request", str(path), *extra, env=env)
    assert result.returncode == code, result.stdout + result.stderr
    one_line_naming(result, setting)


def test_an_application_insights_connection_string_that_cannot_be_used_is_named(app_env):
    env = dict(os.environ) | {"APPLICATIONINSIGHTS_CONNECTION_STRING": "garbage"}
    result = cli("acquire", "--service-principal", SP_ID, "--credential", f"BaseAddress={SCIM_URL}", env=env)
    assert result.returncode == 4, result.stdout + result.stderr
    one_line_naming(result, "APPLICATIONINSIGHTS_CONNECTION_STRING")


# ---- one readable outcome; the details with --verbose --------------------------------------------------------------


def test_retries_and_the_outcome_record_stay_off_the_terminal_without_verbose(app_env):
    app_env.graph.fail_next(*[Reply(503, {"error": {"code": "serviceNotAvailable", "message": "x"}})] * 2)
    result = acquire(f"BaseAddress={SCIM_URL}", "SecretToken=@scim-token")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["graph"]["attempts"] == 3
    assert result.stderr == ""  # no bare stamina.retry_scheduled, no second copy of the outcome


def test_a_refused_outcome_is_printed_once(app_env):
    result = acquire("SecretToken=@missing-secret")
    assert result.returncode == 3
    assert json.loads(result.stdout)["error"]["code"] == "SecretNotFound"
    assert "AcquireAccessTokenOutcome" not in result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_logs_the_retries_and_the_outcome_record_to_stderr(app_env, where):
    app_env.graph.fail_next(*[Reply(503, {"error": {"code": "serviceNotAvailable", "message": "x"}})] * 2)
    args = ["acquire", "--service-principal", SP_ID, "--credential", f"BaseAddress={SCIM_URL}"]
    args += ["--credential", "SecretToken=@scim-token"]
    result = cli(*(["--verbose", *args] if where == "before" else [*args, "--verbose"]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["outcome"] == "succeeded"
    assert "stamina.retry_scheduled" not in result.stderr  # spelled out instead
    assert "WARNING stamina: retry 1 of " in result.stderr
    assert "WARNING stamina: retry 2 of " in result.stderr
    assert "INFO shared.outcome: AcquireAccessTokenOutcome {" in result.stderr
    for canary in CANARIES:
        assert canary not in result.stdout + result.stderr


def test_no_token_says_the_command_line_signs_in_with_default_azure_credential(app_env):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    env = dict(os.environ) | {"IDENTITY_ENDPOINT": f"http://127.0.0.1:{closed}/msi/token"}
    env = {k: v for k, v in env.items() if not k.startswith("AZURE_")}
    result = cli("acquire", "--service-principal", SP_ID, "--credential", "SecretToken=@scim-token", env=env)
    assert result.returncode == 4, result.stdout + result.stderr
    assert json.loads(result.stdout)["error"]["code"] == "tokenUnavailable"
    [line] = result.stderr.strip().splitlines()
    assert "DefaultAzureCredential" in line
    assert "not with the function app's managed identity" in line


# ---- one round of validation; pages only from tokens a page gave ---------------------------------------------------


def test_every_problem_of_a_request_is_reported_at_once(app_env, tmp_path):
    path = tmp_path / "request.json"
    path.write_text(json.dumps({"servicePrincipalId": "nope"}))
    result = cli("acquire", "--request", str(path))
    assert result.returncode == 2
    message = json.loads(result.stdout)["error"]["message"]
    assert "credentials: required" in message
    assert "'servicePrincipalId' must be a GUID" in message


def test_a_continuation_token_no_page_gave_is_refused_with_exit_2(app_env, azurite, monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("CONNECTIONS_TABLE", "cli" + uuid.uuid4().hex[:12])
    body = json.dumps(request_body(correlationId=None)).encode()
    for name in ("alpha", "beta", "gamma"):
        assert cli("connections", "put", name, "--request", "-", stdin=body).returncode == 0
    first = cli("connections", "list", "--top", "2")
    assert first.returncode == 0, first.stderr
    page = json.loads(first.stdout)
    assert [c["name"] for c in page["value"]] == ["alpha", "beta"]
    second = cli("connections", "list", "--top", "2", "--continuation-token", page["continuationToken"])
    assert [c["name"] for c in json.loads(second.stdout)["value"]] == ["gamma"]
    for token in ("garbage", "gamma", page["continuationToken"][:-1], "gamma." + "0" * 8):
        result = cli("connections", "list", "--continuation-token", token)
        assert result.returncode == 2, (token, result.stdout, result.stderr)
        assert result.stdout == ""
        assert "continuationToken is not one a previous page gave" in one_line_naming(result, "continuationToken")


def test_a_json_number_is_refused_naming_the_field_with_exit_2(app_env, tmp_path):
    path = tmp_path / "request.json"
    body = json.dumps(request_body()).replace('"ticket-4711"', "1" * 5000)
    path.write_text(body)
    result = cli("acquire", "--request", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "correlationId: Input should be a valid string" in json.loads(result.stdout)["error"]["message"]
    result = cli("enqueue", "--request", str(path), "--connection-string", "UseDevelopmentStorage=true")
    assert result.returncode == 2
    assert "correlationId: Input should be a valid string" in one_line_naming(result, "correlationId")
