"""Microsoft Graph's synchronization API over HTTPS, as a provisioning connection sees it.

Checks what Graph checks: a bearer token for the Graph resource holding an application permission that allows the
call, the path (``/{v1.0|beta}/...``), the method, ``Content-Type`` and the body against each action's schema.
Answers with Graph's shapes: 204 with ``request-id`` and ``client-request-id`` headers, the job and secret
resources, the ``stringKeyStringValuePair`` of provisionOnDemand, or Graph's error JSON.

Serves:
- ``POST /{servicePrincipals|applications}/{id}/synchronization/acquireAccessToken``
- ``GET  /servicePrincipals/{id}/synchronization/jobs`` and ``GET .../jobs/{jobId}`` (``status.code``, ``quarantine``)
- ``POST .../jobs/{jobId}/validateCredentials`` (``useSavedCredentials``, ``credentials``)
- ``GET  .../synchronization/secrets`` (sensitive values masked) and ``PUT`` (replaces the stored set)
- ``POST .../jobs/{jobId}/start``, ``.../restart`` (``criteria.resetScope``) and ``.../provisionOnDemand``

The test sets the targets, the credentials each accepts, the jobs and the stored secrets.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from .base import Reply, Seen, StandIn
from .identity import GRAPH_RESOURCE, IdentityStandIn

ALLOWED_ROLES = {"Synchronization.ReadWrite.All", "Application.ReadWrite.OwnedBy", "Application.ReadWrite.All"}
_ACQUIRE = re.compile(
    r"^/(?P<version>v1\.0|beta)/(?P<collection>servicePrincipals|applications)/(?P<id>[^/]+)"
    r"/synchronization/acquireAccessToken$"
)
_SYNC = re.compile(r"^/(?P<version>v1\.0|beta)/servicePrincipals/(?P<id>[^/]+)/synchronization/(?P<rest>.+)$")
# Graph's own facts, kept here apart from the app's (shared/keys.py), so that a mistake there is caught here:
# microsoft.graph.synchronizationSecret, and the keys whose values Graph masks when it returns the stored secrets.
_KEYS = {
    "None",
    "UserName",
    "Password",
    "SecretToken",
    "AppKey",
    "BaseAddress",
    "ClientIdentifier",
    "ClientSecret",
    "SingleSignOnType",
    "Sandbox",
    "Url",
    "Domain",
    "ConsumerKey",
    "ConsumerSecret",
    "TokenKey",
    "TokenExpiration",
    "Oauth2AccessToken",
    "Oauth2AccessTokenCreationTime",
    "Oauth2RefreshToken",
    "SyncAll",
    "InstanceName",
    "Oauth2ClientId",
    "Oauth2ClientSecret",
    "CompanyId",
    "UpdateKeyOnSoftDelete",
    "SynchronizationSchedule",
    "SystemOfRecord",
    "SandboxName",
    "EnforceDomain",
    "SyncNotificationSettings",
    "SkipOutOfScopeDeletions",
    "Oauth2AuthorizationCode",
    "Oauth2RedirectUri",
    "ApplicationTemplateIdentifier",
    "Oauth2TokenExchangeUri",
    "Oauth2AuthorizationUri",
    "AuthenticationType",
    "Server",
    "PerformInboundEntitlementGrants",
    "HardDeletesEnabled",
    "SyncAgentCompatibilityKey",
    "SyncAgentADContainer",
    "ValidateDomain",
    "TestReferences",
    "ConnectionString",
}
_MASKED = {
    "Password",
    "SecretToken",
    "AppKey",
    "ClientSecret",
    "ConsumerKey",
    "ConsumerSecret",
    "TokenKey",
    "Oauth2AccessToken",
    "Oauth2RefreshToken",
    "Oauth2ClientSecret",
    "Oauth2AuthorizationCode",
    "SyncAgentCompatibilityKey",
    "ConnectionString",
}
# Where the provisioning service connects, with the job's secret as its bearer token.
_ADDRESSES = ("BaseAddress", "Url", "Oauth2TokenExchangeUri", "Oauth2AuthorizationUri", "Oauth2RedirectUri")
# Graph's synchronizationJobRestartScope members.
RESTART_SCOPES = {"None", "ConnectorDataStore", "Escrows", "Watermark", "QuarantineState", "Full", "ForceDeletes"}
MASK = "*"


def new_job(job_id: str, code: str = "Active", quarantine: dict[str, Any] | None = None) -> dict[str, Any]:
    """A synchronizationJob as Graph returns it."""
    return {
        "id": job_id,
        "templateId": job_id.split(".", 1)[0],
        "schedule": {"interval": "PT40M", "state": "Active"},
        "status": {
            "code": code,
            "countSuccessiveCompleteFailures": 0,
            "escrowsPruned": False,
            "lastExecution": _execution("Failed" if quarantine else "Succeeded"),
            "lastSuccessfulExecution": _execution("Succeeded"),
            "lastSuccessfulExecutionWithExports": None,
            "progress": [],
            "quarantine": quarantine,
            "steadyStateFirstAchievedTime": "2026-01-01T00:00:00Z",
            "steadyStateLastAchievedTime": "0001-01-01T00:00:00Z" if quarantine else _now(),
            "troubleshootingUrl": "",
        },
    }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _execution(state: str) -> dict[str, Any]:
    """A synchronizationTaskExecution as Graph returns it, ended just now."""
    return {
        "activityIdentifier": str(uuid.uuid4()),
        "countEntitled": 120,
        "countEntitledForProvisioning": 120,
        "countEscrowed": 0 if state == "Succeeded" else 3,
        "countEscrowedRaw": 0 if state == "Succeeded" else 3,
        "countExported": 4,
        "countExports": 4,
        "countImported": 12,
        "countImportedDeltas": 12,
        "countImportedReferenceDeltas": 0,
        "state": state,
        "timeBegan": _now(),
        "timeEnded": _now(),
        "error": None,
    }


def quarantine(reason: str = "EncounteredQuarantineException") -> dict[str, Any]:
    return {
        "currentBegan": "2026-11-20T10:00:00Z",
        "nextAttempt": "2026-11-25T10:00:00Z",
        "reason": reason,
        "seriesBegan": "2026-11-18T10:00:00Z",
        "seriesCount": 4,
        "error": {"code": "SystemForCrossDomainIdentityManagementCredentialValidationUnavailable"},
    }


class GraphStandIn(StandIn):
    name = "graph"

    def __init__(self, identity: IdentityStandIn, tls: object, *, audience: str = GRAPH_RESOURCE) -> None:
        super().__init__(tls=tls)  # type: ignore[arg-type]
        self.identity = identity
        self.audience = audience
        self._state = threading.Lock()
        # target id -> the credentials the provisioning connector accepts (key -> value; only these are checked)
        self.service_principals: dict[str, dict[str, str]] = {}
        self.applications: dict[str, dict[str, str]] = {}
        self.authorized: list[tuple[str, str, list[str]]] = []  # (collection, id, keys) of each 204
        self.jobs: dict[str, dict[str, dict[str, Any]]] = {}  # sp id -> job id -> job
        self.stored_secrets: dict[str, list[dict[str, str]]] = {}  # sp id -> the saved set (real values)
        self.secrets_readable_on = {"v1.0", "beta"}  # where GET .../secrets is served
        # With a client TLS context, act as Entra's provisioning service does: call the job's addresses with its
        # secret as the bearer token (validateCredentials, acquireAccessToken, start, restart).
        self.provisioning_tls: ssl.SSLContext | None = None
        self.provisioning_calls: list[tuple[str, str]] = []  # (url, key of the secret sent) of each call made
        self.actions: list[tuple[str, str, str, Any]] = []  # (action, sp id, job id, detail) of each success
        self.on_demand_report: dict[str, Any] = {
            "provisioningSteps": [
                {"name": "EntryImport", "type": "Import", "status": "Success", "details": {"user": "someone"}},
                {"name": "EntryExportAdd", "type": "Export", "status": "Success", "details": {"mail": "a@b"}},
            ]
        }

    def reset(self) -> None:
        super().reset()
        with self._state:
            self.jobs.clear()
            self.stored_secrets.clear()
            self.actions.clear()
            self.provisioning_calls.clear()
            self.secrets_readable_on = {"v1.0", "beta"}

    def handle(self, seen: Seen) -> Reply:
        request_id = str(uuid.uuid4())
        client_request_id = seen.headers.get("client-request-id") or str(uuid.uuid4())
        ids = {"request-id": request_id, "client-request-id": client_request_id}

        def error(status: int, code: str, message: str) -> Reply:
            seen.note = code
            inner = {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), **ids}
            return Reply(status, {"error": {"code": code, "message": message, "innerError": inner}}, dict(ids))

        claims = self.identity.verify(seen.headers.get("authorization"), self.audience)
        if isinstance(claims, str):
            return error(401, "InvalidAuthenticationToken", f"Access token validation failure: {claims}.")
        roles = set(claims.get("roles") or [])  # type: ignore[call-overload]
        acquire = _ACQUIRE.match(seen.path)
        sync = _SYNC.match(seen.path)
        if not acquire and not sync:
            return error(400, "BadRequest", f"Resource not found for the segment '{seen.path}'.")
        if not roles & ALLOWED_ROLES:
            return error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
        if seen.body and not (seen.headers.get("content-type") or "").startswith("application/json"):
            return error(415, "BadRequest", "Content-Type must be application/json.")
        if acquire:
            return self._acquire(seen, acquire, ids, error)
        assert sync is not None
        with self._state:
            return self._sync(seen, sync.group("version"), sync.group("id").lower(), sync.group("rest"), ids, error)

    # ---- acquireAccessToken --------------------------------------------------------------------------------------

    def _acquire(self, seen: Seen, match: re.Match[str], ids: dict[str, str], error: Any) -> Reply:
        if seen.method != "POST":
            return error(405, "Request_BadRequest", "Only POST is allowed for acquireAccessToken.")
        if not (seen.headers.get("content-type") or "").startswith("application/json"):
            return error(415, "BadRequest", "Content-Type must be application/json.")
        body, problem = _body(seen, {"credentials"}, required={"credentials"})
        problem = problem or _check_credentials(body.get("credentials"), allow_empty=False)
        if problem:
            return error(400, "BadRequest", problem)
        collection, target_id = match.group("collection"), match.group("id")
        targets = self.service_principals if collection == "servicePrincipals" else self.applications
        expected = targets.get(target_id.lower())
        if expected is None:
            return error(404, "Request_ResourceNotFound", _not_found(target_id))
        self._connect(body["credentials"])
        wrong = _wrong(expected, body["credentials"])
        if wrong:
            return error(400, "CredentialValidationUnavailable", _invalid(wrong))
        self.authorized.append((collection, target_id.lower(), [c["key"] for c in body["credentials"]]))
        return Reply(204, None, dict(ids))

    # ---- the rest of the synchronization API ---------------------------------------------------------------------

    def _sync(self, seen: Seen, version: str, sp: str, rest: str, ids: dict[str, str], error: Any) -> Reply:
        if sp not in self.service_principals:
            return error(404, "Request_ResourceNotFound", _not_found(sp))
        method = seen.method
        if rest == "secrets":
            if method == "GET":
                if version not in self.secrets_readable_on:
                    return error(400, "BadRequest", "Resource not found for the segment 'secrets'.")
                stored = self.stored_secrets.get(sp, [])
                masked = [{"key": s["key"], "value": MASK if s["key"] in _MASKED else s["value"]} for s in stored]
                return Reply(200, {"@odata.context": "$metadata#synchronization/secrets", "value": masked}, dict(ids))
            if method == "PUT":
                body, problem = _body(seen, {"value"}, required={"value"})
                problem = problem or _check_credentials(body.get("value"), allow_empty=False, name="value")
                if problem:
                    return error(400, "BadRequest", problem)
                self.stored_secrets[sp] = [{"key": c["key"], "value": c["value"]} for c in body["value"]]
                self.actions.append(("saveSecrets", sp, "", [c["key"] for c in body["value"]]))
                return Reply(204, None, dict(ids))
            return error(405, "Request_BadRequest", f"{method} is not allowed on secrets.")
        jobs = self.jobs.get(sp, {})
        if rest == "jobs":
            if method != "GET":
                return error(405, "Request_BadRequest", f"{method} is not allowed here.")
            return Reply(200, {"@odata.context": "$metadata#jobs", "value": list(jobs.values())}, dict(ids))
        parts = rest.split("/")
        if parts[0] != "jobs" or len(parts) not in (2, 3):
            return error(400, "BadRequest", f"Resource not found for the segment '{rest}'.")
        job = jobs.get(parts[1])
        if job is None:
            return error(404, "Request_ResourceNotFound", f"Synchronization job '{parts[1]}' was not found.")
        if len(parts) == 2:
            if method != "GET":
                return error(405, "Request_BadRequest", f"{method} is not allowed here.")
            return Reply(200, job, dict(ids))
        if method != "POST":
            return error(405, "Request_BadRequest", f"{method} is not allowed for {parts[2]}.")
        action = {
            "validateCredentials": self._validate,
            "start": self._start,
            "restart": self._restart,
            "provisionOnDemand": self._on_demand,
        }.get(parts[2])
        if action is None:
            return error(400, "BadRequest", f"Resource not found for the segment '{parts[2]}'.")
        return action(seen, sp, job, ids, error)

    def _validate(self, seen: Seen, sp: str, job: dict[str, Any], ids: dict[str, str], error: Any) -> Reply:
        body, problem = _body(
            seen, {"useSavedCredentials", "credentials", "applicationIdentifier", "templateId"}, required=set()
        )
        if problem:
            return error(400, "BadRequest", problem)
        if body.get("useSavedCredentials"):
            given = self.stored_secrets.get(sp, [])
        else:
            problem = _check_credentials(body.get("credentials"), allow_empty=False)
            if problem:
                return error(400, "BadRequest", problem)
            given = body["credentials"]
        self._connect(given)
        wrong = _wrong(self.service_principals[sp], given)
        if wrong:
            return error(400, "CredentialValidationUnavailable", _invalid(wrong))
        self.actions.append(("validateCredentials", sp, job["id"], [c["key"] for c in given]))
        return Reply(204, None, dict(ids))

    def _start(self, seen: Seen, sp: str, job: dict[str, Any], ids: dict[str, str], error: Any) -> Reply:
        if seen.body and seen.body.strip() not in (b"", b"{}", b"null"):
            return error(400, "BadRequest", "start takes no request body.")
        job["status"]["code"] = "Active"
        job["status"]["quarantine"] = None  # starting a quarantined job clears its quarantine
        self.actions.append(("start", sp, job["id"], None))
        self._connect(self.stored_secrets.get(sp, []))
        return Reply(204, None, dict(ids))

    def _restart(self, seen: Seen, sp: str, job: dict[str, Any], ids: dict[str, str], error: Any) -> Reply:
        body, problem = _body(seen, {"criteria"}, required={"criteria"})
        criteria = body.get("criteria")
        if problem or not isinstance(criteria, dict) or set(criteria) - {"resetScope"}:
            return error(400, "BadRequest", problem or "criteria is a synchronizationJobRestartCriteria.")
        scope = criteria.get("resetScope")
        parts = [p.strip() for p in scope.split(",")] if isinstance(scope, str) else []
        if not parts or any(p not in RESTART_SCOPES for p in parts):
            return error(400, "BadRequest", f"Requested value '{scope}' is not a synchronizationJobRestartScope.")
        if "QuarantineState" in parts or "Full" in parts:
            job["status"]["quarantine"] = None
        job["status"]["code"] = "Active"
        self.actions.append(("restart", sp, job["id"], ", ".join(parts)))
        self._connect(self.stored_secrets.get(sp, []))
        return Reply(204, None, dict(ids))

    def _on_demand(self, seen: Seen, sp: str, job: dict[str, Any], ids: dict[str, str], error: Any) -> Reply:
        body, problem = _body(seen, {"parameters"}, required={"parameters"})
        parameters = body.get("parameters")
        if problem or not isinstance(parameters, list) or len(parameters) != 1:
            return error(400, "BadRequest", problem or "parameters is one synchronizationJobApplicationParameters.")
        parameter = parameters[0]
        subjects = parameter.get("subjects") if isinstance(parameter, dict) else None
        if not isinstance(parameter, dict) or set(parameter) != {"ruleId", "subjects"}:
            return error(400, "BadRequest", "Each parameter has a ruleId and subjects.")
        if not isinstance(subjects, list) or not 1 <= len(subjects) <= 5:
            return error(400, "BadRequest", "subjects holds 1 to 5 synchronizationJobSubject.")
        for subject in subjects:
            if (
                not isinstance(subject, dict)
                or set(subject) != {"objectId", "objectTypeName"}
                or subject["objectTypeName"] not in ("User", "Group")
            ):
                return error(400, "BadRequest", "A subject is {objectId, objectTypeName: User or Group}.")
        self.actions.append(("provisionOnDemand", sp, job["id"], [s["objectId"] for s in subjects]))
        answer = {
            "@odata.type": "#microsoft.graph.stringKeyStringValuePair",
            "key": json.dumps(self.on_demand_report),
            "value": None,
        }
        return Reply(200, answer, dict(ids))

    def _connect(self, credentials: list[dict[str, str]]) -> None:
        """What Entra's provisioning service does with a job's credentials: GET each https address's /Users with the
        secret (SecretToken, else the first masked key) as the bearer token. Failures are ignored, as a sync cycle's
        would be reported later."""
        if self.provisioning_tls is None:
            return
        import urllib.request

        values = {c.get("key"): c.get("value") for c in credentials if isinstance(c, dict)}
        secret_key = "SecretToken" if values.get("SecretToken") else next((k for k in values if k in _MASKED), None)
        token = values.get(secret_key) if secret_key else None
        for key in _ADDRESSES:
            address = values.get(key)
            if not isinstance(address, str) or not address.lower().startswith("https://"):
                continue
            url = address.rstrip("/") + "/Users?startIndex=1&count=1"
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            self.provisioning_calls.append((url, secret_key or ""))
            try:
                request = urllib.request.Request(url, headers=headers)  # noqa: S310 - https only, a test server
                with urllib.request.urlopen(request, timeout=2, context=self.provisioning_tls):  # noqa: S310
                    pass
            except (OSError, ValueError):
                continue


def _body(seen: Seen, allowed: set[str], *, required: set[str]) -> tuple[dict[str, Any], str | None]:
    try:
        body: Any = seen.json()
    except ValueError:
        return {}, "Unable to read JSON request payload."
    if body is None and not required:
        return {}, None
    if not isinstance(body, dict):
        return {}, "The request body must be a JSON object."
    if set(body) - allowed:
        return {}, f"Property '{sorted(set(body) - allowed)[0]}' does not exist on this action."
    if required - set(body):
        return {}, f"Property '{sorted(required - set(body))[0]}' is required."
    return body, None


def _check_credentials(items: Any, *, allow_empty: bool, name: str = "credentials") -> str | None:
    if not isinstance(items, list) or (not items and not allow_empty):
        return f"'{name}' must be a non-empty collection (empty payload)."
    for item in items:
        if not isinstance(item, dict) or set(item) != {"key", "value"}:
            return "Each item is a synchronizationSecretKeyStringValuePair: {key, value}."
        if item["key"] not in _KEYS:
            return f"Requested value '{item['key']}' was not found."
        if not isinstance(item["value"], str):
            return "A credential value must be a string."
    return None


def _wrong(expected: dict[str, str], given: list[dict[str, str]]) -> list[str]:
    values = {c["key"]: c["value"] for c in given}
    return sorted(k for k, v in expected.items() if values.get(k) != v)


def _invalid(wrong: list[str]) -> str:
    return f"Provisioning could not validate the credentials ({', '.join(wrong)}); check them and try again."


def _not_found(target_id: str) -> str:
    return f"Resource '{target_id}' does not exist or one of its queried reference-property objects are not present."
