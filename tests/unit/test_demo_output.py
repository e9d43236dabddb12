"""`make demo` (``python -m standins.demo``) ends on its own output and leaves nothing in the temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
    env = {**os.environ, "TMPDIR": str(temporary)}  # as `make demo` runs it, the temporary folder our own
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
