"""App settings (docs/reference.md, "App settings"), parsed and validated once.

A setting that cannot be parsed raises :class:`SettingsError` naming it, so the host logs it at start-up
and ``GET /api/health`` reports it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Literal
from urllib.parse import urlsplit

__all__ = ["GUID", "SETTING_NAMES", "CallerAuth", "SecretBinding", "Settings", "SettingsError"]

SecretBinding = Literal["required", "off"]
CallerAuth = Literal["key", "entra"]

_HOST_PORT = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
# NCRONTAB as the Functions timer trigger takes it: six fields, seconds first.
_NCRONTAB = re.compile(r"^\S+( \S+){5}$")
_TIMESPAN = re.compile(r"^\d{1,2}:\d{2}:\d{2}$")  # hh:mm:ss, which the timer trigger also takes
_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")


class SettingsError(ValueError):
    """A setting is present but unusable. ``setting`` names it."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"app setting {setting}: {problem}")
        self.setting = setting
        self.problem = problem


@dataclass(frozen=True)
class Settings:
    graph_endpoint: str = "https://graph.microsoft.com"
    graph_api_version: str = "v1.0"
    graph_scope: str = "https://graph.microsoft.com/.default"
    azure_client_id: str | None = None
    key_vault_uri: str | None = None
    key_vault_allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    key_vault_dns_suffix: str = "vault.azure.net"
    secret_cache_seconds: float = 300.0
    allow_inline_secrets: bool = False
    allowed_targets: frozenset[str] | None = None
    secret_binding: SecretBinding = "required"  # noqa: S105 - a mode, not a password
    caller_auth: CallerAuth = "key"
    graph_timeout_seconds: float = 30.0
    graph_max_attempts: int = 4
    request_queue_name: str = "acquire-access-token"
    applicationinsights_connection_string: str | None = field(default=None, repr=False)
    connections_table: str = "connections"
    sweep_schedule: str = "0 0 6 * * *"
    sweep_expiry_days: int = 30
    connection_queue_name: str = "connection-work"
    recovery_min_hours: float = 12.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name)
            if value is None or not value.strip():
                return None
            return value.strip()

        graph_endpoint = _https_root("GRAPH_ENDPOINT", get("GRAPH_ENDPOINT") or cls.graph_endpoint)
        version = get("GRAPH_API_VERSION") or cls.graph_api_version
        if version not in ("v1.0", "beta"):
            raise SettingsError("GRAPH_API_VERSION", f"must be 'v1.0' or 'beta', not {version!r}")
        scope = get("GRAPH_SCOPE") or f"{graph_endpoint}/.default"
        if not scope.startswith("https://") or not scope.endswith("/.default"):
            raise SettingsError("GRAPH_SCOPE", "must be an https resource ending in '/.default'")

        client_id = get("AZURE_CLIENT_ID")
        if client_id is not None:
            _guid("AZURE_CLIENT_ID", client_id)

        vault_uri = get("KEY_VAULT_URI")
        if vault_uri is not None:
            vault_uri = _https_root("KEY_VAULT_URI", vault_uri)
        allowed_raw = get("KEY_VAULT_ALLOWED_HOSTS")
        if allowed_raw is not None:
            hosts = {h.strip().lower() for h in allowed_raw.split(",") if h.strip()}
            for host in hosts:
                if not _HOST_PORT.fullmatch(host):
                    raise SettingsError("KEY_VAULT_ALLOWED_HOSTS", f"{host!r} is not a host[:port]")
        elif vault_uri is not None:
            hosts = {urlsplit(vault_uri).netloc.lower()}
        else:
            hosts = set()

        suffix = (get("KEY_VAULT_DNS_SUFFIX") or cls.key_vault_dns_suffix).lower().strip(".")
        if not _HOST_PORT.fullmatch(suffix) or "." not in suffix:
            raise SettingsError("KEY_VAULT_DNS_SUFFIX", f"{suffix!r} is not a DNS suffix")

        targets_raw = get("ALLOWED_TARGETS")
        targets = None
        if targets_raw is not None:
            targets = frozenset(_guid("ALLOWED_TARGETS", t.strip()) for t in targets_raw.split(",") if t.strip())

        binding = (get("SECRET_BINDING") or cls.secret_binding).lower()
        if binding not in ("required", "off"):
            raise SettingsError("SECRET_BINDING", f"must be 'required' or 'off', not {binding!r}")

        caller_auth = (get("CALLER_AUTH") or cls.caller_auth).lower()
        if caller_auth not in ("key", "entra"):
            raise SettingsError("CALLER_AUTH", f"must be 'key' or 'entra', not {caller_auth!r}")

        queue = _queue_name("REQUEST_QUEUE_NAME", get("REQUEST_QUEUE_NAME") or cls.request_queue_name)

        table = get("CONNECTIONS_TABLE") or cls.connections_table
        if not _TABLE_NAME.fullmatch(table) or table.lower() == "tables":
            raise SettingsError("CONNECTIONS_TABLE", f"{table!r} is not a valid Table Storage table name")
        schedule = get("SWEEP_SCHEDULE") or cls.sweep_schedule
        if not _NCRONTAB.fullmatch(" ".join(schedule.split())) and not _TIMESPAN.fullmatch(schedule):
            raise SettingsError("SWEEP_SCHEDULE", f"{schedule!r} is not a six-field NCRONTAB expression")

        return cls(
            graph_endpoint=graph_endpoint,
            graph_api_version=version,
            graph_scope=scope,
            azure_client_id=client_id,
            key_vault_uri=vault_uri,
            key_vault_allowed_hosts=frozenset(hosts),
            key_vault_dns_suffix=suffix,
            secret_cache_seconds=_number("SECRET_CACHE_SECONDS", get("SECRET_CACHE_SECONDS"), 300.0, 0, 86400),
            allow_inline_secrets=_boolean("ALLOW_INLINE_SECRETS", get("ALLOW_INLINE_SECRETS")),
            allowed_targets=targets,
            secret_binding="off" if binding == "off" else "required",
            caller_auth="entra" if caller_auth == "entra" else "key",
            graph_timeout_seconds=_number("GRAPH_TIMEOUT_SECONDS", get("GRAPH_TIMEOUT_SECONDS"), 30.0, 0.1, 600),
            graph_max_attempts=int(_number("GRAPH_MAX_ATTEMPTS", get("GRAPH_MAX_ATTEMPTS"), 4, 1, 10, whole=True)),
            request_queue_name=queue,
            applicationinsights_connection_string=get("APPLICATIONINSIGHTS_CONNECTION_STRING"),
            connections_table=table,
            sweep_schedule=schedule,
            sweep_expiry_days=int(_number("SWEEP_EXPIRY_DAYS", get("SWEEP_EXPIRY_DAYS"), 30, 1, 3650, whole=True)),
            connection_queue_name=_queue_name(
                "CONNECTION_QUEUE_NAME", get("CONNECTION_QUEUE_NAME") or cls.connection_queue_name
            ),
            recovery_min_hours=_number("RECOVERY_MIN_HOURS", get("RECOVERY_MIN_HOURS"), 12.0, 0, 24 * 365),
        )


