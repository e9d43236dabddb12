"""Key Vault (secrets data plane) over HTTPS.

Speaks the challenge flow azure-keyvault-secrets expects: an unauthenticated request gets 401 with
``WWW-Authenticate: Bearer authorization=..., resource=...``; the resource is ``https://0.1:PORT`` so that the
SDK's check (the vault's ``host:port`` must end with ``.`` + the resource's) passes for ``127.0.0.1:PORT`` with
no ``verify_challenge_resource=False``. Tokens must carry that audience. Errors are Key Vault's JSON.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from .base import Reply, Seen, StandIn
from .identity import TENANT_ID, IdentityStandIn

API_VERSIONS = {"7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"}
_PATH = re.compile(r"^/secrets/(?P<name>[0-9A-Za-z-]{1,127})(?:/(?P<version>[0-9A-Za-z]*))?/?$")


@dataclass
class StoredSecret:
    value: str
    version: str
    enabled: bool = True
    expires: int | None = None  # epoch seconds, Key Vault's "exp" attribute
    tags: dict[str, str] | None = None  # the version's own tags, as Key Vault keeps them (per version)
    created: int = 0  # epoch seconds, Key Vault's "created" attribute
    updated: int = 0


class KeyVaultStandIn(StandIn):
    name = "key-vault"

    def __init__(self, identity: IdentityStandIn, tls: object) -> None:
        super().__init__(tls=tls)  # type: ignore[arg-type]
        self.identity = identity
        self.secrets: dict[str, list[StoredSecret]] = {}
        self.forbidden: set[str] = set()  # secret names the app's identity may not read (RBAC)
        self.writers: set[str] | None = None  # object ids that may update a secret (None: anyone with a token)
        self.updates: list[tuple[str, str, dict[str, str]]] = []  # (name, version, tags) of each update
        self.listed: list[str] = []  # names whose versions were listed (properties only)
        self.list_forbidden = False  # the identity may not list the vault's secrets (RBAC)
        self.default_tags: dict[str, str] | None = None  # what set_secret tags a new version with, unless told

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def resource(self) -> str:
        return f"https://0.1:{self.port}"

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        enabled: bool = True,
        expires: int | None = None,
        tags: dict[str, str] | object | None = ...,
    ) -> str:
        """A new version of the secret (the newest is what a reference without a version gets); its version id.

        ``tags``: the new version's tags (Key Vault keeps tags per version; a new version has only what its writer
        gave it); left out, :attr:`default_tags`.
        """
        version = secrets.token_hex(16)
        given = self.default_tags if tags is ... else tags
        now = int(time.time())
        stored = StoredSecret(value, version, enabled, expires, None if given is None else dict(given), now, now)  # type: ignore[arg-type]
        self.secrets.setdefault(name, []).append(stored)
        return version

    def event(self, event_type: str, name: str, version: str | None = None, *, schema: str = "eventgrid") -> str:
        """A Key Vault event as Event Grid delivers it for this vault, in either schema (JSON text)."""
        import json

        stored = (
            self.secrets[name][-1] if version is None else next(s for s in self.secrets[name] if s.version == version)
        )
        data = {
            "Id": f"https://{self.host}/secrets/{name}/{stored.version}",
            "VaultName": "standin-kv",
            "ObjectType": "Secret",
            "ObjectName": name,
            "Version": stored.version,
            "NBF": str(int(time.time()) - 60),
            "EXP": None if stored.expires is None else str(stored.expires),
        }
        topic = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/standin-kv"
        event_id = secrets.token_hex(8)
        if schema == "cloudevents":
            return json.dumps(
                {
                    "specversion": "1.0",
                    "id": event_id,
                    "source": topic,
                    "type": event_type,
                    "subject": name,
                    "time": "2026-11-25T08:00:00Z",
                    "data": data,
                }
            )
        return json.dumps(
            {
                "id": event_id,
                "topic": topic,
                "subject": name,
                "eventType": event_type,
                "data": data,
                "eventTime": "2026-11-25T08:00:00.0000000Z",
                "dataVersion": "1",
                "metadataVersion": "1",
            }
        )

    def handle(self, seen: Seen) -> Reply:
        if seen.query.get("api-version") not in API_VERSIONS:
            return _error(400, "BadParameter", "The request URI contains an invalid or missing api-version.")
        claims = self.identity.verify(seen.headers.get("authorization"), self.resource)
        if isinstance(claims, str):
            seen.note = claims
            challenge = (
                f'Bearer authorization="https://login.microsoftonline.com/{TENANT_ID}", resource="{self.resource}"'
            )
            return Reply(
                401,
                _body("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."),
                {"WWW-Authenticate": challenge},
            )
        if seen.method == "GET" and seen.path.rstrip("/") == "/secrets":  # Get Secrets: properties only
            if self.list_forbidden:
                return Reply(403, _body("Forbidden", "Caller is not authorized to perform action on resource."))
            listed = [self._bundle(name, versions[-1]) for name, versions in self.secrets.items() if versions]
            return Reply(200, {"value": listed, "nextLink": None})
        match = _PATH.match(seen.path)
        if seen.method not in ("GET", "PATCH") or not match:
            return _error(405, "BadParameter", "only GET /secrets/{name}[/{version}] and PATCH of a version are served")
        name, version = match.group("name"), match.group("version") or None
        name = next((known for known in self.secrets if known.lower() == name.lower()), name)  # names ignore case
        if seen.method == "PATCH":
            return self._update(seen, claims, name, version)
        if version == "versions":  # List Secret Versions: every version's properties, never a value
            listed = self.secrets.get(name)
            if not listed:
                return _error(404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault.")
            self.listed.append(name)
            return Reply(200, {"value": [self._bundle(name, v) for v in listed], "nextLink": None})
        if name in self.forbidden:
            return Reply(
                403,
                {
                    "error": {
                        "code": "Forbidden",
                        "message": "Caller is not authorized to perform action on resource. "
                        f"Caller: appid={claims.get('appid')}",
                        "innererror": {"code": "ForbiddenByRbac"},
                    }
                },
            )
        versions = self.secrets.get(name, [])
        stored = (
            next((s for s in versions if s.version == version), None)
            if version
            else (versions[-1] if versions else None)
        )
        if stored is None:
            return _error(404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault.")
        if not stored.enabled:
            return Reply(
                403,
                {
                    "error": {
                        "code": "Forbidden",
                        "message": "Operation get is not allowed on a disabled secret.",
                        "innererror": {"code": "SecretDisabled"},
                    }
                },
            )
        return Reply(200, {"value": stored.value, **self._bundle(name, stored)})

    def _bundle(self, name: str, stored: StoredSecret) -> dict[str, object]:
        """A secret bundle's properties as Key Vault writes them; ``tags`` only when the version has any."""
        bundle: dict[str, object] = {
            "id": f"https://{self.host}/secrets/{name}/{stored.version}",
            "attributes": {
                **({"exp": stored.expires} if stored.expires is not None else {}),
                "enabled": stored.enabled,
                "created": stored.created,
                "updated": stored.updated,
                "recoveryLevel": "Recoverable+Purgeable",
            },
        }
        if stored.tags:
            bundle["tags"] = dict(stored.tags)
        return bundle

    def _update(self, seen: Seen, claims: dict[str, object], name: str, version: str | None) -> Reply:
        """``PATCH /secrets/{name}/{version}`` (Update Secret): the version's attributes and tags, never its value."""
        if name in self.forbidden or (self.writers is not None and claims.get("oid") not in self.writers):
            return Reply(403, _body("Forbidden", "Caller is not authorized to perform action on resource."))
        stored = next((s for s in self.secrets.get(name, []) if s.version == version), None) if version else None
        if stored is None:
            return _error(
                404, "SecretNotFound", f"A secret with (name/id) {name}/{version} was not found in this key vault."
            )
        try:
            body = seen.json()
        except ValueError:
            return _error(400, "BadParameter", "The request body is not JSON.")
        if not isinstance(body, dict) or set(body) - {"contentType", "attributes", "tags"}:
            return _error(400, "BadParameter", "Update Secret takes contentType, attributes and tags.")
        tags = body.get("tags")
        if tags is not None:
            if (
                not isinstance(tags, dict)
                or len(tags) > 15
                or any(not isinstance(v, str) or len(k) > 512 or len(v) > 256 for k, v in tags.items())
            ):
                return _error(400, "BadParameter", "Tags: at most 15, names up to 512 and values up to 256 characters.")
            stored.tags = dict(tags)
        stored.updated = int(time.time())
        self.updates.append((name, stored.version, dict(stored.tags or {})))
        return Reply(200, self._bundle(name, stored))


def _body(code: str, message: str) -> dict[str, object]:
    return {"error": {"code": code, "message": message}}


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, _body(code, message))
