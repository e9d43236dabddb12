"""``python -m shared`` as an operator runs it: a real process, DefaultAzureCredential, the stand-ins."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_the_demo_runs_offline_and_ends_with_a_succeeded_outcome_and_what_each_stand_in_saw():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDENTITY_", "GRAPH_", "KEY_VAULT"))}
    result = cli("demo", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert '"outcome": "succeeded"' in out
    assert "managed identity (" in out
    assert "GET /secrets/scim-token/" in out
    assert f"POST /v1.0/servicePrincipals/{SP_ID}/synchronization/acquireAccessToken -> 204" in out
    assert "SecretToken = <32 characters>" in out
    assert "left on 'acquire-access-token': 0, on 'acquire-access-token-poison': 0" in out
    assert "customEvent AcquireAccessTokenOutcome: outcome=succeeded, trigger=http" in out
    assert "customEvent AcquireAccessTokenOutcome: outcome=succeeded, trigger=queue" in out
    assert "metrics: acquire_access_token.duration, acquire_access_token.outcomes" in out
