"""Key Vault references: the four forms (docs/reference.md, "The request"), the vault-host allowlist, resolution.

Parsing is pure and needs only :class:`~shared.settings.Settings`. Resolution uses the async
``azure-keyvault-secrets`` client, one per vault, created on first use and reused; all references of a request
are resolved concurrently, identical references share one call, and values are cached in memory for
``SECRET_CACHE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import (
    IdentityNotAllowed,
    InvalidRequest,
    PolicyRefused,
    ReferenceUnresolvable,
    ServiceUnavailable,
    retry_after_seconds,
)
from .settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.keyvault.secrets.aio import SecretClient

__all__ = ["REFERENCE_PATTERN", "Resolved", "SecretReference", "SecretResolver", "parse_reference", "secret_id"]

log = logging.getLogger(__name__)

_SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_VERSION = re.compile(r"^[0-9A-Za-z]{1,64}$")
_VAULT_NAME = re.compile(r"^[A-Za-z][0-9A-Za-z-]{1,22}[0-9A-Za-z]$")
_APP_SERVICE_FORM = re.compile(r"^@Microsoft\.KeyVault\((?P<body>.*)\)$", re.DOTALL)

MAX_CACHED_SECRETS = 1024
# A secret Key Vault said does not exist is remembered this long, so that repeated requests naming it (by mistake or
# on purpose) do not each cost a vault read.
NOT_FOUND_SECONDS = 30.0
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")


def proxy_configured() -> bool:
    """Whether the environment names a proxy (any spelling of case), the one reason to let aiohttp read it."""
    names = {name.upper() for name in os.environ}
    return any(name in names for name in PROXY_VARIABLES)


def _grammar() -> str:
    """Every secretRef the app takes, as one regular expression (for the OpenAPI documents, and the final check).

    Written with the constructs JSON Schema's ECMA-262 patterns share with Python's ``re``.
    """
    from itertools import permutations

    name, version = r"[0-9A-Za-z-]{1,127}", r"[0-9A-Za-z]{1,64}"
    port = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
    uri = rf"[Hh][Tt][Tt][Pp][Ss]://[A-Za-z0-9.-]+(?::{port})?/secrets/{name}(?:/{version})?/?"
    fields = {"VaultName": r"[A-Za-z][0-9A-Za-z-]{1,22}[0-9A-Za-z]", "SecretName": name, "SecretVersion": version}
    orders = [*permutations(["VaultName", "SecretName"]), *permutations(list(fields))]
    by_name = "|".join(" *; *".join(f"{field} *= *{fields[field]}" for field in order) for order in orders)
    app_service = rf"@Microsoft\.KeyVault\( *(?:SecretUri *= *{uri}|{by_name}) *\)"
    return rf"^(?:{app_service}|{uri}|{name}(?:/{version})?)$"


REFERENCE_PATTERN = _grammar()
_REFERENCE = re.compile(REFERENCE_PATTERN)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A secret as Key Vault answered it: the value, and the version's own properties (its tags bind it)."""

    value: str = field(repr=False)
    version: str | None
    expires_on: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    created_on: datetime | None = None


@dataclass(frozen=True)
class SecretReference:
    vault_url: str  # https://host[:port], lower case
    name: str
    version: str | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.vault_url).netloc

    @property
    def secret_id(self) -> str:
        """The secret without its version, as connections and rotation events name it: the host in lower case and
        without the default port, the name in lower case (Key Vault names ignore case), so that every spelling of one
        secret is one id for the index, rotation and ``appliedVersions``."""
        return secret_id(self.vault_url, self.name)

    def __str__(self) -> str:
        suffix = f"/{self.version}" if self.version else ""
        return f"{self.vault_url}/secrets/{self.name}{suffix}"


def secret_id(vault_url: str, name: str) -> str:
    """The normalised id of a secret: ``https://<host>[:port]/secrets/<name>``, lower case, no ``:443``."""
    return f"https://{_normal_authority(urlsplit(vault_url).netloc)}/secrets/{name.lower()}"


