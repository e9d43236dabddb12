"""``python -m shared demo``: runs the offline demo that lives beside the stand-ins in ``tests/``."""

from __future__ import annotations

import sys


def run_demo() -> int:
    try:
        from tests.demo import run_demo as demo
    except ImportError:
        print("error: the demo needs the project's tests/ folder; run it from the project root", file=sys.stderr)
        return 1
    result: int = demo()
    return result
