"""``GET /api/health`` and ``GET /api/health/detail``: configuration sanity, no secrets, no network calls.

Anonymous callers learn only the status and the names of missing or invalid settings; the configuration itself
(vault, hosts, modes, what is wrong with a setting) goes only to a caller with a function key, on the detail route.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .settings import Settings, SettingsError

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = ["HOST_EXPRESSION_SETTINGS", "deep_health", "health"]

# Settings the Functions host reads itself, in a trigger's ``%NAME%`` binding expression. The host has no default
# for them: when one is missing, the function that names it is not run at all, whatever the app's code defaults to.
HOST_EXPRESSION_SETTINGS: dict[str, str] = {
    "REQUEST_QUEUE_NAME": "the queue trigger (acquire_from_queue)",
    "SWEEP_SCHEDULE": "the timer trigger (sweep_connections)",
    "CONNECTION_QUEUE_NAME": "the connection-work queue trigger (connection_work)",
}


def health(environ: Mapping[str, str] | None = None, *, detail: bool = False) -> tuple[int, dict[str, object]]:
    """200 (healthy) or 503 naming the settings that are missing or cannot be parsed; with ``detail``, what is wrong
    with each and a summary of the effective settings."""
    status, report = _report(os.environ if environ is None else environ)
    if detail:
        return status, report
    problems = report.get("problems")
    if isinstance(problems, list):
        return status, {"status": report["status"], "problems": [{"setting": p["setting"]} for p in problems]}
    return status, {"status": report["status"]}


def _report(env: Mapping[str, str]) -> tuple[int, dict[str, object]]:
    problems = [
        {
            "setting": name,
            "problem": f"unset: the Functions host resolves %{name}% for {function} from the app settings and has "
            "no default, so that function does not run",
        }
        for name, function in HOST_EXPRESSION_SETTINGS.items()
        if not (env.get(name) or "").strip()
    ]
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        problems.insert(0, {"setting": exc.setting, "problem": exc.problem})
    else:
        if settings.caller_auth == "entra" and (env.get("WEBSITE_AUTH_ENABLED") or "").strip().lower() != "true":
            problems.insert(
                0,
                {
                    "setting": "CALLER_AUTH",
                    "problem": "entra, but App Service Authentication is not enabled on the app (WEBSITE_AUTH_ENABLED "
                    "is not True): every route that needs a caller answers 503 authNotEnabled",
                },
            )
    if problems:
        return 503, {"status": "unhealthy", "problems": problems}
    warnings = []
    if not settings.key_vault_allowed_hosts:
        warnings.append("KEY_VAULT_ALLOWED_HOSTS and KEY_VAULT_URI are unset: every Key Vault reference is refused")
    if settings.secret_binding == "off":  # noqa: S105 - a mode, not a password
        warnings.append(
            "SECRET_BINDING is off: every caller is trusted with every secret of the allowed vaults, to any address"
        )
    if settings.allow_inline_secrets:
        warnings.append("ALLOW_INLINE_SECRETS is on: sensitive credentials may travel in requests")
    if settings.applicationinsights_connection_string is None:
        warnings.append("APPLICATIONINSIGHTS_CONNECTION_STRING is unset: outcomes go to logs only")
    return 200, {
        "status": "healthy",
        "settings": {
            "graphEndpoint": settings.graph_endpoint,
            "graphApiVersion": settings.graph_api_version,
            "graphScope": settings.graph_scope,
            "userAssignedIdentity": settings.azure_client_id is not None,
            "keyVaultUri": settings.key_vault_uri,
            "keyVaultAllowedHosts": sorted(settings.key_vault_allowed_hosts),
            "keyVaultDnsSuffix": settings.key_vault_dns_suffix,
            "secretCacheSeconds": settings.secret_cache_seconds,
            "allowInlineSecrets": settings.allow_inline_secrets,
            "allowedTargets": None if settings.allowed_targets is None else len(settings.allowed_targets),
            "secretBinding": settings.secret_binding,
            "callerAuth": settings.caller_auth,
            "graphTimeoutSeconds": settings.graph_timeout_seconds,
            "graphMaxAttempts": settings.graph_max_attempts,
            "requestQueueName": settings.request_queue_name,
            "applicationInsights": settings.applicationinsights_connection_string is not None,
            "connectionsTable": settings.connections_table,
            "sweepSchedule": settings.sweep_schedule,
            "sweepExpiryDays": settings.sweep_expiry_days,
        },
        "warnings": warnings,
    }


async def deep_health(get_pipeline: Callable[[], Pipeline]) -> tuple[int, dict[str, object]]:
    """``?deep=true``: the detail report and the preflight's checks (network calls), 503 if any check fails."""
    from .preflight import preflight

    status, report = health(detail=True)
    if status != 200:
        return status, report
    checks = await preflight(get_pipeline())
    report = {**report, "checks": [check.to_dict() for check in checks]}
    if not all(check.ok for check in checks):
        return 503, {**report, "status": "unhealthy"}
    return 200, report
