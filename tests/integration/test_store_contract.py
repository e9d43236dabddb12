"""One contract, two stores: the in-memory twin behaves as Table Storage (Azurite) does, so that tests built on
the twin say something true about the real store."""

import asyncio
import uuid
from dataclasses import replace

import pytest

from shared.store import ConnectionNotFound, ConnectionRecord, PreconditionFailed, TableStore
from tests.fakes import MemoryStore

SECRET = "https://kv.example/secrets/scim-token"


@pytest.fixture(params=["memory", "table"])
async def store(request, azurite):
    if request.param == "memory":
        yield MemoryStore()
        return
    from azure.data.tables.aio import TableClient

    client = TableClient.from_connection_string(azurite.connection_string, table_name="c" + uuid.uuid4().hex[:16])
    table_store = TableStore(client)
    yield table_store
    await table_store.close()


def record(name: str, *secrets: str, pinned: bool = False) -> ConnectionRecord:
    return ConnectionRecord(name=name, request={"n": name}, secret_ids=tuple((s, pinned) for s in secrets))


async def test_create_get_replace_delete(store):
    created = await store.create(record("a", SECRET))
    assert created.etag
    assert created.created_at == created.updated_at
    read = await store.get("a")
    assert (read.name, read.request, read.etag) == ("a", {"n": "a"}, created.etag)
    replaced = await store.replace(replace(read, last_outcome={"outcome": "succeeded"}), etag=read.etag)
    assert replaced.etag != created.etag
    assert replaced.created_at == created.created_at
    assert (await store.get("a")).last_outcome == {"outcome": "succeeded"}
    await store.delete("a")
    assert await store.get("a") is None


async def test_conditional_writes_refuse_a_stale_etag_and_a_second_create(store):
    created = await store.create(record("b"))
    await store.replace(created, etag=created.etag)
    with pytest.raises(PreconditionFailed):
        await store.replace(created, etag=created.etag)
    with pytest.raises(PreconditionFailed):
        await store.create(record("b"))
    with pytest.raises(PreconditionFailed):
        await store.delete("b", etag=created.etag)
    with pytest.raises(ConnectionNotFound):
        await store.replace(record("nobody"), etag='W/"1"')
    with pytest.raises(ConnectionNotFound):
        await store.delete("nobody")


async def test_two_concurrent_replaces_one_wins(store):
    created = await store.create(record("c"))
    results = await asyncio.gather(
        store.replace(replace(created, request={"n": 1}), etag=created.etag),
        store.replace(replace(created, request={"n": 2}), etag=created.etag),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["ConnectionRecord", "PreconditionFailed"]


async def test_the_secret_index_follows_creates_replaces_and_deletes(store):
    other = "https://kv.example/secrets/other"
    await store.create(record("d1", SECRET))
    await store.create(record("d2", SECRET, other))
    await store.create(record("d3", other))
    assert await store.find_by_secret(SECRET) == ["d1", "d2"]
    assert len(await store.find_by_secret(SECRET, limit=1)) == 1  # at most that many: a rotation's first look
    d2 = await store.get("d2")
    await store.replace(replace(d2, secret_ids=((other, False),)), etag=d2.etag)
    assert await store.find_by_secret(SECRET) == ["d1"]
    await store.delete("d1")
    assert await store.find_by_secret(SECRET) == []
    assert await store.find_by_secret(other) == ["d2", "d3"]


async def test_pages_in_name_order_with_a_name_as_the_continuation(store):
    for name in ("p3", "p1", "p5", "p2", "p4"):
        await store.create(record(name))
    first, token = await store.page(top=2, continuation=None)
    assert ([r.name for r in first], token) == (["p1", "p2"], "p3")
    second, token = await store.page(top=2, continuation=token)
    assert ([r.name for r in second], token) == (["p3", "p4"], "p5")
    last, token = await store.page(top=2, continuation=token)
    assert ([r.name for r in last], token) == (["p5"], None)
