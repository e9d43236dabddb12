"""Where connections live: a small store protocol (:class:`ConnectionStore`) and Azure Table Storage behind it.

The record (what a connection holds) and the protocol are separate from the storage, the way Powertools separates
its idempotency record layer from DynamoDB; the tests hold an in-memory store to the same contract. Every write of a
connection is conditional on its ETag, so a concurrent update is a 412, never a lost write.

Table layout, one table (``CONNECTIONS_TABLE``):
- partition ``connection``, row key = the connection's name: the stored request (JSON), the last outcome, the
  secret versions last applied, and a short-lived rotation claim;
- partition ``secret-<sha256 of the secret id>``, row key = connection name: the secret-to-connections index, so a
  rotation event reads only the connections it affects. Index rows are written before the connection and removed
  after it, and every reader re-checks the connection itself, so a stale row is harmless.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from .errors import (
    ConfigurationError,
    ConnectionNotFound,
    IdentityNotAllowed,
    PreconditionFailed,
    ProvisioningError,
    ServiceUnavailable,
)

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.data.tables.aio import TableClient

__all__ = [
    "ConnectionNotFound",
    "ConnectionRecord",
    "ConnectionStore",
    "PreconditionFailed",
    "TableStore",
    "table_client_from_environment",
]

log = logging.getLogger(__name__)

CONNECTION_PARTITION = "connection"


def iso_time(when: datetime | None) -> str | None:
    """A time as the app writes it everywhere: ISO 8601 in UTC with milliseconds and a ``Z``."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now() -> str:
    return iso_time(datetime.now(UTC)) or ""


def applied_entry(value: Any) -> dict[str, str | None]:
    """One ``appliedVersions`` entry: ``{"version", "created"}`` (a bare version, as stored before, has no time)."""
    if isinstance(value, dict):
        return {"version": str(value.get("version") or ""), "created": value.get("created")}
    return {"version": str(value), "created": None}


@dataclass(frozen=True)
class ConnectionRecord:
    """A stored connection: a named request plus what the app learnt running it."""

    name: str
    request: dict[str, Any]  # the request as stored, camelCase; never a secret value
    secret_ids: tuple[tuple[str, bool], ...] = ()  # (secret id, pinned to a version) of each reference
    etag: str = ""
    created_at: str = ""
    updated_at: str = ""
    last_outcome: dict[str, Any] | None = None
    # secret id -> {"version", "created"}: the version last applied successfully and when Key Vault created it
    applied_versions: dict[str, dict[str, str | None]] = field(default_factory=dict)
    claim: dict[str, Any] | None = None  # {"secretId", "version", "at"} while a rotation applies a version
    last_recovery: dict[str, Any] | None = None  # {"at", "reason", "playbook", "outcome"} of the last recovery
    created_by: str | dict[str, Any] | None = None  # "functionKey", or {"name", "objectId"} of the principal
    updated_by: str | dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "request": self.request,
            "etag": self.etag,
            "createdAt": self.created_at,
            "createdBy": self.created_by,
            "updatedAt": self.updated_at,
            "updatedBy": self.updated_by,
            "lastOutcome": self.last_outcome,
            "appliedVersions": {k: dict(v) for k, v in self.applied_versions.items()},
            "lastRecovery": self.last_recovery,
        }


class ConnectionStore(Protocol):
    async def get(self, name: str) -> ConnectionRecord | None: ...

    async def create(self, record: ConnectionRecord) -> ConnectionRecord: ...

    async def replace(
        self, record: ConnectionRecord, *, etag: str, current: ConnectionRecord | None = None
    ) -> ConnectionRecord: ...

    async def delete(self, name: str, *, etag: str | None = None) -> None: ...

    async def page(self, *, top: int, continuation: str | None) -> tuple[list[ConnectionRecord], str | None]: ...

    async def find_by_secret(self, secret_id: str, *, limit: int | None = None) -> list[str]: ...

    async def close(self) -> None: ...


def index_partition(secret_id: str) -> str:
    return "secret-" + hashlib.sha256(secret_id.encode("utf-8")).hexdigest()[:48]


# ---- Azure Table Storage --------------------------------------------------------------------------------------------


