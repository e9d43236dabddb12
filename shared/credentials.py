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

__all__ = ["APP_IDENTITY", "DEFAULT_SIGN_IN", "GuardedCredential", "TokenUnavailable"]

log = logging.getLogger(__name__)

# Who a token is asked for, as messages name it: the function app's identity, or an operator's terminal sign-in.
APP_IDENTITY = "the app's managed identity"
DEFAULT_SIGN_IN = "your DefaultAzureCredential sign-in"


class TokenUnavailable(ClientAuthenticationError):
    """The credential could not produce a token (endpoint down, identity missing, refused by Entra ID).

    ``identity`` names whose token it was (:data:`APP_IDENTITY` or :data:`DEFAULT_SIGN_IN`), for the messages."""

    def __init__(self, message: str, *, identity: str = APP_IDENTITY) -> None:
        super().__init__(message)
        self.identity = identity


class GuardedCredential:
    """``inner`` with every failure to get a token raised as :class:`TokenUnavailable` naming ``identity``."""

    def __init__(self, inner: AsyncTokenCredential, *, identity: str = APP_IDENTITY) -> None:
        self._inner = inner
        self.identity = identity

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        try:
            return await self._inner.get_token(*scopes, **kwargs)
        except Exception as exc:
            raise _unavailable(exc, self.identity) from exc

    async def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        try:
            return await self._inner.get_token_info(*scopes, options=options)  # type: ignore[attr-defined, no-any-return]
        except Exception as exc:
            raise _unavailable(exc, self.identity) from exc

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


def _unavailable(exc: Exception, identity: str) -> TokenUnavailable:
    if isinstance(exc, TokenUnavailable):
        return exc
    log.warning("no token from %s: %s", identity, type(exc).__name__)
    return TokenUnavailable(f"{identity} could not get a token ({type(exc).__name__})", identity=identity)
