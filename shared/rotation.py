"""Key Vault events: re-apply a rotated secret to every connection that uses it, and warn before one expires.

``SecretNewVersionCreated``: every connection referencing that vault and secret without a pinned version runs its
steps with exactly the new version (never a cached older value); one outcome per connection, trigger ``rotation``.
Idempotent: a connection whose ``appliedVersions`` already holds the version is skipped, and a short-lived claim on
the connection (an ETag-conditional write) lets only one of two concurrent deliveries of the same event apply it.
Like a batch processor that reports partial failures, every affected connection is tried, then one
:class:`RotationFailed` is raised if any failed retryably, so Event Grid redelivers and the applied ones are skipped.

``SecretNearExpiry`` / ``SecretExpired``: one ``SecretExpiryWarning`` custom event per affected connection.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from .connections import record_outcome, stored_request
from .errors import InvalidRequest, PreconditionFailed, ProvisioningError, ReferenceUnresolvable, ServiceUnavailable
from .references import SecretReference, parse_reference
from .store import ConnectionStore, iso_time, now

if TYPE_CHECKING:
    from .outcome import Outcome
    from .pipeline import Pipeline
    from .settings import Settings
    from .work import WorkItem, WorkQueue

__all__ = [
    "EXPIRY_EVENTS",
    "KEY_VAULT_EVENTS",
    "NEW_VERSION",
    "KeyVaultEvent",
    "RotationFailed",
    "RotationReport",
    "handle_key_vault_event",
    "parse_key_vault_event",
]

log = logging.getLogger(__name__)

NEW_VERSION = "Microsoft.KeyVault.SecretNewVersionCreated"
EXPIRY_EVENTS = ("Microsoft.KeyVault.SecretNearExpiry", "Microsoft.KeyVault.SecretExpired")
KEY_VAULT_EVENTS = (NEW_VERSION, *EXPIRY_EVENTS)
# A claim outlives the work of one connection (a few Graph calls) with room; a claim left by an invocation that died
# is taken over at once by the same queue message's next attempt, and by anyone once it expires.
CLAIM_SECONDS = 300
# A rotation that affects more connections than this fans out through the connection-work queue (docs/fleet.md).
INLINE_ROTATIONS = 3


@dataclass(frozen=True)
class KeyVaultEvent:
    type: str
    id: str | None
    vault_url: str
    name: str
    version: str | None
    expires: str | None

    @property
    def secret_id(self) -> str:
        return f"{self.vault_url}/secrets/{self.name.lower()}"


@dataclass
class RotationReport:
    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)  # the event's version is not (or no longer) the newest
    ignored: str | None = None


class RotationFailed(Exception):
    """Raised to the host after every connection was tried, when some failed retryably (Event Grid redelivers)."""

    def __init__(self, failed: list[Outcome]) -> None:
        names = ", ".join(f"{o.connection} ({o.error_code})" for o in failed)
        super().__init__(f"rotation failed for {len(failed)} connection(s): {names}")
        self.failed = failed


def _text(data: dict[str, Any], name: str) -> str | None:
    for key, value in data.items():
        if key.lower() == name.lower() and value is not None:
            text = str(value).strip()
            return text or None
    return None


def _epoch(value: str | None) -> str | None:
    """NBF/EXP come as epoch seconds, as numbers or strings; an ISO time when readable."""
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC).isoformat().replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        return None


_VAULT_TOPIC = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/(?P<name>[^/]+)$", re.IGNORECASE
)


def authentic_topic(topic: str | None, vault_name: str | None, settings: Settings) -> str | None:
    """Why an event's topic (Event Grid schema) or source (CloudEvents) does not vouch for its vault, or ``None``.

    Accepted only when it is a Key Vault resource id, the vault it names is the event's ``VaultName``, and that
    vault's host (``VaultName`` + ``KEY_VAULT_DNS_SUFFIX``) is in ``KEY_VAULT_ALLOWED_HOSTS``.
    """
    match = _VAULT_TOPIC.fullmatch((topic or "").strip())
    if match is None:
        return "its topic/source is not a Key Vault resource id"
    if vault_name is None or match.group("name").lower() != vault_name.lower():
        return "its topic/source names another vault than its VaultName"
    host = f"{vault_name.lower()}.{settings.key_vault_dns_suffix}"
    if host not in {h.lower() for h in settings.key_vault_allowed_hosts}:
        return f"vault {host} is not in KEY_VAULT_ALLOWED_HOSTS"
    return None


def parse_key_vault_event(
    event_type: str, data: Any, settings: Settings, *, topic: str | None = None
) -> KeyVaultEvent | None:
    """The event's secret, or ``None`` (logged) for an event that does not come from a vault the app may use (its
    topic or source, :func:`authentic_topic`). Malformed: InvalidRequest."""
    if isinstance(data, str):
        import json

        try:
            data = json.loads(data)
        except ValueError:
            raise InvalidRequest("the Key Vault event's data is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the Key Vault event's data is not an object")
    object_type = _text(data, "ObjectType")
    if object_type is not None and object_type.lower() != "secret":
        raise InvalidRequest(f"the Key Vault event is about a {object_type[:20]}, not a secret")
    name = _text(data, "ObjectName")
    version = _text(data, "Version")
    vault_name = _text(data, "VaultName")
    identifier = _text(data, "Id")
    if identifier is not None:
        parts = urlsplit(identifier)
        segments = parts.path.strip("/").split("/")
        if parts.scheme != "https" or not parts.hostname or len(segments) < 2 or segments[0] != "secrets":
            raise InvalidRequest("the Key Vault event's Id is not a secret URI")
        name = name or segments[1]
        if len(segments) > 2:
            version = version or segments[2]
        reference_text = f"https://{parts.netloc}/secrets/{name}"
    elif vault_name is not None and name is not None:
        reference_text = f"@Microsoft.KeyVault(VaultName={vault_name};SecretName={name})"
    else:
        raise InvalidRequest("the Key Vault event names no secret (Id, or VaultName and ObjectName)")
    if not name:
        raise InvalidRequest("the Key Vault event names no secret")
    distrust = authentic_topic(topic, vault_name, settings)
    if distrust is not None:
        log.warning("ignoring %s for secret %r: %s", event_type, name[:127], distrust)
        return None
    from .errors import PolicyRefused

    try:
        reference: SecretReference = parse_reference(reference_text, settings, key="event")
    except PolicyRefused:
        host = urlsplit(identifier).netloc if identifier else vault_name
        log.warning("ignoring %s for secret %r: vault %s is not in KEY_VAULT_ALLOWED_HOSTS", event_type, name, host)
        return None
    if event_type == NEW_VERSION and not version:
        raise InvalidRequest("a SecretNewVersionCreated event needs the new Version")
    return KeyVaultEvent(
        type=event_type,
        id=identifier,
        vault_url=reference.vault_url,
        name=reference.name,
        version=version,
        expires=_epoch(_text(data, "EXP")),
    )


async def handle_key_vault_event(
    event: KeyVaultEvent,
    *,
    store: ConnectionStore,
    pipeline: Pipeline,
    queue: WorkQueue | None = None,
    owner: str | None = None,
) -> RotationReport:
    """Warn of an expiry, or apply a new version: inline for a few connections, else one fanout message.

    ``owner`` names this delivery (the event's id). Event Grid gives no attempt number, so its claims are only ever
    released or left to expire (a queue message's later attempt may take over: :func:`rotate_connection`).
    """
    report = RotationReport()
    expiry = event.type in EXPIRY_EVENTS
    # A rotation reads at most a few names here: more than that, and the rest is the fan-out's work.
    names = await store.find_by_secret(event.secret_id, limit=None if expiry else INLINE_ROTATIONS + 1)
    if expiry:
        for name in names:
            record = await store.get(name)
            if record is None or not any(s == event.secret_id for s, _ in record.secret_ids):
                continue
            _warn_expiry(event, name)
            report.warned.append(name)
        return report
    if not names:
        return report
    created = await _created_if_current(pipeline, event)
    if created is False:
        report.superseded.extend(names)
        return report
    if len(names) > INLINE_ROTATIONS:
        from .work import WorkItem

        if queue is None:
            from .work import get_work_queue

            queue = get_work_queue()
        fanout = WorkItem("fanout", "*", secret_id=event.secret_id, version=event.version)
        await queue.send_many([fanout])  # the delivery ends here, whatever the number of connections
        log.info(
            "rotation of %s to %s: more than %d connections, fanned out", event.name, event.version, INLINE_ROTATIONS
        )
        return report
    for name in names:
        await _rotate_one(event, name, created, store=store, pipeline=pipeline, report=report, owner=owner)
    if report.failed:
        raise RotationFailed(report.failed)
    return report


async def _rotate_one(
    event: KeyVaultEvent,
    name: str,
    created: str | None,
    *,
    store: ConnectionStore,
    pipeline: Pipeline,
    report: RotationReport,
    owner: str | None = None,
    attempt: int | None = None,
) -> None:
    from .pipeline import Invocation

    assert event.version is not None
    for _ in range(3):
        record = await store.get(name)
        if record is None:  # deleted since the index was read
            report.skipped.append(name)
            return
        uses = [pinned for secret_id, pinned in record.secret_ids if secret_id == event.secret_id]
        if not uses or all(uses):  # no longer references it, or only with a pinned version
            report.skipped.append(name)
            return
        applied = record.applied_versions.get(event.secret_id)
        if applied is not None and applied.get("version") == event.version:
            report.skipped.append(name)  # redelivery: already applied
            return
        if applied is not None and created and applied.get("created") and str(applied["created"]) > created:
            report.superseded.append(name)  # a newer version is applied already: never go back
            return
        if _claimed_elsewhere(record.claim, event, owner, attempt):
            # Another delivery is applying it now, or died doing so: never reported done, so that it is retried
            # until the claim is released or has expired.
            busy = ServiceUnavailable(
                f"connection {name!r} is being rotated to version {event.version} by another delivery; retried",
                code="rotationInProgress",
                retry_after=CLAIM_SECONDS,
            )
            report.failed.append(pipeline.refuse(busy, trigger="rotation", connection=name))
            return
        claim = {"secretId": event.secret_id, "version": event.version, "at": now(), "owner": owner, "attempt": attempt}
        try:
            await store.replace(replace(record, claim=claim), etag=record.etag, current=record)
        except PreconditionFailed:
            continue  # changed under us: look again
        except ProvisioningError as error:
            if error.retryable:
                report.failed.append(pipeline.refuse(error, trigger="rotation", connection=name))
            return
        break
    else:
        report.skipped.append(name)
        return
    try:
        request = stored_request(record)
    except InvalidRequest as error:
        outcome = pipeline.refuse(error, trigger="rotation", connection=name)
    else:
        invocation = Invocation(trigger="rotation", connection=name, pinned_versions={event.secret_id: event.version})
        outcome = await pipeline.run(request, invocation=invocation)
    await record_outcome(store, name, outcome, release_claim=True)
    if outcome.ok:
        report.applied.append(name)
    elif outcome.retryable:
        report.failed.append(outcome)
    else:
        report.rejected.append(name)


def _claimed_elsewhere(
    claim: dict[str, Any] | None, event: KeyVaultEvent, owner: str | None, attempt: int | None
) -> bool:
    """A live claim on this secret and version held by another delivery. A claim an earlier attempt of the same
    queue message wrote is this attempt's to take over: the queue hands a message back only when that attempt ended."""
    if not claim or claim.get("secretId") != event.secret_id or claim.get("version") != event.version:
        return False
    earlier = claim.get("attempt")
    same_message = owner is not None and claim.get("owner") == owner
    if same_message and attempt is not None and isinstance(earlier, int) and earlier < attempt:
        return False
    try:
        at = datetime.fromisoformat(str(claim.get("at")).replace("Z", "+00:00"))
    except ValueError:
        return False
    return datetime.now(UTC) - at < timedelta(seconds=CLAIM_SECONDS)


def _warn_expiry(event: KeyVaultEvent, connection: str) -> None:
    from .telemetry import emit_event

    emit_event(
        "SecretExpiryWarning",
        {
            "connection": connection,
            "vault": urlsplit(event.vault_url).netloc,
            "secret": event.name,
            "expires": event.expires,
            "expired": str(event.type.endswith("SecretExpired")).lower(),
            "eventType": event.type,
        },
        level=logging.WARNING,
    )


async def rotate_connection(
    item: WorkItem, *, store: ConnectionStore, pipeline: Pipeline, owner: str | None, attempt: int | None = None
) -> RotationReport:
    """One connection's share of a fanned-out rotation (a ``rotate`` message of the connection-work queue)."""
    assert item.secret_id is not None
    assert item.version is not None
    vault_url, _, name = item.secret_id.rpartition("/secrets/")
    event = KeyVaultEvent(NEW_VERSION, None, vault_url, name, item.version, None)
    report = RotationReport()
    created = await _created_if_current(pipeline, event)  # whoever wrote the message: Key Vault decides
    if created is False:
        report.superseded.append(item.connection)
        return report
    await _rotate_one(
        event,
        item.connection,
        created,
        store=store,
        pipeline=pipeline,
        report=report,
        owner=owner,
        attempt=attempt,
    )
    return report


async def fan_out(item: WorkItem, *, store: ConnectionStore, queue: WorkQueue) -> int:
    """A ``fanout`` message: one ``rotate`` per connection that uses the secret (paging the index, enqueueing)."""
    from .work import WorkItem

    assert item.secret_id is not None
    names = await store.find_by_secret(item.secret_id)
    fields = {"secret_id": item.secret_id, "version": item.version}
    return await queue.send_many(WorkItem(kind="rotate", connection=name, **fields) for name in names)


async def _created_if_current(pipeline: Pipeline, event: KeyVaultEvent) -> str | Literal[False] | None:
    """Never backwards: when the event's version is still the secret's current one (read now, never cached), when
    Key Vault created it; ``False`` when it is not (an older or a deleted version: nothing to apply)."""
    try:
        current = await pipeline.resolver.read_current(SecretReference(event.vault_url, event.name))
    except ReferenceUnresolvable:
        current = None  # deleted or disabled since
    if current is None or current.version != event.version:
        log.info(
            "secret %r version %s: superseded (the current version is %s); nothing applied",
            event.name,
            event.version,
            None if current is None else current.version,
        )
        return False
    return iso_time(current.created_on)
