"""Connections: named, stored requests the app keeps alive (create, read, list, delete, run).

A connection holds a request (target, credentials as references, steps, job), never a secret value: a sensitive
key given inline is refused for a connection whatever ``ALLOW_INLINE_SECRETS`` says. Running one records its last
outcome and, when it succeeded, the secret versions it applied; those writes are conditional on the ETag and are
retried on a concurrent change, so neither the run's result nor anyone else's update is lost.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import policy
from .errors import ConnectionNotFound, InvalidRequest, PreconditionFailed, PreconditionRequired, ProvisioningError
from .keys import is_address
from .outcome import Outcome
from .request import MAX_BODY_BYTES, AcquireRequest, parse_request
from .store import ConnectionRecord, ConnectionStore, now

if TYPE_CHECKING:
    from .pipeline import Invocation, Pipeline
    from .settings import Settings

__all__ = [
    "MAX_STORED_CHARS",
    "check_name",
    "delete_connection",
    "get_connection",
    "list_connections",
    "put_connection",
    "record_outcome",
    "run_connection",
    "stored_request",
]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9-]{1,63}$")
# Table Storage keeps a string property in at most 64 KiB of UTF-16: 32,768 characters; leave room.
MAX_STORED_CHARS = 30_000
MAX_TOP = 100
_WRITE_TRIES = 5
Audit = str | dict[str, Any]  # who changed a connection: "functionKey", or {"name", "objectId"}


def check_name(name: str | None) -> str:
    if not name or not _NAME.fullmatch(name):
        raise InvalidRequest("a connection name is 1 to 63 lower-case letters, digits or dashes")
    return name


def _validate(raw: bytes | str | Any, settings: Settings) -> tuple[dict[str, Any], tuple[tuple[str, bool], ...]]:
    """The request a connection stores, checked like any request and more: no secret value, ever."""
    from .request import decode_json

    data = decode_json(raw)
    request = parse_request(data)  # every rule of a request: 400 naming the field
    checked = policy.plan(request, settings, stored=True)  # 403 for a secret value, a target, a vault host
    secret_ids = [(reference.secret_id, reference.version is not None) for reference in checked.references.values()]
    stored = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    if len(stored) > MAX_STORED_CHARS:
        raise InvalidRequest(f"a connection's request is at most {MAX_STORED_CHARS} characters of JSON")
    return data, tuple(secret_ids)


def stored_request(record: ConnectionRecord) -> AcquireRequest:
    return parse_request(record.request)


async def put_connection(
    store: ConnectionStore,
    settings: Settings,
    name: str,
    body: bytes | str,
    *,
    if_match: str | None = None,
    if_none_match: str | None = None,
    by: Audit = "functionKey",
) -> tuple[ConnectionRecord, bool]:
    """Create or replace; returns the stored connection and whether it was created.

    Create takes ``If-None-Match: *`` or no precondition; replace needs ``If-Match`` with the ETag the caller read
    (428 without it, 412 when it changed since), so no change made meanwhile is silently overwritten.
    """
    check_name(name)
    if isinstance(body, bytes | bytearray) and len(body) > MAX_BODY_BYTES:
        raise InvalidRequest(f"the request is larger than {MAX_BODY_BYTES // 1024} KiB")
    data, secret_ids = _validate(body, settings)
    if if_none_match is not None and if_none_match.strip() != "*":
        raise InvalidRequest("If-None-Match takes only '*' (create, never replace)")
    current = await store.get(name)
    match = None if if_match is None else if_match.strip()
    if if_none_match is not None and current is not None:
        raise PreconditionFailed(f"connection {name!r} already exists (If-None-Match: *)")
    if current is None:
        if match is not None:
            raise PreconditionFailed(f"connection {name!r} does not exist (If-Match)")
        stamp = now()
        record = ConnectionRecord(name=name, request=data, secret_ids=secret_ids, created_by=by, updated_by=by)
        created = await store.create(replace(record, created_at=stamp, updated_at=stamp))
        _changed("created", created, None, by)
        return created, True
    if match is None:
        raise PreconditionRequired(
            f"connection {name!r} exists: replacing it needs If-Match with the ETag you read (GET gives it)"
        )
    if match != "*" and current.etag != match:
        raise PreconditionFailed(f"connection {name!r} changed since ETag {match}")
    kept = {s for s, _ in secret_ids}
    record = replace(
        current,
        request=data,
        secret_ids=secret_ids,
        updated_at="",  # stamped by the store: this is a change
        updated_by=by,
        applied_versions={k: v for k, v in current.applied_versions.items() if k in kept},
    )
    stored = await store.replace(record, etag=current.etag, current=current)
    _changed("replaced", stored, current, by)
    return stored, False


def _summary(record: ConnectionRecord | None) -> tuple[str | None, list[str], list[str]]:
    """A connection's target, the hosts of its address credentials, and the secrets it names: never a value."""
    if record is None:
        return None, [], []
    request = record.request if isinstance(record.request, dict) else {}
    target = request.get("servicePrincipalId") or request.get("applicationId")
    hosts: set[str] = set()
    secrets: set[str] = set()
    for credential in request.get("credentials") or []:
        if not isinstance(credential, dict):
            continue
        value, key = credential.get("value"), credential.get("key")
        if isinstance(value, str) and isinstance(key, str) and is_address(key):
            hosts.add((urlsplit(value).hostname or "") if "://" in value else value.split(":")[0].lower())
    for secret_id, _ in record.secret_ids:
        secrets.add(secret_id.split("://", 1)[-1])
    return (str(target) if target else None), sorted(h for h in hosts if h), sorted(secrets)


