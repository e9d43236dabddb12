"""Recovery playbooks: a quarantined job healed by the step its quarantine reason calls for (docs/fleet.md).

Opt in per connection (``"recovery": true`` in its stored request). The connection-work queue's ``check`` reads the
job; when it is in quarantine, :func:`recover` picks the playbook for ``quarantine.reason``:

- credentials (``EncounteredQuarantineException``, or an error code naming credentials): re-read the current
  secret versions, ``validateCredentials``, ``saveSecrets``, ``restartJob`` with ``QuarantineState``;
- escrow thresholds (``EncounteredBaseEscrowThreshold``, ``EncounteredTotalEscrowThreshold``,
  ``EncounteredEscrowProportionThreshold``): ``restartJob`` with ``Escrows`` only;
- ``TooManyDeletes``: never acted on (a person decides whether the deletions are meant); a warning names the
  connection. Any other reason is reported, not acted on.

At most one recovery per connection per ``RECOVERY_MIN_HOURS``: the attempt is recorded on the connection (an
ETag-conditional write) before anything runs, so two sweeps that see the same quarantine run it once. Each recovery
is an outcome with trigger ``recovery``, and a ``ConnectionRecovery`` event carries its reason and result.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from .errors import PreconditionFailed, ProvisioningError
from .telemetry import emit_event

if TYPE_CHECKING:
    from .outcome import Outcome
    from .pipeline import Pipeline
    from .store import ConnectionRecord, ConnectionStore
    from .sweep import Health

__all__ = ["ESCROW_REASONS", "PERSON_REASONS", "Playbook", "playbook", "recover"]

log = logging.getLogger(__name__)

Playbook = Literal["credentials", "escrows", "person"]
CREDENTIAL_REASONS = frozenset({"EncounteredQuarantineException"})
ESCROW_REASONS = frozenset(
    {"EncounteredBaseEscrowThreshold", "EncounteredTotalEscrowThreshold", "EncounteredEscrowProportionThreshold"}
)
PERSON_REASONS = frozenset({"TooManyDeletes"})
_CREDENTIAL_WORDS = ("credential", "unauthorized", "authentication", "invalidtoken")
_STEPS: dict[str, tuple[list[str], str]] = {
    "credentials": (["validateCredentials", "saveSecrets", "restartJob"], "QuarantineState"),
    "escrows": (["restartJob"], "Escrows"),
}


def playbook(reason: str | None, error_code: str | None = None) -> Playbook | None:
    """The playbook for a quarantine reason (and its error code), or ``None`` when none applies."""
    if reason in PERSON_REASONS:
        return "person"
    if reason in ESCROW_REASONS:
        return "escrows"
    code = (error_code or "").lower()
    if reason in CREDENTIAL_REASONS or any(word in code for word in _CREDENTIAL_WORDS):
        return "credentials"
    return None


def _recently(last: dict[str, Any] | None, hours: float) -> bool:
    if not last or not last.get("at"):
        return False
    try:
        at = datetime.fromisoformat(str(last["at"]).replace("Z", "+00:00"))
    except ValueError:
        return False
    return datetime.now(UTC) - at < timedelta(hours=hours)


def _event(record: ConnectionRecord, reason: str | None, plan: str, result: str, **extra: str | None) -> None:
    emit_event(
        "ConnectionRecovery",
        {"connection": record.name, "reason": reason, "playbook": plan, "result": result, **extra},
        level=logging.WARNING if result in ("needsPerson", "noPlaybook", "rejected", "failed") else logging.INFO,
    )


async def recover(
    record: ConnectionRecord, health: Health, *, store: ConnectionStore, pipeline: Pipeline
) -> Outcome | None:
    """Run the playbook for the connection's quarantine, if it opted in, once per ``RECOVERY_MIN_HOURS``."""
    from .connections import record_outcome, stored_request
    from .pipeline import Invocation
    from .references import SecretReference
    from .request import parse_request
    from .store import now

    request = stored_request(record)
    quarantined = (health.job_status or "").lower() == "quarantine" or health.quarantine_reason is not None
    if not request.recovery or request.dry_run or not quarantined or health.job_id is None:
        return None  # a dry-run connection is a test: recovery never writes for it
    reason = health.quarantine_reason
    plan = playbook(reason, (health.job or {}).get("quarantineErrorCode"))
    if plan is None:
        _event(record, reason, "none", "noPlaybook")
        return None
    if plan == "person":
        _event(record, reason, "none", "needsPerson", detail="deletions over the threshold: a person decides")
        return None
    hours = pipeline.settings.recovery_min_hours
    if _recently(record.last_recovery, hours):
        log.info("connection %r: recovered less than %g hours ago; not again yet", record.name, hours)
        return None
    # Claim the recovery before running it: a concurrent check of the same connection then finds it recorded.
    started = {"at": now(), "reason": reason, "playbook": plan, "outcome": "started"}
    try:
        await store.replace(replace(record, last_recovery=started), etag=record.etag, current=record)
    except PreconditionFailed:
        log.info("connection %r changed while its recovery was decided; the next check decides again", record.name)
        return None
    steps, scope = _STEPS[plan]
    body = {**record.request, "steps": steps, "resetScope": scope, "jobId": health.job_id, "dryRun": False}
    pinned: dict[str, str] = {}
    if plan == "credentials":  # the current versions, read now: never a cached older value
        from . import policy

        for reference in policy.plan(request, pipeline.settings, stored=True).references.values():
            if reference.version is None:
                try:
                    current = await pipeline.resolver.read_current(SecretReference(reference.vault_url, reference.name))
                except ProvisioningError:
                    continue  # the run meets the same error and reports it
                if current.version:
                    pinned[reference.secret_id] = current.version
    invocation = Invocation(trigger="recovery", connection=record.name, pinned_versions=pinned)
    outcome = await pipeline.run(parse_request(body), invocation=invocation)
    await record_outcome(
        store,
        record.name,
        outcome,
        last_recovery={**started, "outcome": outcome.outcome, "errorCode": outcome.error_code},
    )
    _event(record, reason, plan, outcome.outcome, errorCode=outcome.error_code)
    return outcome