class TableStore:
    """Connections in Azure Table Storage with azure-data-tables (async), created on first use if missing."""

    def __init__(self, client: TableClient) -> None:
        self._client = client
        self._ready = False

    async def _table(self) -> TableClient:
        if not self._ready:
            from azure.core.exceptions import ResourceExistsError

            try:
                await self._client.create_table()
            except ResourceExistsError:
                pass
            except Exception as exc:  # noqa: BLE001 - mapped below
                raise _storage_error(exc, "creating the connections table") from None
            self._ready = True
        return self._client

    async def get(self, name: str) -> ConnectionRecord | None:
        from azure.core.exceptions import ResourceNotFoundError

        table = await self._table()
        try:
            entity = await table.get_entity(CONNECTION_PARTITION, name)
        except ResourceNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise _storage_error(exc, f"reading connection {name!r}") from None
        return _record(entity)

    async def create(self, record: ConnectionRecord) -> ConnectionRecord:
        from azure.core.exceptions import ResourceExistsError

        table = await self._table()
        await self._index(record.name, record.secret_ids)
        stamp = now()
        entity = _entity(replace(record, created_at=stamp, updated_at=stamp))
        try:
            metadata = await table.create_entity(entity)
        except ResourceExistsError:
            raise PreconditionFailed(f"connection {record.name!r} already exists") from None
        except Exception as exc:  # noqa: BLE001
            raise _storage_error(exc, f"creating connection {record.name!r}") from None
        return replace(record, etag=str(metadata["etag"]), created_at=stamp, updated_at=stamp)

    async def replace(
        self, record: ConnectionRecord, *, etag: str, current: ConnectionRecord | None = None
    ) -> ConnectionRecord:
        """Write a connection if it still has ``etag``. ``current``: the record as just read (its ETag is ``etag``),
        which saves reading it again; index rows are written only for secrets it did not reference already."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        table = await self._table()
        if current is None or current.etag != etag:
            current = await self.get(record.name)
        if current is None:
            raise ConnectionNotFound(f"connection {record.name!r} does not exist")
        known = set(current.secret_ids)
        await self._index(record.name, [s for s in record.secret_ids if s not in known])
        stored = replace(record, created_at=current.created_at, updated_at=record.updated_at or now())
        try:
            metadata = await table.update_entity(
                _entity(stored), mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except ResourceModifiedError:
            raise PreconditionFailed(f"connection {record.name!r} changed since ETag {etag}") from None
        except ResourceNotFoundError:
            raise ConnectionNotFound(f"connection {record.name!r} does not exist") from None
        except Exception as exc:  # noqa: BLE001
            raise _storage_error(exc, f"writing connection {record.name!r}") from None
        dropped = {s for s, _ in current.secret_ids} - {s for s, _ in record.secret_ids}
        await self._unindex(record.name, dropped)
        return replace(stored, etag=str(metadata["etag"]))

    async def delete(self, name: str, *, etag: str | None = None) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError

        table = await self._table()
        current = await self.get(name)
        if current is None:
            raise ConnectionNotFound(f"connection {name!r} does not exist")
        try:
            if etag in (None, "*"):
                await table.delete_entity(CONNECTION_PARTITION, name)
            else:
                await table.delete_entity(
                    CONNECTION_PARTITION, name, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except ResourceModifiedError:
            raise PreconditionFailed(f"connection {name!r} changed since ETag {etag}") from None
        except Exception as exc:  # noqa: BLE001
            raise _storage_error(exc, f"deleting connection {name!r}") from None
        await self._unindex(name, {s for s, _ in current.secret_ids})

    async def page(self, *, top: int, continuation: str | None) -> tuple[list[ConnectionRecord], str | None]:
        """Up to ``top`` connections in name order from ``continuation`` (a name) on, and the next page's name."""
        table = await self._table()
        query, parameters = "PartitionKey eq @pk", {"pk": CONNECTION_PARTITION}
        if continuation:
            query, parameters = query + " and RowKey ge @from", {**parameters, "from": continuation}
        records: list[ConnectionRecord] = []
        try:
            async for entity in table.query_entities(query, parameters=parameters, results_per_page=top + 1):
                records.append(_record(entity))
                if len(records) > top:
                    break
        except Exception as exc:  # noqa: BLE001
            raise _storage_error(exc, "listing connections") from None
        return records[:top], (records[top].name if len(records) > top else None)

    async def find_by_secret(self, secret_id: str, *, limit: int | None = None) -> list[str]:
        """The connections that reference the secret (the index); with ``limit``, at most that many (one page)."""
        table = await self._table()
        names: set[str] = set()
        try:
            entities = table.query_entities(
                "PartitionKey eq @pk",
                parameters={"pk": index_partition(secret_id)},
                select=["RowKey", "SecretId"],
                results_per_page=min(limit, 1000) if limit else None,
            )
            async for entity in entities:
                if entity.get("SecretId") == secret_id:
                    names.add(entity["RowKey"])
                    if limit is not None and len(names) >= limit:
                        break
        except Exception as exc:  # noqa: BLE001
            raise _storage_error(exc, "reading the secret index") from None
        return sorted(names)

    async def _index(self, name: str, secret_ids: Iterable[tuple[str, bool]]) -> None:
        from azure.data.tables import UpdateMode

        for secret_id, pinned in secret_ids:
            entity = {
                "PartitionKey": index_partition(secret_id),
                "RowKey": name,
                "SecretId": secret_id,
                "Pinned": pinned,
            }
            try:
                await self._client.upsert_entity(entity, mode=UpdateMode.REPLACE)
            except Exception as exc:  # noqa: BLE001
                raise _storage_error(exc, "writing the secret index") from None

    async def _unindex(self, name: str, secret_ids: Iterable[str]) -> None:
        for secret_id in secret_ids:
            try:
                await self._client.delete_entity(index_partition(secret_id), name)
            except Exception as exc:  # noqa: BLE001 - a stale index row is harmless: readers re-check the connection
                log.info("left a stale index row for connection %r (%s)", name, type(exc).__name__)

    async def close(self) -> None:
        await self._client.close()


