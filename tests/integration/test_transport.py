"""Graph's transport: many requests in flight reuse their connections instead of opening new ones."""

import asyncio
import json

import pytest

from shared.pipeline import Invocation
from shared.transport import CONNECTIONS_PER_POOL, POOLS, PooledClient
from tests.conftest import request_body


def body() -> bytes:
    return json.dumps(request_body()).encode()


def connections(stand_in) -> set[str]:
    return {seen.peer for seen in stand_in.seen if seen.path.endswith("/acquireAccessToken")}


async def test_64_requests_in_flight_keep_their_connections_round_after_round(pipeline, app_env):
    """httpx's pool with a keep-alive limit below what is in flight closes connections as they come free, so every
    round opens new ones (and pays TCP and TLS again); the app's pools keep every one of them."""
    await pipeline.run(body(), Invocation(trigger="http"))  # the token and the secret out of the way
    app_env.graph.latency = 0.2  # every request of a round is in flight at once
    try:
        first = set()
        for round_ in range(3):
            app_env.graph.reset()
            outcomes = await asyncio.gather(*(pipeline.run(body(), Invocation(trigger="http")) for _ in range(64)))
            assert {o.outcome for o in outcomes} == {"succeeded"}
            used = connections(app_env.graph)
            assert len(used) <= 64
            if round_ == 0:
                first = used
            else:
                assert used <= first, f"round {round_} opened {len(used - first)} new connections"
    finally:
        app_env.graph.latency = 0


async def test_a_pool_fills_before_the_next_is_used_and_none_grows_beyond_its_size(app_env):
    client = PooledClient(pools=2, connections_per_pool=2, timeout=10)
    app_env.graph.latency = 0.3
    url = f"{app_env.graph.url}/v1.0/servicePrincipals/x/synchronization/jobs"
    try:
        await client.request("GET", url)
        assert client.clients[1] is None, "a quiet client builds one pool only"
        first = [asyncio.create_task(client.request("GET", url)) for _ in range(3)]
        await asyncio.sleep(0.1)
        assert client.in_flight == [2, 1]
        more = [asyncio.create_task(client.request("GET", url)) for _ in range(5)]
        await asyncio.sleep(0.1)
        assert sum(client.in_flight) == 8
        assert max(client.in_flight) - min(client.in_flight) <= 1, "when every pool is full, the least busy"
        await asyncio.gather(*first, *more)
        assert client.in_flight == [0, 0]
        # Two pools of two: never more than four connections, however many requests were in flight.
        assert len({s.peer for s in app_env.graph.seen}) <= 4
    finally:
        app_env.graph.latency = 0
        await client.aclose()
    assert all(c is not None and c.is_closed for c in client.clients)


def test_the_pool_sizes_are_sane():
    assert POOLS * CONNECTIONS_PER_POOL >= 64
    with pytest.raises(ValueError, match="at least 1"):
        PooledClient(pools=0)
