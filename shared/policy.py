"""What a request may do: the one place the app's policies are decided (docs/security.md).

Before any network call (:func:`plan`): the target against ``ALLOWED_TARGETS``, sensitive keys given inline
(``ALLOW_INLINE_SECRETS``; never for a stored connection), every ``secretRef`` parsed and its vault host checked
against ``KEY_VAULT_ALLOWED_HOSTS``, and the shape of every inline address (no user information, query or fragment).

After the references are resolved and before any Graph call (:func:`check_bindings`): the secret bindings. A secret
goes only where its owner, whoever may write it in Key Vault, sends it, by two tags on the version read:

- ``provisioning-targets``: the object ids of the service principals or applications it may be sent to;
- ``provisioning-endpoints``: the ``https://host[:port][/path]`` prefixes every address sent with it must match.

``SECRET_BINDING=off`` skips the bindings (every caller is then trusted with every secret of the allowed vaults).
The caller (:func:`authenticate`, :func:`require`): with ``CALLER_AUTH=entra``, App Service Authentication's
principal, trusted only when the platform says authentication is on, and its app roles (``Provisioning.Operator``,
``Provisioning.Admin``); with ``key``, the function key was the only check and its holder may do everything.

Nothing here touches the network; every refusal names keys and secrets, never a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .errors import ConfigurationError, InvalidRequest, PolicyRefused
from .keys import is_address, is_sensitive
from .references import SecretReference, parse_reference
from .settings import GUID

if TYPE_CHECKING:
    from .references import Resolved
    from .request import AcquireRequest, Target
    from .settings import Settings

__all__ = [
    "ADMIN",
    "ENDPOINTS_TAG",
    "OPERATOR",
    "TARGETS_TAG",
    "Bound",
    "Caller",
    "Endpoint",
    "Plan",
    "authenticate",
    "binding_problem",
    "check_address_shape",
    "check_bindings",
    "check_saved",
    "endpoint_matches",
    "header",
    "parse_endpoints",
    "parse_targets",
    "plan",
    "require",
]

TARGETS_TAG = "provisioning-targets"
ENDPOINTS_TAG = "provisioning-endpoints"
MAX_TAG_CHARS = 256  # Key Vault's limit on a tag value

_SEPARATORS = re.compile(r"[\s,]+")
_HOST = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$")
_BARE_HOST = re.compile(r"^(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)\.?(?::(?P<port>[0-9]{1,5}))?$")
# Path tricks a server may undo after the check: encoded dots, slashes and backslashes, double encoding, IIS's %u,
# matrix parameters (;), a % that is no escape.
_ENCODED = re.compile(r"%2e|%2f|%5c|%25|%u|\\|;|%(?![0-9A-Fa-f]{2})", re.IGNORECASE)
# The keys whose value may be a bare host (matched on the host alone); a URL key's value must be a URL.
BARE_HOST_KEYS = frozenset({"Server", "Domain", "InstanceName"})


@dataclass(frozen=True)
class Plan:
    """What :func:`plan` found: the reference of each credential that is one, and the inline sensitive values."""

    references: Mapping[str, SecretReference]  # credential key -> reference, in the request's order
    inline_secrets: tuple[str, ...] = field(default=(), repr=False)


def plan(
    request: AcquireRequest,
    settings: Settings,
    *,
    pinned: Mapping[str, str] | None = None,
    stored: bool = False,
) -> Plan:
    """Every check that needs no network. ``stored``: for a connection, which never holds a secret value.

    ``pinned`` maps a secret id to the version a reference without a version must use (a rotation applies exactly
    the new version).
    """
    target = request.target
    for credential in request.credentials:
        if (
            credential.value is not None
            and is_sensitive(credential.key)
            and (stored or not settings.allow_inline_secrets)
        ):
            why = (
                "a connection stores references only, so it must come as a secretRef (whatever ALLOW_INLINE_SECRETS "
                "says)"
                if stored
                else "it must come as a secretRef (ALLOW_INLINE_SECRETS is off)"
            )
            raise PolicyRefused(f"credential {credential.key!r} is sensitive: {why}", code="inlineSecretNotAllowed")
    if settings.allowed_targets is not None and target.id not in settings.allowed_targets:
        raise PolicyRefused(f"{target.type} {target.id} is not in ALLOWED_TARGETS", code="targetNotAllowed")
    references: dict[str, SecretReference] = {}
    inline: list[str] = []
    for credential in request.credentials:
        if credential.secret_ref is not None:
            reference = parse_reference(credential.secret_ref, settings, key=credential.key)
            version = (pinned or {}).get(reference.secret_id)
            if version is not None and reference.version is None:
                reference = SecretReference(reference.vault_url, reference.name, version)
            references[credential.key] = reference
        elif credential.value is not None:
            if is_sensitive(credential.key):
                inline.append(credential.value)
            elif is_address(credential.key):
                check_address_shape(credential.key, credential.value)
    return Plan(references=MappingProxyType(references), inline_secrets=tuple(inline))


def check_address_shape(key: str, value: str) -> None:
    """An address carries no user information (``user:pass@``), query or fragment: 400, naming the key only."""
    problem = None
    if "#" in value:
        problem = "a fragment"
    elif "?" in value:
        problem = "a query"
    elif "://" in value:
        try:
            netloc = urlsplit(value).netloc
        except ValueError:  # an unbalanced [ in the host, say
            raise InvalidRequest(f"credential {key!r}: the address is not a URL") from None
        if "@" in netloc:
            problem = "user information"
    elif "@" in value:
        problem = "user information"
    if problem is not None:
        raise InvalidRequest(
            f"credential {key!r}: an address must not carry user information (user:password@), a query or a "
            f"fragment; this one has {problem}"
        )


# ---- secret bindings -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One ``provisioning-endpoints`` prefix: ``https://host[:port][/path]``, normalised."""

    host: str  # lower case, no trailing dot
    port: int
    path: str  # no trailing slash; "" for the whole host

    def __str__(self) -> str:
        port = "" if self.port == 443 else f":{self.port}"
        return f"https://{self.host}{port}{self.path}"


