"""Graph's HTTP transport: several small httpx connection pools, each request sent through the first with room.

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
    """The part of :class:`httpx.AsyncClient` the Graph client uses: :meth:`request` and :meth:`aclose`.

    A pool's client is built when a request first needs it (building one takes milliseconds, and a quiet app needs
    one pool), so a first request pays for one client and one TLS context.
    """

    def __init__(self, *, pools: int = POOLS, connections_per_pool: int = CONNECTIONS_PER_POOL, **options: Any) -> None:
        if pools < 1 or connections_per_pool < 1:
            raise ValueError("pools and connections_per_pool must be at least 1")
        self.size = connections_per_pool
        self._options = options
        self.clients: list[httpx.AsyncClient | None] = [None] * pools
        self._in_flight = [0] * pools

    def _pick(self) -> int:
        """The first pool with a connection free; when every pool is full, the least busy (the request waits)."""
        for index, busy in enumerate(self._in_flight):
            if busy < self.size:
                return index
        return self._in_flight.index(min(self._in_flight))

    def _client(self, index: int) -> httpx.AsyncClient:
        client = self.clients[index]
        if client is None:
            import httpx

            if "verify" not in self._options:  # one TLS context for every pool: building one loads the trust store
                self._options["verify"] = httpx.create_ssl_context()
            limits = httpx.Limits(max_connections=self.size, max_keepalive_connections=self.size)
            client = self.clients[index] = httpx.AsyncClient(limits=limits, **self._options)
        return client

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send through :meth:`_pick`'s pool; the response's body is read before it returns."""
        index = self._pick()
        client = self._client(index)
        self._in_flight[index] += 1
        try:
            return await client.request(method, url, **kwargs)
        finally:
            self._in_flight[index] -= 1

    @property
    def in_flight(self) -> list[int]:
        """Requests in flight, per pool."""
        return list(self._in_flight)

    async def aclose(self) -> None:
        for client in self.clients:
            if client is not None:
                await client.aclose()
