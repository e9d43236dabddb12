"""Graph's HTTP transport: several small httpx connection pools, each request sent through the least busy one.

One httpx client with one large pool does not hold many requests in flight well (httpx 0.28, httpcore 1.0): the
pool re-examines every connection it holds, polling each idle socket, whenever a request arrives or a response
closes, so the CPU a request costs grows with the pool; and once the pool holds more connections than its
keep-alive limit it closes idle connections as they come free, so with many requests in flight most requests pay a
new TCP and TLS handshake. Pools of :data:`CONNECTIONS_PER_POOL`, keep-alive equal to size, keep both costs flat;
``make bench`` measures the difference (bench/RESULTS.md). HTTP/2 was measured too and is slower here: see there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = ["CONNECTIONS_PER_POOL", "POOLS", "PooledClient"]

POOLS = 8
CONNECTIONS_PER_POOL = 16  # 128 connections to Graph at most, per process


class PooledClient:
    """The part of :class:`httpx.AsyncClient` the Graph client uses: :meth:`request` and :meth:`aclose`."""

    def __init__(self, *, pools: int = POOLS, connections_per_pool: int = CONNECTIONS_PER_POOL, **options: Any) -> None:
        import httpx

        if pools < 1 or connections_per_pool < 1:
            raise ValueError("pools and connections_per_pool must be at least 1")
        limits = httpx.Limits(max_connections=connections_per_pool, max_keepalive_connections=connections_per_pool)
        # One TLS context for every pool: building one loads the trust store, which takes tens of milliseconds.
        options.setdefault("verify", httpx.create_ssl_context())
        self.clients = [httpx.AsyncClient(limits=limits, **options) for _ in range(pools)]
        self._in_flight = [0] * pools

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send through the pool with the fewest requests in flight; the response's body is read before it returns."""
        index = self._in_flight.index(min(self._in_flight))
        self._in_flight[index] += 1
        try:
            return await self.clients[index].request(method, url, **kwargs)
        finally:
            self._in_flight[index] -= 1

    @property
    def in_flight(self) -> int:
        return sum(self._in_flight)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