# Each setting is the upper-case name of its field, in the fields' order (docs/reference.md lists them so).
SETTING_NAMES: tuple[str, ...] = tuple(setting.name.upper() for setting in fields(Settings))


def _https_root(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise SettingsError(name, f"must be an https URL, not {value!r}")
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise SettingsError(name, "must be a root URL with no path, query or fragment")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise SettingsError(name, f"has a bad port: {exc}") from None
    return f"https://{parts.netloc.lower()}"


# An object id as Graph writes it; the one GUID pattern of the app (requests, routes, settings).
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _guid(name: str, value: str) -> str:
    # A pattern, not uuid.UUID: importing uuid (and platform) costs milliseconds on every cold start.
    if not GUID.fullmatch(value):
        raise SettingsError(name, f"{value!r} is not a GUID")
    return value.lower()


def _queue_name(name: str, value: str) -> str:
    if not _QUEUE_NAME.fullmatch(value):
        raise SettingsError(name, f"{value!r} is not a valid Storage queue name")
    return value


def _boolean(name: str, value: str | None) -> bool:
    if value is None:
        return False
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise SettingsError(name, f"must be true or false, not {value!r}")


def _number(name: str, value: str | None, default: float, low: float, high: float, *, whole: bool = False) -> float:
    if value is None:
        return default
    try:
        number = int(value) if whole else float(value)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise SettingsError(name, f"must be {kind}, not {value!r}") from None
    if not low <= number <= high:
        raise SettingsError(name, f"must be between {low:g} and {high:g}, not {value}")
    return number
