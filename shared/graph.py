"""Microsoft Graph: one generic :meth:`GraphClient.send` and one thin function per synchronization endpoint.

``send`` owns the token (from an azure-identity credential, fetched once for concurrent requests and reused until
it is about to expire), the retries (429, 5xx, timeouts and broken connections, with stamina, honouring
``Retry-After``, up to ``GRAPH_MAX_ATTEMPTS``) and the :class:`~shared.outcome.GraphCall` record. A call that is not
safe to repeat (``start``, ``provisionOnDemand``) is retried only when Graph cannot have acted on it: on 429, and
when the connection could not be made. Each endpoint function maps Graph's answers to the app's errors with its own
map: a 400 from ``start`` is not "credentials rejected".
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import (
    CredentialsRejected,
    GraphRejected,
    IdentityNotAllowed,
    JobAmbiguous,
    JobNotFound,
    ProvisioningError,
    ServiceUnavailable,
    TargetNotFound,
    retry_after_seconds,
)
from .outcome import GraphCall, JobState
from .request import Target
from .settings import GUID, Settings

if TYPE_CHECKING:
    import httpx
    from azure.core.credentials import AccessToken
    from azure.core.credentials_async import AsyncTokenCredential

    from .transport import PooledClient

__all__ = [
    "GraphCall",
    "GraphClient",
    "SecretsUnreadable",
    "acquire_access_token",
    "get_job",
    "get_secrets",
    "job_ids",
    "list_jobs",
    "only_job",
    "provision_on_demand",
    "put_secrets",
    "read_job",
    "restart_job",
    "start_job",
    "validate_credentials",
]

log = logging.getLogger(__name__)

TOKEN_REFRESH_MARGIN = 300  # seconds before expiry when a token is fetched again


class _Transient(Exception):
    """One attempt that may succeed if tried again."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class GraphClient:
    def __init__(self, http: PooledClient, credential: AsyncTokenCredential, settings: Settings) -> None:
        self._http = http
        self._credential = credential
        self._settings = settings
        self._token: AccessToken | None = None
        self._token_lock = asyncio.Lock()

    @property
    def settings(self) -> Settings:
        return self._settings

    async def close(self) -> None:
        await self._http.aclose()

    async def token(self) -> str:
        """The Graph token; concurrent requests on a cold (or expiring) token wait for one fetch."""
        if self._fresh(self._token):
            return self._token.token  # type: ignore[union-attr]
        async with self._token_lock:
            if not self._fresh(self._token):
                self._token = await self._fetch_token()
            return self._token.token  # type: ignore[union-attr]

    @staticmethod
    def _fresh(token: AccessToken | None) -> bool:
        return token is not None and token.expires_on - TOKEN_REFRESH_MARGIN > time.time()

    async def _fetch_token(self) -> AccessToken:
        from azure.core.exceptions import ClientAuthenticationError

        try:
            return await self._credential.get_token(self._settings.graph_scope)
        except ClientAuthenticationError as exc:  # TokenUnavailable, from the guarded credential: it names whose
            identity = getattr(exc, "identity", None) or "the app's identity"
            raise IdentityNotAllowed(
                f"{identity} could not get a Microsoft Graph token", code="tokenUnavailable"
            ) from None

    async def send(
        self,
        method: str,
        path: str,
        *,
        call: GraphCall,
        body: Any = None,
        repeatable: bool = True,
        version: str | None = None,
    ) -> httpx.Response:
        """One Graph request with retries; returns the final response (any status) or raises ServiceUnavailable.

        ``path`` starts with ``/`` after the API version. ``repeatable=False`` marks a request Graph must not act on
        twice: it is retried only on 429 and when no connection could be made.
        """
        url = f"{self._settings.graph_endpoint}/{version or self._settings.graph_api_version}{path}"
        call.client_request_id = call.client_request_id or str(uuid.uuid4())
        token = await self.token()
        max_wait = self._settings.graph_timeout_seconds

        def backoff(exc: Exception) -> bool | float:
            if not isinstance(exc, _Transient):
                return False
            if exc.retry_after is None:
                return True
            # Honour Retry-After; one longer than an attempt may last is left to the caller.
            return exc.retry_after if exc.retry_after <= max_wait else False

        import stamina  # imported on first use: it is not needed to index the app

        response: httpx.Response | None = None
        try:
            async for attempt in stamina.retry_context(
                on=backoff,
                attempts=self._settings.graph_max_attempts,
                timeout=None,
                wait_initial=0.2,
                wait_max=max_wait,
                wait_jitter=0.2,
            ):
                with attempt:
                    call.attempts += 1
                    response = await self._request(method, url, body, token, call.client_request_id, repeatable)
                    _record(call, response)
                    status = response.status_code
                    if status == 429 or (status >= 500 and repeatable):
                        raise _Transient(
                            f"Graph answered {status}",
                            status=status,
                            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                        )
        except _Transient as exc:
            raise ServiceUnavailable(
                f"{exc.reason} after {call.attempts} attempt(s)",
                code=call.error_code or ("graphUnavailable" if exc.status else "graphUnreachable"),
                retry_after=exc.retry_after,
            ) from None
        if response is None:  # the loop either answers or raises; this keeps the types honest
            raise ServiceUnavailable("Graph was not called", code="graphUnreachable")
        return response

    async def _request(
        self, method: str, url: str, body: Any, token: str, client_request_id: str, repeatable: bool
    ) -> httpx.Response:
        import httpx

        headers = {
            "Authorization": f"Bearer {token}",
            "client-request-id": client_request_id,
            "return-client-request-id": "true",
        }
        deadline = self._settings.graph_timeout_seconds
        try:
            # One whole deadline for the attempt (connect, send, every byte of the answer): httpx's own timeout
            # restarts on every read, so an answer trickled a byte at a time would never end it.
            async with asyncio.timeout(deadline):
                return await self._http.request(method, url, json=body, headers=headers, timeout=deadline)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # never reached Graph: safe to try again
            raise _Transient(f"Graph could not be reached ({type(exc).__name__})") from None
        except (httpx.TimeoutException, TimeoutError) as exc:
            if not repeatable:
                raise ServiceUnavailable(
                    f"Graph did not answer in time ({type(exc).__name__}); the call may have been applied, so it "
                    "was not repeated",
                    code="graphTimeout",
                ) from None
            raise _Transient(f"Graph did not answer in time ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            if not repeatable:
                raise ServiceUnavailable(
                    f"the connection to Graph broke ({type(exc).__name__}); the call may have been applied, so it "
                    "was not repeated",
                    code="graphUnreachable",
                ) from None
            raise _Transient(f"Graph could not be reached ({type(exc).__name__})") from None


_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _guid_or_none(value: str | None) -> str | None:
    """Graph's request ids are GUIDs; anything else in those headers is not repeated to anyone."""
    return value.lower() if value is not None and GUID.fullmatch(value) else None


def _record(call: GraphCall, response: httpx.Response) -> None:
    call.status = response.status_code
    call.request_id = _guid_or_none(response.headers.get("request-id"))
    call.client_request_id = _guid_or_none(response.headers.get("client-request-id")) or call.client_request_id
    call.error_code = None if response.is_success else _graph_error(response)[0]


def _graph_error(response: httpx.Response) -> tuple[str | None, str | None]:
    """Graph's error code, only when it is an identifier (else ``graphError``), and its whole message.

    The message is redacted of the request's secrets before anything shortens it (:func:`~shared.outcome.safe_message`).
    """
    try:
        error = response.json().get("error", {})
        code = error.get("code")
        message = error.get("message")
    except Exception:  # noqa: BLE001 - a body that is not Graph's error JSON has no code
        return None, None
    if code in (None, ""):
        safe_code = None
    else:
        safe_code = str(code) if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else "graphError"
    return safe_code, (str(message) if message else None)


def _detail(response: httpx.Response) -> tuple[str | None, str]:
    code, message = _graph_error(response)
    return code, f"Graph answered {response.status_code}" + (f": {message}" if message else "")


def _common(response: httpx.Response, what: str) -> ProvisioningError | None:
    """The answers every endpoint reads the same way: the app's identity refused."""
    status = response.status_code
    code, detail = _detail(response)
    if status in (401, 403):
        return IdentityNotAllowed(
            f"Graph refused the app's identity for {what} ({detail})", code=code or "graphForbidden"
        )
    if status >= 500:  # a non-repeatable call answered 5xx once
        return ServiceUnavailable(f"{what}: {detail}", code=code or "graphUnavailable")
    return None


Refusal = Callable[[str | None, str], ProvisioningError]  # (Graph's code, the detail) -> the app's error


def _fail(response: httpx.Response, what: str, *, not_found: Refusal, otherwise: Refusal) -> NoReturn:
    """The one error tail of every endpoint: the app's identity refused, then the endpoint's own map (404, else)."""
    error = _common(response, what)
    if error:
        raise error
    code, detail = _detail(response)
    raise (not_found if response.status_code == 404 else otherwise)(code, detail)


def _rejected(response: httpx.Response, prefix: str = "") -> Refusal:
    """Graph refused the credentials themselves (its 400): 422, with Graph's code when it has one."""
    status = response.status_code
    return lambda code, detail: CredentialsRejected(prefix + detail, code=code or f"graph{status}")


def _target_not_found(target: Target) -> Refusal:
    def refusal(code: str | None, detail: str) -> ProvisioningError:
        return TargetNotFound(f"{target.type} {target.id} was not found in the tenant ({detail})", code=code)

    return refusal


def _no_job(target: Target, job_id: str) -> Refusal:
    return lambda _code, detail: _job_not_found(target, job_id, detail)


def _sp_path(target: Target) -> str:
    return f"/{target.graph_collection}/{target.id}/synchronization"


def _job_path(target: Target, job_id: str) -> str:
    from urllib.parse import quote

    return f"{_sp_path(target)}/jobs/{quote(job_id, safe='')}"


def _credentials_body(credentials: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in credentials]


def _job_not_found(target: Target, job_id: str, detail: str) -> ProvisioningError:
    # Always jobNotFound, so that callers can tell it from a missing target; Graph's own code stays in graph.errorCode.
    return JobNotFound(f"{target.type} {target.id} has no synchronization job {job_id!r} ({detail})")


# ---- one function per endpoint ------------------------------------------------------------------------------------


async def acquire_access_token(
    client: GraphClient, target: Target, credentials: list[tuple[str, str]], *, call: GraphCall
) -> None:
    """``POST /{servicePrincipals|applications}/{id}/synchronization/acquireAccessToken`` (204)."""
    response = await client.send(
        "POST",
        f"{_sp_path(target)}/acquireAccessToken",
        body={"credentials": _credentials_body(credentials)},
        call=call,
    )
    if response.is_success:
        return
    _fail(response, "acquireAccessToken", not_found=_target_not_found(target), otherwise=_rejected(response))


async def validate_credentials(
    client: GraphClient, target: Target, job_id: str, credentials: list[tuple[str, str]], *, call: GraphCall
) -> None:
    """``POST .../jobs/{jobId}/validateCredentials`` with the given credentials, never the saved ones (204)."""
    response = await client.send(
        "POST",
        f"{_job_path(target, job_id)}/validateCredentials",
        body={"useSavedCredentials": False, "credentials": _credentials_body(credentials)},
        call=call,
    )
    if response.is_success:
        return
    _fail(response, "validateCredentials", not_found=_no_job(target, job_id), otherwise=_rejected(response))


async def list_jobs(client: GraphClient, target: Target, *, call: GraphCall) -> list[dict[str, Any]]:
    """``GET /servicePrincipals/{id}/synchronization/jobs``."""
    response = await client.send("GET", f"{_sp_path(target)}/jobs", call=call)
    if response.is_success:
        value = _json(response).get("value")
        return [job for job in value if isinstance(job, dict)] if isinstance(value, list) else []
    _fail(
        response,
        "listing synchronization jobs",
        not_found=_target_not_found(target),
        otherwise=lambda code, detail: GraphRejected(f"listing synchronization jobs: {detail}", code=code),
    )


async def job_ids(client: GraphClient, target: Target, *, call: GraphCall) -> list[str]:
    """The ids of the service principal's synchronization jobs."""
    return [str(job["id"]) for job in await list_jobs(client, target, call=call) if isinstance(job.get("id"), str)]


async def only_job(client: GraphClient, target: Target, *, call: GraphCall) -> str:
    """The service principal's only job: ``jobNotFound`` for none, ``jobAmbiguous`` (naming them) for several."""
    ids = await job_ids(client, target, call=call)
    if not ids:
        raise JobNotFound(f"{target.type} {target.id} has no synchronization job: provisioning is not configured")
    if len(ids) > 1:
        raise JobAmbiguous(
            f"{target.type} {target.id} has {len(ids)} synchronization jobs ({', '.join(ids)}); name one with 'jobId'"
        )
    return ids[0]


async def get_job(client: GraphClient, target: Target, job_id: str, *, call: GraphCall) -> JobState:
    """``GET .../jobs/{jobId}``: the job's status and quarantine."""
    return job_state(job_id, await read_job(client, target, job_id, call=call))


async def read_job(client: GraphClient, target: Target, job_id: str, *, call: GraphCall) -> dict[str, Any]:
    """``GET .../jobs/{jobId}``: the synchronizationJob as Graph answers it (its ``status`` says how healthy it is)."""
    response = await client.send("GET", _job_path(target, job_id), call=call)
    if response.is_success:
        return _json(response)
    _fail(
        response,
        "reading the synchronization job",
        not_found=_no_job(target, job_id),
        otherwise=lambda code, detail: GraphRejected(f"reading synchronization job {job_id!r}: {detail}", code=code),
    )


def job_state(job_id: str, job: dict[str, Any]) -> JobState:
    raw_status = job.get("status")
    status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    raw_quarantine = status.get("quarantine")
    quarantine: dict[str, Any] | None = raw_quarantine if isinstance(raw_quarantine, dict) else None
    return JobState(
        id=str(job.get("id") or job_id),
        status=_text(status.get("code")),
        quarantine_reason=_text(quarantine.get("reason")) if quarantine else None,
        quarantine_since=_text(quarantine.get("seriesBegan") or quarantine.get("currentBegan")) if quarantine else None,
    )


class SecretsUnreadable(Exception):
    """Graph would not return the stored secrets (the read is documented on beta only)."""


async def get_secrets(client: GraphClient, target: Target, *, call: GraphCall) -> list[tuple[str, str]]:
    """``GET .../synchronization/secrets``: the stored set, sensitive values masked by Graph.

    Documented on beta; where the configured version does not serve it, beta is asked once. Raises
    :class:`SecretsUnreadable` when neither does.
    """
    versions = [client.settings.graph_api_version]
    if versions[0] != "beta":
        versions.append("beta")
    for version in versions:
        response = await client.send("GET", f"{_sp_path(target)}/secrets", call=call, version=version)
        if response.is_success:
            value = _json(response).get("value")
            if not isinstance(value, list):
                raise SecretsUnreadable("Graph's answer has no 'value' list")
            return [
                (str(item["key"]), str(item.get("value") or ""))
                for item in value
                if isinstance(item, dict) and isinstance(item.get("key"), str)
            ]
        error = _common(response, "reading the stored secrets")
        if error:
            raise error
        if response.status_code == 404 and _detail(response)[0] == "Request_ResourceNotFound":
            raise _target_not_found(target)(*_detail(response))
    raise SecretsUnreadable(f"Graph answered {response.status_code} to reading the stored secrets")


async def put_secrets(client: GraphClient, target: Target, secrets: list[tuple[str, str]], *, call: GraphCall) -> None:
    """``PUT .../synchronization/secrets`` with the whole set (204). Replacing a set with itself is harmless."""
    response = await client.send(
        "PUT", f"{_sp_path(target)}/secrets", body={"value": _credentials_body(secrets)}, call=call
    )
    if response.is_success:
        return
    _fail(
        response,
        "saving secrets",
        not_found=_target_not_found(target),
        otherwise=_rejected(response, "saving secrets: "),
    )


async def start_job(client: GraphClient, target: Target, job_id: str, *, call: GraphCall) -> None:
    """``POST .../jobs/{jobId}/start`` (204); not repeated on 5xx or a timeout."""
    await _job_action(client, target, job_id, "start", None, call=call, repeatable=False)


async def restart_job(client: GraphClient, target: Target, job_id: str, reset_scope: str, *, call: GraphCall) -> None:
    """``POST .../jobs/{jobId}/restart`` with ``{"criteria": {"resetScope": ...}}`` (204)."""
    await _job_action(client, target, job_id, "restart", {"criteria": {"resetScope": reset_scope}}, call=call)


async def provision_on_demand(
    client: GraphClient, target: Target, job_id: str, parameters: list[dict[str, Any]], *, call: GraphCall
) -> dict[str, Any]:
    """``POST .../jobs/{jobId}/provisionOnDemand`` (200, a ``stringKeyStringValuePair``); not repeated on 5xx."""
    response = await _job_action(
        client, target, job_id, "provisionOnDemand", {"parameters": parameters}, call=call, repeatable=False
    )
    return on_demand_summary(_json(response))


async def _job_action(
    client: GraphClient,
    target: Target,
    job_id: str,
    action: str,
    body: Any,
    *,
    call: GraphCall,
    repeatable: bool = True,
) -> httpx.Response:
    response = await client.send(
        "POST", f"{_job_path(target, job_id)}/{action}", body=body, call=call, repeatable=repeatable
    )
    if response.is_success:
        return response
    status = response.status_code
    _fail(
        response,
        action,
        not_found=_no_job(target, job_id),
        otherwise=lambda code, detail: GraphRejected(f"{action}: {detail}", code=code or f"graph{status}"),
    )


def on_demand_summary(answer: dict[str, Any]) -> dict[str, Any]:
    """The result of provisionOnDemand without user data: each provisioning step's name and status.

    Graph answers a ``stringKeyStringValuePair`` whose text holds the provisioning report as JSON; its details
    (attribute values) are user data and are left out.
    """
    report: Any = None
    for field in ("key", "value"):
        text = answer.get(field)
        if isinstance(text, str) and text.strip().startswith("{"):
            try:
                report = json.loads(text)
            except ValueError:
                continue
            break
    steps = report.get("provisioningSteps") if isinstance(report, dict) else None
    summary = [
        {"name": _text(step.get("name")), "status": _text(step.get("status"))}
        for step in (steps if isinstance(steps, list) else [])
        if isinstance(step, dict)
    ]
    failed = [s for s in summary if (s["status"] or "").lower() not in ("success", "skipped", "")]
    return {"provisioningSteps": summary, "succeeded": bool(summary) and not failed}


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:200]
