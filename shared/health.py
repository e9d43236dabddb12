"""``GET /api/health``: configuration sanity, no secrets, no network calls."""

from __future__ import annotations

import os
from collections.abc import Mapping

from .settings import Settings, SettingsError

__all__ = ["HOST_EXPRESSION_SETTINGS", "health"]

# Settings the Functions host reads itself, in a trigger's ``%NAME%`` binding expression. The host has no default
# for them: when one is missing, the function that names it is not run at all, whatever the app's code defaults to.
HOST_EXPRESSION_SETTINGS: dict[str, str] = {
    "REQUEST_QUEUE_NAME": "the queue trigger (acquire_from_queue)",
    "SWEEP_SCHEDULE": "the timer trigger (sweep_connections)",
}


def health(environ: Mapping[str, str] | None = None) -> tuple[int, dict[str, object]]:
    """200 and a summary of the effective settings, or 503 naming the setting that cannot be parsed."""
    env = os.environ if environ is None else environ
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
            "requiredAppRole": settings.required_app_role,
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
