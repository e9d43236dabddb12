"""Graph's ``synchronizationSecret`` enum and which of its keys are sensitive.

The one place that says which credential keys may travel inline (docs/reference.md, "The request"). Every value of
the enum is in exactly one of the two sets; a test keeps it so. Anything that is a password, a token, a key, a client
secret, an authorization code or a connection string is sensitive and must come as a Key Vault reference
unless ``ALLOW_INLINE_SECRETS=true``.
"""

from __future__ import annotations

__all__ = ["NON_SENSITIVE_KEYS", "SENSITIVE_KEYS", "SYNCHRONIZATION_SECRET_KEYS", "is_sensitive"]

# As Graph spells them (microsoft.graph.synchronizationSecret), in Graph's order.
SYNCHRONIZATION_SECRET_KEYS: tuple[str, ...] = (
    "None",
    "UserName",
    "Password",
    "SecretToken",
    "AppKey",
    "BaseAddress",
    "ClientIdentifier",
    "ClientSecret",
    "SingleSignOnType",
    "Sandbox",
    "Url",
    "Domain",
    "ConsumerKey",
    "ConsumerSecret",
    "TokenKey",
    "TokenExpiration",
    "Oauth2AccessToken",
    "Oauth2AccessTokenCreationTime",
    "Oauth2RefreshToken",
    "SyncAll",
    "InstanceName",
    "Oauth2ClientId",
    "Oauth2ClientSecret",
    "CompanyId",
    "UpdateKeyOnSoftDelete",
    "SynchronizationSchedule",
    "SystemOfRecord",
    "SandboxName",
    "EnforceDomain",
    "SyncNotificationSettings",
    "SkipOutOfScopeDeletions",
    "Oauth2AuthorizationCode",
    "Oauth2RedirectUri",
    "ApplicationTemplateIdentifier",
    "Oauth2TokenExchangeUri",
    "Oauth2AuthorizationUri",
    "AuthenticationType",
    "Server",
    "PerformInboundEntitlementGrants",
    "HardDeletesEnabled",
    "SyncAgentCompatibilityKey",
    "SyncAgentADContainer",
    "ValidateDomain",
    "TestReferences",
    "ConnectionString",
)

SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        "Password",
        "SecretToken",
        "AppKey",
        "ClientSecret",
        "ConsumerKey",
        "ConsumerSecret",
        "TokenKey",
        "Oauth2AccessToken",
        "Oauth2RefreshToken",
        "Oauth2ClientSecret",
        "Oauth2AuthorizationCode",
        "SyncAgentCompatibilityKey",
        "ConnectionString",
    }
)

# Addresses, domains, user names, client ids, redirect and token-exchange URIs, and plain switches.
NON_SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        "None",
        "UserName",
        "BaseAddress",
        "ClientIdentifier",
        "SingleSignOnType",
        "Sandbox",
        "Url",
        "Domain",
        "TokenExpiration",
        "Oauth2AccessTokenCreationTime",
        "SyncAll",
        "InstanceName",
        "Oauth2ClientId",
        "CompanyId",
        "UpdateKeyOnSoftDelete",
        "SynchronizationSchedule",
        "SystemOfRecord",
        "SandboxName",
        "EnforceDomain",
        "SyncNotificationSettings",
        "SkipOutOfScopeDeletions",
        "Oauth2RedirectUri",
        "ApplicationTemplateIdentifier",
        "Oauth2TokenExchangeUri",
        "Oauth2AuthorizationUri",
        "AuthenticationType",
        "Server",
        "PerformInboundEntitlementGrants",
        "HardDeletesEnabled",
        "SyncAgentADContainer",
        "ValidateDomain",
        "TestReferences",
    }
)


def is_sensitive(key: str) -> bool:
    """Deny by default: a key not known to be harmless is treated as a secret."""
    return key not in NON_SENSITIVE_KEYS
