"""The credential lifecycle steps' table: each step's name and what is true of it, in the order the docs list them.

One row per step; everything else is derived from it (the request's step enum and rules, the OpenAPI enum, the
runner's dry-run and "already applied" rules). The step functions are attached by name in :mod:`shared.steps`,
which refuses a table row without a function or a function without a row. This module imports nothing, so the
request model can use it without loading the Graph client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

__all__ = [
    "CHANGING_STEPS",
    "DRY_RUN_STEPS",
    "JOB_STEPS",
    "SERVICE_PRINCIPAL_STEPS",
    "STEP_FACTS",
    "STEP_NAMES",
    "STEP_TABLE",
    "StepFacts",
    "StepName",
]

StepName = Literal[
    "validateCredentials", "acquireAccessToken", "saveSecrets", "startJob", "restartJob", "provisionOnDemand"
]


@dataclass(frozen=True, slots=True)
class StepFacts:
    name: StepName
    needs_job: bool  # acts on a synchronization job (jobId, or the service principal's only job)
    changes_state: bool  # changes something in Entra ID: a later failure says it was already applied
    runs_in_dry_run: bool  # a dry run is a connection test: the steps that change nothing still run
    needs_service_principal: bool  # refused for an application target


STEP_TABLE: tuple[StepFacts, ...] = (
    StepFacts("validateCredentials", needs_job=True, changes_state=False, runs_in_dry_run=True,
              needs_service_principal=True),
    StepFacts("acquireAccessToken", needs_job=False, changes_state=True, runs_in_dry_run=False,
              needs_service_principal=False),
    StepFacts("saveSecrets", needs_job=False, changes_state=True, runs_in_dry_run=False,
              needs_service_principal=True),
    StepFacts("startJob", needs_job=True, changes_state=True, runs_in_dry_run=False,
              needs_service_principal=True),
    StepFacts("restartJob", needs_job=True, changes_state=True, runs_in_dry_run=False,
              needs_service_principal=True),
    StepFacts("provisionOnDemand", needs_job=True, changes_state=True, runs_in_dry_run=False,
              needs_service_principal=True),
)  # fmt: skip

STEP_NAMES: tuple[StepName, ...] = tuple(step.name for step in STEP_TABLE)
if get_args(StepName) != STEP_NAMES:  # the Literal is for the type checker; the table is the source
    raise RuntimeError(f"StepName {get_args(StepName)} and the step table {STEP_NAMES} disagree")
STEP_FACTS: dict[StepName, StepFacts] = {step.name: step for step in STEP_TABLE}

JOB_STEPS = frozenset(step.name for step in STEP_TABLE if step.needs_job)
CHANGING_STEPS = frozenset(step.name for step in STEP_TABLE if step.changes_state)
DRY_RUN_STEPS = frozenset(step.name for step in STEP_TABLE if step.runs_in_dry_run)
SERVICE_PRINCIPAL_STEPS = frozenset(step.name for step in STEP_TABLE if step.needs_service_principal)