def _changed(change: str, after: ConnectionRecord | None, before: ConnectionRecord | None, by: Audit) -> None:
    """One ``ConnectionChanged`` custom event per create, replace and delete: who, what, and where it points."""
    from .telemetry import emit_event

    target, hosts_after, secrets_after = _summary(after)
    old_target, hosts_before, secrets_before = _summary(before)
    subject = after or before
    emit_event(
        "ConnectionChanged",
        {
            "connection": None if subject is None else subject.name,
            "change": change,
            "by": by if isinstance(by, str) else json.dumps(by, separators=(",", ":")),
            "byObjectId": None if isinstance(by, str) else by.get("objectId"),
            "target": target or old_target,
            "hostsBefore": ",".join(hosts_before),
            "hostsAfter": ",".join(hosts_after),
            "secretsBefore": ",".join(secrets_before),
            "secretsAfter": ",".join(secrets_after),
        },
        level=logging.INFO,
    )


async def get_connection(store: ConnectionStore, name: str) -> ConnectionRecord:
    record = await store.get(check_name(name))
    if record is None:
        raise ConnectionNotFound(f"connection {name!r} does not exist")
    return record


async def list_connections(
    store: ConnectionStore, *, top: str | None, continuation: str | None
) -> tuple[list[ConnectionRecord], str | None]:
    try:
        size = 50 if top in (None, "") else int(str(top))
    except ValueError:
        raise InvalidRequest("top must be a whole number from 1 to 100") from None
    if not 1 <= size <= MAX_TOP:
        raise InvalidRequest("top must be a whole number from 1 to 100")
    import hashlib

    def check(name: str) -> str:  # tells a token a page gave from one made up or cut short (not a secret)
        return hashlib.sha256(f"connections page from {name}".encode()).hexdigest()[:8]

    start = None
    if continuation is not None:
        name, _, mark = continuation.rpartition(".")
        if not _NAME.fullmatch(name) or mark != check(name):
            raise InvalidRequest("continuationToken is not one a previous page gave: pass that page's token as it is")
        start = name
    records, following = await store.page(top=size, continuation=start)
    return records, None if following is None else f"{following}.{check(following)}"


async def delete_connection(
    store: ConnectionStore, name: str, *, if_match: str | None = None, by: Audit = "functionKey"
) -> None:
    """Delete; needs ``If-Match`` with the ETag the caller read (428 without it, 412 when it changed since)."""
    current = await store.get(check_name(name))
    if current is None:
        raise ConnectionNotFound(f"connection {name!r} does not exist")
    if if_match is None:
        raise PreconditionRequired(
            f"deleting connection {name!r} needs If-Match with the ETag you read (GET gives it), or If-Match: *"
        )
    await store.delete(name, etag=if_match.strip())
    _changed("deleted", None, current, by)


async def run_connection(
    store: ConnectionStore, pipeline: Pipeline, name: str, *, invocation: Invocation | None = None
) -> Outcome:
    """Run a connection's steps now; the outcome is recorded on the connection."""
    from .pipeline import Invocation

    try:
        record = await get_connection(store, name)
    except ProvisioningError as error:
        return pipeline.refuse(error, trigger="connection", connection=name if _NAME.fullmatch(name or "") else None)
    invocation = invocation or Invocation(trigger="connection", connection=name)
    try:
        request: Any = stored_request(record)
    except InvalidRequest:
        request = record.request  # the pipeline refuses it with the same message, as an outcome
    outcome = await pipeline.run(request, invocation=invocation)
    await record_outcome(store, name, outcome)
    return outcome


def _older(entry: Mapping[str, str | None], than: Mapping[str, str | None] | None) -> bool:
    """Whether a version Key Vault created before the one already applied (ISO times in UTC compare as text)."""
    if than is None or not entry.get("created") or not than.get("created"):
        return False
    return str(entry["created"]) < str(than["created"])


def outcome_summary(outcome: Outcome) -> dict[str, Any]:
    return {
        "outcome": outcome.outcome,
        "at": now(),
        "errorCode": outcome.error_code,
        "correlationId": outcome.correlation_id,
        "trigger": outcome.trigger,
    }


async def record_outcome(
    store: ConnectionStore,
    name: str,
    outcome: Outcome,
    *,
    release_claim: bool = False,
    last_recovery: dict[str, Any] | None = None,
) -> ConnectionRecord | None:
    """Store the last outcome (and, on success, the versions applied), retrying on a concurrent change.

    A connection deleted meanwhile is left deleted (``None``). A failure to write is logged, not raised: the run
    itself is over and its outcome already emitted.
    """
    summary = outcome_summary(outcome)
    for _ in range(_WRITE_TRIES):
        try:
            current = await store.get(name)
            if current is None:
                return None
            applied = dict(current.applied_versions)
            if outcome.ok:
                for secret, entry in outcome.applied_versions.items():
                    if not _older(entry, applied.get(secret)):  # never backwards
                        applied[secret] = dict(entry)
            claim = None if release_claim else current.claim
            updated = replace(current, last_outcome=summary, applied_versions=applied, claim=claim)
            if last_recovery is not None:
                updated = replace(updated, last_recovery=last_recovery)
            return await store.replace(updated, etag=current.etag, current=current)
        except PreconditionFailed:
            continue
        except ConnectionNotFound:
            return None
        except ProvisioningError as error:
            log.warning("could not record the outcome of connection %r: %s", name, error.code)
            return None
    log.warning("could not record the outcome of connection %r: it kept changing", name)
    return None
