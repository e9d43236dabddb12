"""The Microsoft Graph call: ``POST /{servicePrincipals|applications}/{id}/synchronization/acquireAccessToken``.

One shared ``httpx.AsyncClient`` per process; the token comes from an azure-identity credential (which caches
it, so Graph tokens are not fetched per request). Retries on 429, 5xx, timeouts and broken connections with
stamina, honouring ``Retry-After``, up to ``GRAPH_MAX_ATTEMPTS``. Graph's own error code is kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import (
    CredentialsRejected,
    IdentityNotAllowed,
    ProvisioningError,
    ServiceUnavailable,
    TargetNotFound,
    retry_after_seconds,
)
from .request import Target
from .settings import Settings

if TYPE_CHECKING:
    import httpx
    from azure.core.credentials import AccessToken
    from azure.core.credentials_async import AsyncTokenCredential

__all__ = ["GraphCall", "GraphClient"]

log = logging.getLogger(__name__)

TOKEN_REFRESH_MARGIN = 300  # seconds before expiry when a token is fetched again


@dataclass
class GraphCall:
    """What the outcome says of the Graph call (CONTRACT section 2, ``graph``)."""

    status: int | None = None
    request_id: str | None = None
    client_request_id: str | None = None
    error_code: str | None = None
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "requestId": self.request_id,
            "clientRequestId": self.client_request_id,
            "errorCode": self.error_code,
            "attempts": self.attempts,
        }


class _Transient(Exception):
    """One attempt that may succeed if tried again."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class GraphClient:
    def __init__(self, http: httpx.AsyncClient, credential: AsyncTokenCredential, settings: Settings) -> None:
        self._http = http
        self._credential = credential
        self._settings = settings
        self._token: AccessToken | None = None
        self._token_lock = asyncio.Lock()

    async def close(self) -> None:
        await self._http.aclose()
        await self._credential.close()

    async def token(self) -> str:
        """The Graph token; concurrent requests on a cold (or expiring) token wait for one fetch."""
        if self._fresh(self._token):
            return self._token.token  # type: ignore[union-attr]
        async with self._token_lock:
            if not self._fresh(self._token):
                self._token = await self._fetch_token()
            return self._token.token  # type: ignore[union-attr]

    @staticmethod
    def _fresh(token: AccessToken | None) -> bool:
        return token is not None and token.expires_on - TOKEN_REFRESH_MARGIN > time.time()

    async def _fetch_token(self) -> AccessToken:
        from azure.core.exceptions import ClientAuthenticationError

        try:
            return await self._credential.get_token(self._settings.graph_scope)
        except ClientAuthenticationError:  # TokenUnavailable, from the guarded credential
            raise IdentityNotAllowed(
                "the app's identity could not get a Microsoft Graph token", code="tokenUnavailable"
            ) from None

    async def acquire_access_token(
        self, target: Target, credentials: list[tuple[str, str]], *, call: GraphCall
    ) -> GraphCall:
        """Call Graph; fill ``call`` as it goes (so a failure still reports attempts and ids)."""
        url = (
            f"{self._settings.graph_base_url}/{target.graph_collection}/{target.id}/synchronization/acquireAccessToken"
        )
        body = {"credentials": [{"key": key, "value": value} for key, value in credentials]}
        call.client_request_id = call.client_request_id or str(uuid.uuid4())
        token = await self.token()
        max_wait = self._settings.graph_timeout_seconds

        def backoff(exc: Exception) -> bool | float:
            if not isinstance(exc, _Transient):
                return False
            if exc.retry_after is None:
                return True
            # Honour Retry-After; one longer than an attempt may last is left to the caller.
            return exc.retry_after if exc.retry_after <= max_wait else False

        import stamina  # imported on first use: it is not needed to index the app

        response: httpx.Response | None = None
        try:
            async for attempt in stamina.retry_context(
                on=backoff,
                attempts=self._settings.graph_max_attempts,
                timeout=None,
                wait_initial=0.2,
                wait_max=max_wait,
                wait_jitter=0.2,
            ):
                with attempt:
                    call.attempts += 1
                    response = await self._post(url, body, token, call.client_request_id)
                    _record(call, response)
                    if response.status_code == 429 or response.status_code >= 500:
                        raise _Transient(
                            f"Graph answered {response.status_code}",
                            status=response.status_code,
                            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                        )
        except _Transient as exc:
            raise ServiceUnavailable(
                f"{exc.reason} after {call.attempts} attempt(s)",
                code=call.error_code or ("graphUnavailable" if exc.status else "graphUnreachable"),
                retry_after=exc.retry_after,
            ) from None
        if response is None:  # the loop either answers or raises; this keeps the types honest
            raise ServiceUnavailable("Graph was not called", code="graphUnreachable")
        if response.is_success:
            return call
        raise _rejection(response, target)

    async def _post(self, url: str, body: dict[str, Any], token: str, client_request_id: str) -> httpx.Response:
        import httpx

        try:
            return await self._http.post(
                url,
                json=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "client-request-id": client_request_id,
                    "return-client-request-id": "true",
                },
                timeout=self._settings.graph_timeout_seconds,
            )
        except httpx.TimeoutException as exc:
            raise _Transient(f"Graph did not answer in time ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Transient(f"Graph could not be reached ({type(exc).__name__})") from None


def _record(call: GraphCall, response: httpx.Response) -> None:
    call.status = response.status_code
    call.request_id = response.headers.get("request-id")
    call.client_request_id = response.headers.get("client-request-id") or call.client_request_id
    call.error_code = None if response.is_success else _graph_error(response)[0]


def _graph_error(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        error = response.json().get("error", {})
        code = error.get("code")
        message = error.get("message")
        # The whole message: it is redacted of the request's secrets before anything shortens it.
        return (str(code) if code else None, str(message) if message else None)
    except Exception:  # noqa: BLE001 - a body that is not Graph's error JSON has no code
        return None, None


def _rejection(response: httpx.Response, target: Target) -> ProvisioningError:
    status = response.status_code
    code, message = _graph_error(response)
    detail = f"Graph answered {status}" + (f": {message}" if message else "")
    if status == 404:
        return TargetNotFound(f"{target.type} {target.id} was not found in the tenant ({detail})", code=code)
    if status in (401, 403):
        return IdentityNotAllowed(f"Graph refused the app's identity ({detail})", code=code or "graphForbidden")
    return CredentialsRejected(detail, code=code or f"graph{status}")