def parse_reference(ref: str, settings: Settings, *, key: str = "secretRef") -> SecretReference:
    """Parse one ``secretRef`` and check its vault host against ``KEY_VAULT_ALLOWED_HOSTS``.

    Raises :class:`InvalidRequest` for a reference of no known form, :class:`PolicyRefused` for a vault
    host that is not allowed. Nothing here touches the network.
    """
    text = ref
    match = _APP_SERVICE_FORM.match(text)
    if match:
        reference = _parse_app_service_form(match.group("body"), settings, key)
    elif text.lower().startswith(("https://", "http://")):
        reference = _parse_secret_uri(text, key)
    else:
        reference = _parse_short_form(text, settings, key)
    if not _REFERENCE.fullmatch(text):  # the one grammar the OpenAPI documents state, to the letter
        raise InvalidRequest(
            f"credential {key!r}: secretRef is not a Key Vault reference of a known form (no spaces around it, "
            "https://<vault-host>[:port]/secrets/<name>[/<version>], @Microsoft.KeyVault(...), or <name>[/<version>])"
        )
    _check_host(reference, settings, key)
    return reference


def _parse_app_service_form(body: str, settings: Settings, key: str) -> SecretReference:
    fields: dict[str, str] = {}
    for part in body.split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep or not value.strip():
            raise InvalidRequest(f"credential {key!r}: @Microsoft.KeyVault(...) needs Name=Value pairs")
        name = name.strip()
        if name in fields:
            raise InvalidRequest(f"credential {key!r}: @Microsoft.KeyVault(...) names {name} twice")
        fields[name] = value.strip()
    if set(fields) == {"SecretUri"}:
        return _parse_secret_uri(fields["SecretUri"], key)
    if "VaultName" in fields and "SecretName" in fields and set(fields) <= {"VaultName", "SecretName", "SecretVersion"}:
        vault = fields["VaultName"]
        if not _VAULT_NAME.fullmatch(vault):
            raise InvalidRequest(f"credential {key!r}: VaultName is not a valid Key Vault name")
        return _checked(
            f"https://{vault.lower()}.{settings.key_vault_dns_suffix}",
            fields["SecretName"],
            fields.get("SecretVersion"),
            key,
        )
    raise InvalidRequest(
        f"credential {key!r}: @Microsoft.KeyVault(...) takes SecretUri=..., or VaultName=...;SecretName=..."
        "[;SecretVersion=...]"
    )


