"""One error hierarchy, mapped to the outcome in one place.

Every failure the pipeline knows about is a :class:`ProvisioningError`. Its class decides the outcome
(``rejected`` or ``failed``), whether retrying may help, and the HTTP status (docs/reference.md, "The outcome"
and "HTTP routes").
Messages name the problem and never carry a credential value or a token.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ConfigurationError",
    "ConnectionNotFound",
    "CredentialsRejected",
    "GraphRejected",
    "IdentityNotAllowed",
    "InternalError",
    "InvalidRequest",
    "JobAmbiguous",
    "JobNotFound",
    "PolicyRefused",
    "PreconditionFailed",
    "PreconditionRequired",
    "ProvisioningError",
    "ReferenceUnresolvable",
    "SecretsIncomplete",
    "ServiceUnavailable",
    "TargetNotFound",
    "retry_after_seconds",
]


class ProvisioningError(Exception):
    outcome: ClassVar[str] = "rejected"
    http_status: ClassVar[int] = 400
    default_code: ClassVar[str] = "invalidRequest"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.retry_after = retry_after
        self.detail = detail  # a summary for the step's result (never a secret, never user data)

    @property
    def retryable(self) -> bool:
        return self.outcome == "failed"


class InvalidRequest(ProvisioningError):
    """The request is malformed or breaks the request schema (400)."""


class PolicyRefused(ProvisioningError):
    """A policy of this app refuses the request: target, vault host, inline secret, caller role (403)."""

    http_status = 403
    default_code = "policyRefused"


class TargetNotFound(ProvisioningError):
    """Graph says the service principal or application does not exist (404)."""

    http_status = 404
    default_code = "Request_ResourceNotFound"


class ReferenceUnresolvable(ProvisioningError):
    """A Key Vault reference names a missing or disabled secret (422)."""

    http_status = 422
    default_code = "secretNotFound"


class CredentialsRejected(ProvisioningError):
    """Graph refused the credentials themselves (Graph 400, here 422)."""

    http_status = 422
    default_code = "credentialsRejected"


class IdentityNotAllowed(ProvisioningError):
    """The app's own identity was refused by Graph or Key Vault, or no token could be had (502).

    Counted as ``failed``: the fix is on the app's side (a role assignment, a Graph permission, the
    identity endpoint), and role assignments take minutes to propagate, so a queued request is retried
    and lands in the poison queue if the fix does not come in time.
    """

    outcome = "failed"
    http_status = 502
    default_code = "identityNotAllowed"


class ServiceUnavailable(ProvisioningError):
    """Graph or Key Vault stayed throttled or unavailable after retries (503, with Retry-After)."""

    outcome = "failed"
    http_status = 503
    default_code = "serviceUnavailable"


class GraphRejected(ProvisioningError):
    """Graph refused a lifecycle call for a reason retrying will not fix (its 400 or 409 on a job call): 422."""

    http_status = 422
    default_code = "graphRejected"


class SecretsIncomplete(ProvisioningError):
    """saveSecrets would drop stored sensitive keys the request does not name (422)."""

    http_status = 422
    default_code = "secretsIncomplete"


class JobNotFound(ProvisioningError):
    """The service principal has no synchronization job (or not the one named) (422)."""

    http_status = 422
    default_code = "jobNotFound"


class JobAmbiguous(ProvisioningError):
    """The service principal has several jobs and the request did not name one (422)."""

    http_status = 422
    default_code = "jobAmbiguous"


class PreconditionFailed(ProvisioningError):
    """A connection changed since the ETag the caller holds, or exists where it must not (412)."""

    http_status = 412
    default_code = "preconditionFailed"


class PreconditionRequired(ProvisioningError):
    """Replacing or deleting a connection needs the ETag the caller read (If-Match), so no change is lost (428)."""

    http_status = 428
    default_code = "preconditionRequired"


class ConnectionNotFound(ProvisioningError):
    """No connection by that name (404)."""

    http_status = 404
    default_code = "connectionNotFound"


class ConfigurationError(ProvisioningError):
    """An app setting cannot be parsed: failed, so queued work is kept (503, retry in a minute)."""

    outcome = "failed"
    http_status = 503
    default_code = "configurationError"

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = 60) -> None:
        super().__init__(message, code=code, retry_after=retry_after)


class InternalError(ProvisioningError):
    """A bug: failed and retryable (500); the details are in the app's logs, never in the reply."""

    outcome = "failed"
    http_status = 500
    default_code = "internalError"


def retry_after_seconds(header: str | None) -> float | None:
    """A ``Retry-After`` header (delta-seconds or an HTTP date) in seconds from now; ``None`` when absent or bad."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        from datetime import UTC, datetime
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
