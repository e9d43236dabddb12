"""``GET /api/health``: configuration sanity, no secrets, no network calls."""

from __future__ import annotations

from collections.abc import Mapping

from .settings import Settings, SettingsError

__all__ = ["health"]


def health(environ: Mapping[str, str] | None = None) -> tuple[int, dict[str, object]]:
    """200 and a summary of the effective settings, or 503 naming the setting that cannot be parsed."""
    try:
        settings = Settings.from_env(environ)
    except SettingsError as exc:
        return 503, {"status": "unhealthy", "problems": [{"setting": exc.setting, "problem": exc.problem}]}
    warnings = []
    if not settings.key_vault_allowed_hosts:
        warnings.append("KEY_VAULT_ALLOWED_HOSTS and KEY_VAULT_URI are unset: every Key Vault reference is refused")
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
            "requiredAppRole": settings.required_app_role,
            "graphTimeoutSeconds": settings.graph_timeout_seconds,
            "graphMaxAttempts": settings.graph_max_attempts,
            "requestQueueName": settings.request_queue_name,
            "applicationInsights": settings.applicationinsights_connection_string is not None,
        },
        "warnings": warnings,
    }