def _parse_secret_uri(uri: str, key: str) -> SecretReference:
    parts = urlsplit(uri)
    if parts.scheme.lower() != "https":
        raise InvalidRequest(f"credential {key!r}: a Key Vault secret URI must use https")
    if parts.query or parts.fragment or parts.username or parts.password or not parts.hostname:
        raise InvalidRequest(
            f"credential {key!r}: a Key Vault secret URI is https://<vault-host>/secrets/<name>[/<version>]"
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise InvalidRequest(f"credential {key!r}: the Key Vault secret URI has a bad port") from None
    segments = parts.path.strip("/").split("/")
    if len(segments) not in (2, 3) or segments[0] != "secrets":
        raise InvalidRequest(
            f"credential {key!r}: a Key Vault secret URI is https://<vault-host>/secrets/<name>[/<version>]"
        )
    return _checked(f"https://{parts.netloc.lower()}", segments[1], segments[2] if len(segments) == 3 else None, key)


def _parse_short_form(text: str, settings: Settings, key: str) -> SecretReference:
    if settings.key_vault_uri is None:
        raise InvalidRequest(
            f"credential {key!r}: a short secret reference (<name>[/<version>]) needs the KEY_VAULT_URI app setting"
        )
    segments = text.split("/")
    if len(segments) > 2:
        raise InvalidRequest(f"credential {key!r}: secretRef is not a Key Vault reference of a known form")
    return _checked(settings.key_vault_uri, segments[0], segments[1] if len(segments) == 2 else None, key)


def _checked(vault_url: str, name: str, version: str | None, key: str) -> SecretReference:
    if not _SECRET_NAME.fullmatch(name):
        raise InvalidRequest(f"credential {key!r}: secret name must be 1-127 letters, digits or dashes")
    if version is not None and not _VERSION.fullmatch(version):
        raise InvalidRequest(f"credential {key!r}: secret version must be letters and digits")
    return SecretReference(vault_url=vault_url, name=name, version=version)


def _normal_authority(netloc: str) -> str:
    netloc = netloc.lower()
    return netloc[: -len(":443")] if netloc.endswith(":443") else netloc


def _check_host(reference: SecretReference, settings: Settings, key: str) -> None:
    allowed = {_normal_authority(h) for h in settings.key_vault_allowed_hosts}
    if _normal_authority(reference.host) not in allowed:
        raise PolicyRefused(
            f"credential {key!r}: vault host {reference.host!r} is not in KEY_VAULT_ALLOWED_HOSTS",
            code="vaultHostNotAllowed",
        )


class SecretResolver:
    """Resolves references with ``azure-keyvault-secrets``; one client per vault, values cached in memory."""

    def __init__(
        self,
        credential: AsyncTokenCredential,
        *,
        cache_seconds: float,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self._credential = credential
        self._cache_seconds = cache_seconds
        self._client_options = {
            "retry_total": 2,
            "retry_backoff_factor": 0.4,
            # With the environment trusted, aiohttp looks for a .netrc file (in a worker thread) and for proxy variables
            # on every request: about a third of the CPU a Key Vault read costs. Key Vault is called with a bearer
            # token, never .netrc credentials, so the environment is read only when it names a proxy.
            "use_env_settings": proxy_configured(),
            **(client_options or {}),
        }
        self._clients: dict[str, SecretClient] = {}
        self._cache: OrderedDict[SecretReference, tuple[float, Resolved]] = OrderedDict()
        self._in_flight: dict[SecretReference, asyncio.Future[Resolved]] = {}
        self._missing: OrderedDict[SecretReference, tuple[float, ReferenceUnresolvable]] = OrderedDict()
        self._missing_counter: Any = None

    async def resolve_all(self, references: Iterable[SecretReference]) -> list[Resolved]:
        """Resolve every reference concurrently (the values with their versions' properties); the first error, in
        the references' order, is raised."""
        refs = list(references)
        if not refs:
            return []
        # Every read runs to its end, even after one has failed: a secret found missing is then remembered, so the
        # next request naming it costs no read (cancelling the others would lose what their answers said).
        answers = await asyncio.gather(*(self.resolve_versioned(ref) for ref in refs), return_exceptions=True)
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        return [answer for answer in answers if isinstance(answer, Resolved)]

    async def resolve_versioned(self, reference: SecretReference) -> Resolved:
        """A reference naming a version is its own cache entry: a pinned version never gets an older value."""
        cached = self._cache.get(reference)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        missing = self._missing.get(reference)
        if missing is not None:
            if missing[0] > now:
                self._count_remembered_missing(reference)
                raise ReferenceUnresolvable(missing[1].message, code=missing[1].code)
            del self._missing[reference]
        pending = self._in_flight.get(reference)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Resolved] = asyncio.get_running_loop().create_future()
        self._in_flight[reference] = future
        try:
            value = await self._fetch(reference)
        except BaseException as exc:
            if isinstance(exc, ReferenceUnresolvable) and exc.code == "SecretNotFound":
                self._missing[reference] = (time.monotonic() + NOT_FOUND_SECONDS, exc)
                while len(self._missing) > MAX_CACHED_SECRETS:
                    self._missing.popitem(last=False)
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: nobody may be waiting
            raise
        else:
            future.set_result(value)
            if self._cache_seconds > 0:
                self._cache[reference] = (time.monotonic() + self._cache_seconds, value)
                self._cache.move_to_end(reference)
                while len(self._cache) > MAX_CACHED_SECRETS:
                    self._cache.popitem(last=False)
            return value
        finally:
            self._in_flight.pop(reference, None)

    def _count_remembered_missing(self, reference: SecretReference) -> None:
        """Counted (metric ``key_vault.secret_not_found_remembered``): a vault read saved for a missing secret."""
        if self._missing_counter is None:
            from opentelemetry import metrics

            self._missing_counter = metrics.get_meter("shared").create_counter(
                "key_vault.secret_not_found_remembered",
                unit="1",
                description="requests for a secret Key Vault said does not exist, answered without a vault read",
            )
        self._missing_counter.add(1, {"vault": reference.host})
        log.info("secret %r in %s: remembered as not found, Key Vault not asked again", reference.name, reference.host)

    async def read_properties(self, reference: SecretReference) -> Resolved:
        """The properties of the version a reference resolves to (its own version, else the newest), never its value:
        ``list_properties_of_secret_versions`` needs only the metadata permission. ``value`` is empty."""
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError

        where = f"secret {reference.name!r} in {reference.host}"
        client = self._client(reference.vault_url)
        chosen = None
        try:
            async for properties in client.list_properties_of_secret_versions(reference.name):
                if reference.version is not None:
                    if properties.version == reference.version:
                        chosen = properties
                        break
                elif chosen is None or (properties.created_on or datetime.min.replace(tzinfo=UTC)) >= (
                    chosen.created_on or datetime.min.replace(tzinfo=UTC)
                ):  # the newest; of two created in the same second, the one listed later
                    chosen = properties
        except ResourceNotFoundError:
            raise ReferenceUnresolvable(f"{where} does not exist", code="SecretNotFound") from None
        except HttpResponseError as exc:
            status = exc.status_code or 0
            if status in (401, 403):
                raise IdentityNotAllowed(f"Key Vault refused the app's identity for {where} ({status})") from None
            raise ServiceUnavailable(f"Key Vault answered {status} for {where}", code="keyVaultUnavailable") from None
        except ServiceRequestError as exc:
            raise ServiceUnavailable(f"Key Vault could not be reached for {where} ({type(exc).__name__})") from None
        if chosen is None:
            raise ReferenceUnresolvable(f"{where} has no such version", code="SecretNotFound")
        return Resolved(
            "",
            chosen.version,
            chosen.expires_on,
            MappingProxyType(dict(chosen.tags or {})),
            chosen.created_on,
        )

    async def read_current(self, reference: SecretReference) -> Resolved:
        """The secret's current version, read now (never from the cache): what a rotation may apply."""
        return await self._fetch(SecretReference(reference.vault_url, reference.name))

    async def _fetch(self, reference: SecretReference) -> Resolved:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        from .credentials import TokenUnavailable

        client = self._client(reference.vault_url)
        where = f"secret {reference.name!r} in {reference.host}"
        try:
            secret = await client.get_secret(reference.name, reference.version)
        except TokenUnavailable as exc:
            raise IdentityNotAllowed(
                f"{exc.identity} could not get a Key Vault token", code="tokenUnavailable"
            ) from None
        except ResourceNotFoundError:
            raise ReferenceUnresolvable(f"{where} does not exist", code="SecretNotFound") from None
        except ClientAuthenticationError as exc:
            raise IdentityNotAllowed(
                f"Key Vault refused the app's identity for {where} ({exc.status_code})", code=_kv_code(exc)
            ) from None
        except HttpResponseError as exc:
            status = exc.status_code or 0
            code = _kv_code(exc)
            if status == 403 and code == "SecretDisabled":
                raise ReferenceUnresolvable(f"{where} is disabled", code="SecretDisabled") from None
            if status in (401, 403):
                raise IdentityNotAllowed(
                    f"Key Vault refused the app's identity for {where} ({status})", code=code
                ) from None
            if status == 429 or status >= 500:
                raise ServiceUnavailable(
                    f"Key Vault stayed unavailable for {where} ({status})",
                    code=code or "keyVaultUnavailable",
                    retry_after=_retry_after(exc),
                ) from None
            raise ReferenceUnresolvable(f"Key Vault refused {where} ({status})", code=code or "keyVaultError") from None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise ServiceUnavailable(
                f"Key Vault could not be reached for {where} ({type(exc).__name__})", code="keyVaultUnreachable"
            ) from None
        if secret.value is None:
            raise ReferenceUnresolvable(f"{where} has no value", code="SecretEmpty")
        properties = secret.properties
        return Resolved(
            secret.value,
            properties.version or reference.version,
            properties.expires_on,
            MappingProxyType(dict(properties.tags or {})),
            properties.created_on,
        )

    def _client(self, vault_url: str) -> SecretClient:
        client = self._clients.get(vault_url)
        if client is None:
            from azure.keyvault.secrets.aio import SecretClient

            client = SecretClient(vault_url, self._credential, **self._client_options)
            self._clients[vault_url] = client
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()


def _kv_code(exc: Any) -> str:
    """The most specific Key Vault error code: the inner error's if there is one."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None) or ""
    inner = getattr(error, "innererror", None) or {}
    if isinstance(inner, dict) and inner.get("code"):
        return str(inner["code"])
    response = getattr(exc, "response", None)
    if response is not None and not code:
        try:
            body = response.json()
            code = body.get("error", {}).get("code", "") or ""
            inner_code = body.get("error", {}).get("innererror", {}).get("code")
            if inner_code:
                return str(inner_code)
        except Exception:  # noqa: BLE001 - a body that is not JSON has no code
            return code
    return str(code)


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    return None if response is None else retry_after_seconds(response.headers.get("Retry-After"))
