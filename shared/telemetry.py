"""Outcome telemetry (CONTRACT section 6).

Every outcome is logged as one structured line on the ``shared.outcome`` logger. Values never appear: the
outcome carries key names only.
"""

from __future__ import annotations

import json
import logging

from .outcome import Outcome

__all__ = ["emit_outcome"]

EVENT_NAME = "AcquireAccessTokenOutcome"

outcome_log = logging.getLogger("shared.outcome")


def emit_outcome(outcome: Outcome) -> None:
    level = logging.INFO if outcome.ok else logging.WARNING
    outcome_log.log(level, "%s %s", EVENT_NAME, json.dumps(outcome.to_dict(), separators=(",", ":")))
