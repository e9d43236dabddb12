"""Graph's ``synchronizationSecret`` enum: which keys are sensitive and which are addresses.

The one place that says which credential keys may travel inline (docs/reference.md, "The request") and which keys
name a place the provisioning service connects to (docs/security.md, "Secret bindings"). One ordered table, in
Graph's order; every other fact is derived from it.

- ``sensitive``: a password, a token, a key, a client secret, an authorization code or a connection string. It must
  come as a Key Vault reference unless ``ALLOW_INLINE_SECRETS=true``.
- ``address``: a URL or host the provisioning service calls (with the secrets of the same request). Every address
  sent with a Key Vault secret must match that secret's ``provisioning-endpoints`` tag.
- ``plain``: anything else Graph takes (user names, client ids, switches, schedules).

A key Graph adds later and this table does not know yet is sensitive (deny by default) and not an address.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "ADDRESS_KEYS",
    "KEY_KINDS",
    "NON_SENSITIVE_KEYS",
    "SENSITIVE_KEYS",
    "SYNCHRONIZATION_SECRET_KEYS",
    "is_address",
    "is_sensitive",
]

KeyKind = Literal["sensitive", "address", "plain"]

# As Graph spells them (microsoft.graph.synchronizationSecret), in Graph's order.
KEY_KINDS: tuple[tuple[str, KeyKind], ...] = (
    ("None", "plain"),
    ("UserName", "plain"),
    ("Password", "sensitive"),
    ("SecretToken", "sensitive"),
    ("AppKey", "sensitive"),
    ("BaseAddress", "address"),  # the tenant URL / SCIM endpoint
    ("ClientIdentifier", "plain"),
    ("ClientSecret", "sensitive"),
    ("SingleSignOnType", "plain"),
    ("Sandbox", "plain"),
    ("Url", "address"),
    ("Domain", "address"),  # a bare host
    ("ConsumerKey", "sensitive"),
    ("ConsumerSecret", "sensitive"),
    ("TokenKey", "sensitive"),
    ("TokenExpiration", "plain"),
    ("Oauth2AccessToken", "sensitive"),
    ("Oauth2AccessTokenCreationTime", "plain"),
    ("Oauth2RefreshToken", "sensitive"),
    ("SyncAll", "plain"),
    ("InstanceName", "address"),  # names the instance (host) of a cloud app
    ("Oauth2ClientId", "plain"),
    ("Oauth2ClientSecret", "sensitive"),
    ("CompanyId", "plain"),
    ("UpdateKeyOnSoftDelete", "plain"),
    ("SynchronizationSchedule", "plain"),
    ("SystemOfRecord", "plain"),
    ("SandboxName", "plain"),
    ("EnforceDomain", "plain"),
    ("SyncNotificationSettings", "plain"),
    ("SkipOutOfScopeDeletions", "plain"),
    ("Oauth2AuthorizationCode", "sensitive"),
    ("Oauth2RedirectUri", "address"),
    ("ApplicationTemplateIdentifier", "plain"),
    ("Oauth2TokenExchangeUri", "address"),  # where the client secret and the code are sent for a token
    ("Oauth2AuthorizationUri", "address"),
    ("AuthenticationType", "plain"),
    ("Server", "address"),  # a bare host (LDAP, SQL and other on-premises connectors)
    ("PerformInboundEntitlementGrants", "plain"),
    ("HardDeletesEnabled", "plain"),
    ("SyncAgentCompatibilityKey", "sensitive"),
    ("SyncAgentADContainer", "plain"),
    ("ValidateDomain", "plain"),
    ("TestReferences", "plain"),
    ("ConnectionString", "sensitive"),
)

SYNCHRONIZATION_SECRET_KEYS: tuple[str, ...] = tuple(key for key, _ in KEY_KINDS)
SENSITIVE_KEYS: frozenset[str] = frozenset(key for key, kind in KEY_KINDS if kind == "sensitive")
# Addresses, domains, user names, client ids, redirect and token-exchange URIs, and plain switches.
NON_SENSITIVE_KEYS: frozenset[str] = frozenset(key for key, kind in KEY_KINDS if kind != "sensitive")
ADDRESS_KEYS: frozenset[str] = frozenset(key for key, kind in KEY_KINDS if kind == "address")


def is_sensitive(key: str) -> bool:
    """Deny by default: a key not known to be harmless is treated as a secret."""
    return key not in NON_SENSITIVE_KEYS


def is_address(key: str) -> bool:
    """A key whose value is a URL or host the provisioning service connects to."""
    return key in ADDRESS_KEYS