@dataclass(frozen=True)
class Bound:
    """A secret read from Key Vault for a request: which credential it is, and the version's tags."""

    key: str
    reference: SecretReference
    version: str | None
    tags: Mapping[str, str]

    @classmethod
    def of(cls, key: str, reference: SecretReference, resolved: Resolved) -> Bound:
        return cls(key=key, reference=reference, version=resolved.version, tags=resolved.tags)

    @property
    def name(self) -> str:
        return f"secret {self.reference.name!r} (version {self.version or 'unknown'}) in {self.reference.host}"


def _normal_host(host: str) -> str:
    host = host.lower()
    return host[:-1] if host.endswith(".") else host


def parse_targets(text: str | None) -> frozenset[str] | str:
    """The object ids of a ``provisioning-targets`` tag (lower case), or what is wrong with the tag."""
    if text is None:
        return f"it has no tag {TARGETS_TAG}"
    items = [item for item in _SEPARATORS.split(text) if item]
    if not items:
        return f"its tag {TARGETS_TAG} is empty"
    if not all(GUID.fullmatch(item) for item in items):
        return f"its tag {TARGETS_TAG} is not a list of object ids (GUIDs separated by commas or spaces)"
    return frozenset(item.lower() for item in items)


def parse_endpoints(text: str | None) -> tuple[Endpoint, ...] | str | None:
    """The prefixes of a ``provisioning-endpoints`` tag, ``None`` without the tag, or what is wrong with it."""
    if text is None:
        return None
    items = [item for item in _SEPARATORS.split(text) if item]
    if not items:
        return f"its tag {ENDPOINTS_TAG} is empty"
    endpoints = []
    for item in items:
        endpoint = _endpoint(item)
        if endpoint is None:
            return f"its tag {ENDPOINTS_TAG} is not a list of https://host[:port][/path] prefixes"
        endpoints.append(endpoint)
    return tuple(endpoints)


def _https(text: str) -> Endpoint | None:
    """An https URL with no user information, query or fragment, a plain host and a plain path, normalised."""
    try:
        parts = urlsplit(text)
        port = 443 if parts.port is None else parts.port
    except ValueError:
        return None
    if parts.scheme.lower() != "https" or parts.query or parts.fragment or "@" in parts.netloc or "?" in text:
        return None
    if port == 0:
        return None
    host = _normal_host(parts.hostname or "")
    if not _HOST.fullmatch(host) or not _plain_path(parts.path):
        return None
    return Endpoint(host=host, port=port, path=parts.path)


