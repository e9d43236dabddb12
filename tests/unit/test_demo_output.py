"""`make demo` (``python -m standins.demo``) ends on its own output and leaves nothing in the temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SP_ID

ROOT = Path(__file__).resolve().parents[2]
# What the demo printed last before: the exporter retrying against the stopped ingestion stand-in, the Table
# client's aiohttp session never closed, and any traceback.
NOISE = (
    "Retrying due to server request error",
    "Connection refused",
    "Unclosed client session",
    "Unclosed connector",
    "Traceback",
    "Error getting processor time",
)


def test_the_demo_ends_on_its_own_output_and_leaves_no_temporary_folder(tmp_path: Path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    # As `make demo` runs it: none of the app's settings from this process, the temporary folder our own.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDENTITY_", "GRAPH_", "KEY_VAULT"))}
    env["TMPDIR"] = str(temporary)
    result = subprocess.run(
        [sys.executable, "-m", "standins.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    noise = [line for line in (result.stdout + result.stderr).splitlines() if any(n in line for n in NOISE)]
    assert noise == []
    assert result.stderr == ""
    assert result.stdout.rstrip().splitlines()[-1].startswith("  metrics: acquire_access_token.")
    assert sorted(p.name for p in temporary.iterdir()) == []
    # What it shows: each trigger's outcome, what each stand-in saw (never a secret), the refusal and the fleet.
    out = result.stdout
    assert '"outcome": "succeeded"' in out
    assert "managed identity (" in out
    assert "GET /secrets/scim-token/" in out
    assert f"POST /v1.0/servicePrincipals/{SP_ID}/synchronization/acquireAccessToken -> 204" in out
    assert "SecretToken = <32 characters>" in out
    assert "left on 'acquire-access-token': 0, on 'acquire-access-token-poison': 0" in out
    assert "customEvent AcquireAccessTokenOutcome: outcome=succeeded, trigger=http" in out
    assert "customEvent AcquireAccessTokenOutcome: outcome=succeeded, trigger=queue" in out
    assert "-> 403 endpointNotBound" in out
    assert "  Graph calls made: 0" in out
    assert "ConnectionRecovery recover-me: EncounteredQuarantineException -> credentials: succeeded" in out
    assert "ConnectionRecovery deletes-held: TooManyDeletes -> none: needsPerson" in out
    assert "recover-me out of quarantine: True; deletes-held left to a person: True" in out
