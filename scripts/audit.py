"""pip-audit of the installed environment (the app's and the test tools' pinned packages).

Fails on any known vulnerability that is not waived in scripts/audit-waivers.txt (one id per line, with the
reason). pip-audit asks PyPI's JSON API for advisories; where that API cannot be reached (some build machines
only reach the package index), it says so loudly and skips, rather than reporting a clean audit that did not
happen.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from importlib.metadata import version
from pathlib import Path

WAIVERS = Path(__file__).with_name("audit-waivers.txt")
# pip-audit asks for each pinned release; probe one the same way.
PROBE = f"https://pypi.org/pypi/httpx/{version('httpx')}/json"


def reachable() -> bool:
    try:
        with urllib.request.urlopen(PROBE, timeout=15) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, TimeoutError, OSError):
        return False


def main() -> int:
    if not reachable():
        print(f"pip-audit: SKIPPED: PyPI's vulnerability API ({PROBE}) cannot be reached from this machine")
        return 0
    ignores: list[str] = []
    for line in WAIVERS.read_text().splitlines():
        vuln_id = line.split("#", 1)[0].strip()
        if vuln_id:
            ignores += ["--ignore-vuln", vuln_id]
    command = [sys.executable, "-m", "pip_audit", "--strict", "--progress-spinner", "off", *ignores]
    return subprocess.run(command, check=False).returncode  # noqa: S603 - our own interpreter and arguments


if __name__ == "__main__":
    raise SystemExit(main())