def _entity(record: ConnectionRecord) -> dict[str, Any]:
    return {
        "PartitionKey": CONNECTION_PARTITION,
        "RowKey": record.name,
        "Request": json.dumps(record.request, separators=(",", ":"), ensure_ascii=False),
        "SecretIds": json.dumps([[s, p] for s, p in record.secret_ids]),
        "CreatedAt": record.created_at,
        "UpdatedAt": record.updated_at,
        "LastOutcome": json.dumps(record.last_outcome) if record.last_outcome is not None else "",
        "AppliedVersions": json.dumps(record.applied_versions),
        "Claim": json.dumps(record.claim) if record.claim is not None else "",
        "LastRecovery": json.dumps(record.last_recovery) if record.last_recovery is not None else "",
        "CreatedBy": json.dumps(record.created_by) if record.created_by is not None else "",
        "UpdatedBy": json.dumps(record.updated_by) if record.updated_by is not None else "",
    }


def _record(entity: Any) -> ConnectionRecord:
    def loads(name: str, default: Any) -> Any:
        text = entity.get(name) or ""
        return json.loads(text) if text else default

    return ConnectionRecord(
        name=str(entity["RowKey"]),
        request=loads("Request", {}),
        secret_ids=tuple((str(s), bool(p)) for s, p in loads("SecretIds", [])),
        etag=str(entity.metadata["etag"]),
        created_at=str(entity.get("CreatedAt") or ""),
        updated_at=str(entity.get("UpdatedAt") or ""),
        last_outcome=loads("LastOutcome", None),
        applied_versions={str(k): applied_entry(v) for k, v in loads("AppliedVersions", {}).items()},
        claim=loads("Claim", None),
        last_recovery=loads("LastRecovery", None),
        created_by=loads("CreatedBy", None),
        updated_by=loads("UpdatedBy", None),
    )


def _storage_error(exc: Exception, doing: str) -> ProvisioningError:
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    status = getattr(exc, "status_code", None) or 0
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return IdentityNotAllowed(
            f"Table Storage refused the app's identity while {doing} ({status or type(exc).__name__})",
            code="tableForbidden",
        )
    if isinstance(exc, HttpResponseError) and 400 <= status < 500 and status not in (408, 429):
        return ServiceUnavailable(f"Table Storage answered {status} while {doing}", code="tableError")
    return ServiceUnavailable(
        f"Table Storage was unavailable while {doing} ({status or type(exc).__name__})", code="tableUnavailable"
    )


def table_client_from_environment(table: str, credential: AsyncTokenCredential | None) -> TableClient:
    """The connections table through the app's own storage account, as the Functions host reaches it
    (:func:`shared.storage.storage_account`): a connection string, or an endpoint with the app's credential.

    A setting the Table Storage client cannot use is a :class:`~shared.errors.ConfigurationError` naming it (503,
    failed); no setting at all is ``tableNotConfigured``.
    """
    from azure.data.tables.aio import TableClient

    from .storage import storage_account

    account = storage_account("table")
    if account is None or (account.connection_string is None and credential is None):
        raise ServiceUnavailable(
            "no storage account for connections: set AzureWebJobsStorage (a connection string) or "
            "AzureWebJobsStorage__accountName (identity-based)",
            code="tableNotConfigured",
        )
    try:
        if account.connection_string is not None:
            return TableClient.from_connection_string(account.connection_string, table_name=table)
        return TableClient(account.endpoint or "", table_name=table, credential=credential)
    except (ValueError, TypeError) as exc:  # what azure-data-tables says of a string or an address it cannot parse
        reason = "not an address the SDK can parse" if isinstance(exc, TypeError) else str(exc).splitlines()[0][:200]
        raise ConfigurationError(
            f"app setting {account.setting} cannot be used for the connections table: "
            f"{reason.rstrip('.') or type(exc).__name__}"
        ) from None
