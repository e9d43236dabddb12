"""The app's token credential, guarded so that "no token" is told apart from "a service refused the token".

azure-identity reports an unreachable identity endpoint as a connection error, which inside the Key Vault client
looks like Key Vault being unreachable. :class:`GuardedCredential` turns every failure to get a token into
:class:`TokenUnavailable`, which the Key Vault and Graph clients map to ``tokenUnavailable`` (502).
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ClientAuthenticationError

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
    from azure.core.credentials_async import AsyncTokenCredential

__all__ = ["GuardedCredential", "TokenUnavailable"]

log = logging.getLogger(__name__)


class TokenUnavailable(ClientAuthenticationError):
    """The credential could not produce a token (endpoint down, identity missing, refused by Entra ID)."""


class GuardedCredential:
    def __init__(self, inner: AsyncTokenCredential) -> None:
        self._inner = inner

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        try:
            return await self._inner.get_token(*scopes, **kwargs)
        except Exception as exc:
            raise _unavailable(exc) from exc

    async def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        try:
            return await self._inner.get_token_info(*scopes, options=options)  # type: ignore[attr-defined, no-any-return]
        except Exception as exc:
            raise _unavailable(exc) from exc

    async def close(self) -> None:
        await self._inner.close()

    async def __aenter__(self) -> GuardedCredential:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.close()


def _unavailable(exc: Exception) -> TokenUnavailable:
    if isinstance(exc, TokenUnavailable):
        return exc
    log.warning("no token from the app's credential: %s", type(exc).__name__)
    return TokenUnavailable(f"the app's identity could not get a token ({type(exc).__name__})")