def _endpoint(text: str) -> Endpoint | None:
    parsed = _https(text)
    return None if parsed is None else Endpoint(parsed.host, parsed.port, parsed.path.rstrip("/"))


def _plain_path(path: str) -> bool:
    """ASCII, no dot segments and nothing encoded that a server could turn into one after the check."""
    if not path.isascii() or _ENCODED.search(path):
        return False
    return not any(segment in (".", "..") for segment in path.split("/"))


def endpoint_matches(value: str, endpoint: Endpoint, *, bare: bool = True) -> bool:
    """Whether an address credential's value may be sent where ``endpoint`` allows.

    A URL matches when it is https, its host is the prefix's (case and a trailing dot aside), its port is the
    prefix's (443 when none is written), and its path starts with the prefix's at a segment boundary (``/v2``
    matches ``/v2`` and ``/v2/x``, not ``/v20``). A bare host (``Server``, ``Domain``, ``InstanceName``) matches a
    prefix with that host, and its port if it names one; ``bare=False`` for a key whose value must be a URL (a bare host
    there would escape the prefix's path).
    """
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in value):
        return False  # Python's URL parser drops some of these; a server may not
    if "://" not in value:
        host = _BARE_HOST.fullmatch(value) if bare else None
        if host is None or _normal_host(host.group("host")) != endpoint.host:
            return False
        port = host.group("port")
        return port is None or int(port) == endpoint.port
    address = _https(value)
    if address is None or address.host != endpoint.host or address.port != endpoint.port:
        return False
    path = address.path or "/"
    return endpoint.path == "" or path == endpoint.path or path.startswith(endpoint.path + "/")


def binding_problem(target: Target, sent: Sequence[tuple[str, str]], secret: Bound) -> PolicyRefused | None:
    """Why this secret may not go to ``target`` with these credentials, or ``None`` when its tags allow it."""
    how = (
        f"Its owner binds it by tagging this version: python -m shared bind --secret {secret.reference} "
        f"--target {target.id} --endpoint https://<host>[/<path>]"
    )
    targets = parse_targets(secret.tags.get(TARGETS_TAG))
    if isinstance(targets, str):
        return PolicyRefused(
            f"{secret.name} is not bound to {target.type} {target.id}: {targets}. {how}", code="secretNotBound"
        )
    if target.id not in targets:
        return PolicyRefused(
            f"{secret.name} is not bound to {target.type} {target.id}: its tag {TARGETS_TAG} does not list it. {how}",
            code="secretNotBound",
        )
    addresses = [key for key, _ in sent if is_address(key)]
    if not addresses:
        return None
    endpoints = parse_endpoints(secret.tags.get(ENDPOINTS_TAG))
    if endpoints is None:
        return PolicyRefused(
            f"{secret.name} has no tag {ENDPOINTS_TAG}, so it may travel with no address credential, and "
            f"credential {addresses[0]!r} is one. {how}",
            code="endpointNotBound",
        )
    if isinstance(endpoints, str):
        return PolicyRefused(
            f"{secret.name} cannot be sent with an address: {endpoints}. {how}", code="endpointNotBound"
        )
    for key, value in sent:
        bare = key in BARE_HOST_KEYS
        if is_address(key) and not any(endpoint_matches(value, endpoint, bare=bare) for endpoint in endpoints):
            return PolicyRefused(
                f"credential {key!r} is not an endpoint {secret.name} may be sent to: its tag {ENDPOINTS_TAG} "
                "lists no prefix that matches it",
                code="endpointNotBound",
            )
    return None


def check_saved(request: AcquireRequest, secrets: Sequence[Bound], settings: Settings) -> None:
    """``saveSecrets`` rewrites the job's credentials, addresses included, for every later sync cycle: with bindings
    on, a request may do that only with at least one Key Vault secret its owner bound to the target (whose
    endpoints then decide every address saved). An inline-only set cannot re-point a job."""
    if settings.secret_binding == "off" or "saveSecrets" not in request.steps or request.dry_run:  # noqa: S105
        return
    if not secrets:
        target = request.target
        raise PolicyRefused(
            "saveSecrets writes the job's credentials, so with SECRET_BINDING=required it needs at least one Key "
            f"Vault secret bound to {target.type} {target.id} (tags {TARGETS_TAG} and {ENDPOINTS_TAG}); this request "
            "reads none",
            code="secretNotBound",
        )


