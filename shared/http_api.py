"""HTTP semantics of the routes (docs/reference.md, "HTTP routes"), free of ``azure.functions``.

The triggers hand over method-agnostic pieces (path id, headers, body) and get back an :class:`HttpReply`:
status, headers and body. Errors are ``application/problem+json`` (RFC 9457) carrying the outcome fields.
Every route's errors become its reply in one place, :func:`_replying`: a request run (acquire, a connection's run)
answers with an emitted outcome, the other routes with the error record.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from . import policy
from .errors import InvalidRequest
from .outcome import ErrorRecord, Outcome
from .pipeline import Invocation, Pipeline, as_error, refused
from .request import Target, TargetType
from .settings import GUID
from .store import ConnectionRecord, ConnectionStore

__all__ = ["HttpReply", "acquire", "connection", "connections", "json_reply", "problem_reply", "run_connection"]


@dataclass
class HttpReply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    mimetype: str = "application/json"


def json_reply(
    status: int, payload: Any, *, mimetype: str = "application/json", headers: dict[str, str] | None = None
) -> HttpReply:
    return HttpReply(status, json.dumps(payload, indent=2).encode("utf-8"), headers or {}, mimetype)


async def _replying(handle: Callable[[], Awaitable[HttpReply]], invocation: Invocation | None = None) -> HttpReply:
    """The route's reply, or its error's: an emitted outcome's reply for a request run (``invocation``), else a
    problem with the error record. Our errors, settings that cannot be parsed and surprises alike (:func:`as_error`)."""
    try:
        return await handle()
    except Exception as exc:  # noqa: BLE001 - every error ends in a reply; as_error logs a surprise
        if invocation is not None:
            return outcome_reply(refused(exc, invocation))
        return problem_reply(ErrorRecord.from_error(as_error(exc)))


async def acquire(
    get_pipeline: Callable[[], Pipeline],
    body: bytes,
    headers: Mapping[str, str],
    *,
    target_type: TargetType | None = None,
    target_id: str | None = None,
) -> HttpReply:
    """One acquireAccessToken call over HTTP: the caller's role, then the pipeline, then the reply."""
    target = None
    if target_type is not None and target_id and GUID.fullmatch(target_id):
        target = Target(type=target_type, id=target_id.lower())
    invocation = Invocation(trigger="http", target=target)

    async def handle() -> HttpReply:
        pipeline = get_pipeline()
        if target_type is not None and target is None:
            raise InvalidRequest("the {id} in the path must be a GUID (an object id)")
        caller(pipeline, headers, policy.OPERATOR)
        return outcome_reply(await pipeline.run(body, invocation))

    return await _replying(handle, invocation)


def outcome_reply(outcome: Outcome) -> HttpReply:
    payload = outcome.to_dict()
    if outcome.ok:
        return json_reply(200, payload)
    return _problem(outcome.http_status, outcome.error_message, payload, outcome.retry_after)


def _problem(status: int, detail: str | None, fields: dict[str, Any], retry_after: float | None) -> HttpReply:
    """RFC 9457 problem details; a 503 says when to come back (Logic Apps' and other retry policies honour it)."""
    problem = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail, **fields}
    headers = {"Retry-After": str(max(1, math.ceil(retry_after or 1)))} if status == 503 else {}
    return json_reply(status, problem, mimetype="application/problem+json", headers=headers)


def caller(pipeline: Pipeline, headers: Mapping[str, str], role: str) -> policy.Caller:
    """The caller of a route, refused unless it may take ``role``'s actions (``CALLER_AUTH``)."""
    import os

    who = policy.authenticate(headers, pipeline.settings, os.environ)
    policy.require(who, role)
    return who


# ---- connections ---------------------------------------------------------------------------------------------------


def problem_reply(record: ErrorRecord) -> HttpReply:
    """A problem reply for a route that is not a request run (the connections' create, read, list, delete)."""
    fields = {"retryable": record.retryable, "error": record.to_dict()}
    return _problem(record.http_status, record.message, fields, record.retry_after)


def _record_reply(status: int, record: ConnectionRecord) -> HttpReply:
    return json_reply(status, record.to_dict(), headers={"ETag": record.etag})


async def connection(
    get_pipeline: Callable[[], Pipeline],
    get_store: Callable[[], ConnectionStore],
    method: str,
    name: str | None,
    body: bytes,
    headers: Mapping[str, str],
) -> HttpReply:
    """``PUT``, ``GET`` or ``DELETE /api/connections/{name}``."""
    from .connections import delete_connection, get_connection, put_connection

    async def handle() -> HttpReply:
        pipeline = get_pipeline()
        verb = method.upper()
        who = caller(pipeline, headers, policy.ADMIN if verb in ("PUT", "DELETE") else policy.OPERATOR)
        store = get_store()
        if verb == "PUT":
            record, created = await put_connection(
                store,
                pipeline.settings,
                name or "",
                body,
                if_match=policy.header(headers, "if-match"),
                if_none_match=policy.header(headers, "if-none-match"),
                by=who.audit,
            )
            return _record_reply(201 if created else 200, record)
        if verb == "DELETE":
            await delete_connection(store, name or "", if_match=policy.header(headers, "if-match"), by=who.audit)
            return HttpReply(204, b"", {}, "application/json")
        record = await get_connection(store, name or "")
        if policy.header(headers, "if-none-match") == record.etag:
            return HttpReply(304, b"", {"ETag": record.etag}, "application/json")
        return _record_reply(200, record)

    return await _replying(handle)


async def connections(
    get_pipeline: Callable[[], Pipeline],
    get_store: Callable[[], ConnectionStore],
    params: Mapping[str, str],
    headers: Mapping[str, str],
) -> HttpReply:
    """``GET /api/connections?top=&continuationToken=``."""
    from .connections import list_connections

    async def handle() -> HttpReply:
        caller(get_pipeline(), headers, policy.OPERATOR)
        records, token = await list_connections(
            get_store(), top=params.get("top"), continuation=params.get("continuationToken")
        )
        return json_reply(200, {"value": [r.to_dict() for r in records], "continuationToken": token})

    return await _replying(handle)


async def run_connection(
    get_pipeline: Callable[[], Pipeline],
    get_store: Callable[[], ConnectionStore],
    name: str | None,
    headers: Mapping[str, str],
) -> HttpReply:
    """``POST /api/connections/{name}/run``: the outcome, as for any request (trigger ``connection``)."""
    from .connections import run_connection as run

    async def handle() -> HttpReply:
        pipeline = get_pipeline()
        caller(pipeline, headers, policy.OPERATOR)
        return outcome_reply(await run(get_store(), pipeline, name or ""))

    return await _replying(handle, Invocation(trigger="connection"))


async def health_detail(get_pipeline: Callable[[], Pipeline], params: Mapping[str, str]) -> HttpReply:
    """``GET /api/health/detail[?deep=true]``: the detail report; ``deep=true`` adds the preflight's checks."""
    from .health import deep_health, health

    deep = (params.get("deep") or "false").lower()
    if deep not in ("true", "false"):
        return problem_reply(ErrorRecord.from_error(InvalidRequest("deep is true or false")))
    status, payload = await deep_health(get_pipeline) if deep == "true" else health(detail=True)
    return json_reply(status, payload)
