"""Test doubles that live with the tests, not in the product."""

from __future__ import annotations

from dataclasses import replace

from shared.store import ConnectionNotFound, ConnectionRecord, PreconditionFailed, now

__all__ = ["MemoryStore"]


class MemoryStore:
    """The store's behaviour without storage: for unit tests and nothing else."""

    def __init__(self) -> None:
        self._records: dict[str, ConnectionRecord] = {}
        self._counter = 0

    def _etag(self) -> str:
        self._counter += 1
        return f'W/"{self._counter}"'

    async def get(self, name: str) -> ConnectionRecord | None:
        return self._records.get(name)

    async def create(self, record: ConnectionRecord) -> ConnectionRecord:
        if record.name in self._records:
            raise PreconditionFailed(f"connection {record.name!r} already exists")
        stamp = now()
        stored = replace(record, etag=self._etag(), created_at=stamp, updated_at=stamp)
        self._records[record.name] = stored
        return stored

    async def replace(
        self, record: ConnectionRecord, *, etag: str, current: ConnectionRecord | None = None
    ) -> ConnectionRecord:
        current = self._records.get(record.name)
        if current is None:
            raise ConnectionNotFound(f"connection {record.name!r} does not exist")
        if current.etag != etag:
            raise PreconditionFailed(f"connection {record.name!r} changed since ETag {etag}")
        stamp = record.updated_at or now()
        stored = replace(record, etag=self._etag(), created_at=current.created_at, updated_at=stamp)
        self._records[record.name] = stored
        return stored

    async def delete(self, name: str, *, etag: str | None = None) -> None:
        current = self._records.get(name)
        if current is None:
            raise ConnectionNotFound(f"connection {name!r} does not exist")
        if etag is not None and etag != "*" and current.etag != etag:
            raise PreconditionFailed(f"connection {name!r} changed since ETag {etag}")
        del self._records[name]

    async def page(self, *, top: int, continuation: str | None) -> tuple[list[ConnectionRecord], str | None]:
        names = [n for n in sorted(self._records) if continuation is None or n >= continuation]
        page, rest = names[:top], names[top : top + 1]
        return [self._records[n] for n in page], (rest[0] if rest else None)

    async def find_by_secret(self, secret_id: str, *, limit: int | None = None) -> list[str]:
        names = sorted(n for n, r in self._records.items() if any(s == secret_id for s, _ in r.secret_ids))
        return names if limit is None else names[:limit]

    async def close(self) -> None:
        return None