def check_bindings(
    target: Target, sent: Sequence[tuple[str, str]], secrets: Sequence[Bound], settings: Settings
) -> None:
    """Raise the first binding refusal of the secrets read for a request (``SECRET_BINDING=off``: none)."""
    if settings.secret_binding == "off":  # noqa: S105 - a mode, not a password
        return
    seen: set[tuple[str, str | None]] = set()
    for secret in secrets:
        identity = (secret.reference.secret_id, secret.version)
        if identity in seen:
            continue
        seen.add(identity)
        problem = binding_problem(target, sent, secret)
        if problem is not None:
            raise problem


# ---- the caller -----------------------------------------------------------------------------------------------------

OPERATOR = "Provisioning.Operator"  # ad-hoc requests, run a connection, read and list connections
ADMIN = "Provisioning.Admin"  # all of that, and create, replace and delete connections
PRINCIPAL_HEADER = "x-ms-client-principal"
_OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
_NAME_CLAIMS = ("name", "preferred_username", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn", "appid")


@dataclass(frozen=True)
class Caller:
    """Who is calling: a function key holder, or an Entra principal with its app roles."""

    name: str | None = None
    object_id: str | None = None
    roles: frozenset[str] = frozenset()
    by_key: bool = True

    @property
    def audit(self) -> str | dict[str, str | None]:
        """How a connection records who changed it: ``functionKey``, or the principal's name and object id."""
        return "functionKey" if self.by_key else {"name": self.name, "objectId": self.object_id}


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header by its lower-case name, whatever case the caller wrote."""
    return next((v for k, v in headers.items() if k.lower() == name), None)


def authenticate(headers: Mapping[str, str], settings: Settings, environ: Mapping[str, str]) -> Caller:
    """The caller of an HTTP route. ``entra``: the principal App Service Authentication put in the request.

    The header is trusted only when the platform reports authentication on (``WEBSITE_AUTH_ENABLED``, which App
    Service sets, and whose module strips a caller's own copy of the header): otherwise anyone could write it, so
    every such request is 503 ``authNotEnabled``. Roles are the claims of type ``roles`` only, never a type the
    header itself names.
    """
    if settings.caller_auth == "key":
        return Caller()
    if (environ.get("WEBSITE_AUTH_ENABLED") or "").strip().lower() != "true":
        raise ConfigurationError(
            "CALLER_AUTH is entra but App Service Authentication is not enabled on this app (WEBSITE_AUTH_ENABLED "
            "is not True), so the caller's identity cannot be trusted",
            code="authNotEnabled",
        )
    raw = header(headers, PRINCIPAL_HEADER)
    if not raw:
        raise PolicyRefused("this route needs an authenticated caller with an app role", code="callerNotAuthorized")
    import base64
    import binascii
    import json

    try:
        principal = json.loads(base64.b64decode(raw, validate=True))
        claims = [c for c in principal.get("claims") or [] if isinstance(c, dict)]
    except (binascii.Error, ValueError, AttributeError, TypeError):
        raise PolicyRefused("the caller's principal cannot be read", code="callerNotAuthorized") from None

    def first(types: tuple[str, ...]) -> str | None:
        for wanted in types:
            for claim in claims:
                if claim.get("typ") == wanted and isinstance(claim.get("val"), str):
                    return str(claim["val"])[:256]
        return None

    roles = frozenset(str(c.get("val")) for c in claims if c.get("typ") == "roles" and isinstance(c.get("val"), str))
    return Caller(name=first(_NAME_CLAIMS), object_id=first(_OBJECT_ID_CLAIMS), roles=roles, by_key=False)


def require(caller: Caller, role: str) -> None:
    """403 ``callerNotAuthorized`` naming the role, unless the caller holds it (an Admin holds the Operator's too)."""
    if caller.by_key or role in caller.roles or (role == OPERATOR and ADMIN in caller.roles):
        return
    raise PolicyRefused(f"this route needs the app role {role}", code="callerNotAuthorized")
