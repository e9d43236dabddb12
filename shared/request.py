"""The request (docs/reference.md, "The request"): one JSON object, the same wherever it arrives.

Raw input stops here: :func:`parse_request` turns bytes, text or a decoded JSON value into an
:class:`AcquireRequest` or raises :class:`~shared.errors.InvalidRequest` with a message naming the field.
Values are never echoed in messages: a credential value may be a secret.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

from .errors import InvalidRequest
from .keys import SYNCHRONIZATION_SECRET_KEYS
from .settings import GUID

__all__ = [
    "DEFAULT_RESET_SCOPE",
    "JOB_STEPS",
    "MAX_BODY_BYTES",
    "RESET_SCOPES",
    "STEP_NAMES",
    "AcquireRequest",
    "Credential",
    "OnDemand",
    "Subject",
    "Target",
    "parse_request",
]

MAX_BODY_BYTES = 64 * 1024
MAX_VALUE_BYTES = 8 * 1024
MAX_CREDENTIALS = 32
_UTF8_BOM = b"\xef\xbb\xbf"

MAX_CORRELATION_ID = 128
# Control, format, surrogate, line and paragraph separator characters: invisible or able to forge a log line.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_KEYS = frozenset(SYNCHRONIZATION_SECRET_KEYS)

TargetType = Literal["servicePrincipal", "application"]
StepName = Literal[
    "validateCredentials", "acquireAccessToken", "saveSecrets", "startJob", "restartJob", "provisionOnDemand"
]
STEP_NAMES: tuple[str, ...] = get_args(StepName)
# Steps that act on a synchronization job (they use jobId, or the service principal's only job).
JOB_STEPS = frozenset({"validateCredentials", "startJob", "restartJob", "provisionOnDemand"})
# Graph's synchronizationJobRestartScope values a restart may use. None, ConnectorDataStore and ForceDeletes are
# refused: Graph documents them as not to be used, and ForceDeletes deletes objects in the target system.
RESET_SCOPES = ("Watermark", "Escrows", "QuarantineState", "Full")
REFUSED_RESET_SCOPES = ("None", "ConnectorDataStore", "ForceDeletes")
DEFAULT_RESET_SCOPE = "QuarantineState"
MAX_SUBJECTS = 5
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$")


@dataclass(frozen=True, slots=True)
class Credential:
    key: str
    value: str | None = field(default=None, repr=False)
    secret_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Target:
    type: TargetType
    id: str

    @property
    def graph_collection(self) -> str:
        return "servicePrincipals" if self.type == "servicePrincipal" else "applications"


@dataclass(frozen=True, slots=True)
class Subject:
    object_id: str
    object_type_name: Literal["User", "Group"]


@dataclass(frozen=True, slots=True)
class OnDemand:
    rule_id: str
    subjects: list[Subject]


@dataclass(frozen=True, slots=True)
class AcquireRequest:
    credentials: list[Credential]
    service_principal_id: str | None = None
    application_id: str | None = None
    correlation_id: str | None = None
    dry_run: bool = False
    steps: list[StepName] = field(default_factory=lambda: ["acquireAccessToken"])
    job_id: str | None = None
    reset_scope: str | None = None
    replace_secrets: bool = False
    on_demand: OnDemand | None = None

    @property
    def restart_scope(self) -> str:
        """The reset scope as Graph takes it ("Watermark, Escrows"), the default when none was given."""
        if self.reset_scope is None:
            return DEFAULT_RESET_SCOPE
        return ", ".join(_reset_scope_parts(self.reset_scope))

    @property
    def uses_job(self) -> bool:
        return bool(JOB_STEPS & set(self.steps))

    @property
    def target(self) -> Target:
        if self.service_principal_id is not None:
            return Target(type="servicePrincipal", id=self.service_principal_id.lower())
        return Target(type="application", id=(self.application_id or "").lower())

    @property
    def credential_keys(self) -> list[str]:
        return [c.key for c in self.credentials]


def _reset_scope_parts(value: str) -> list[str]:
    parts = [part.strip() for part in value.split(",")]
    if not value.strip() or any(not part for part in parts):
        raise ValueError("'resetScope' is a comma-separated list of " + ", ".join(RESET_SCOPES))
    for part in parts:
        if part in REFUSED_RESET_SCOPES:
            raise ValueError(
                f"'resetScope' {part} is refused: only {', '.join(RESET_SCOPES)} (and their combinations) are safe"
            )
        if part not in RESET_SCOPES:
            raise ValueError(f"'resetScope' {part[:40]!r} is not one of {', '.join(RESET_SCOPES)}")
    if len(set(parts)) != len(parts):
        raise ValueError("'resetScope' names a scope more than once")
    return parts


def _check_correlation_id(value: str) -> None:
    if not 1 <= len(value) <= MAX_CORRELATION_ID:
        raise ValueError(f"'correlationId' must be 1 to {MAX_CORRELATION_ID} printable characters")
    for position, character in enumerate(value):
        if unicodedata.category(character) in _UNPRINTABLE_CATEGORIES:
            raise ValueError(
                f"'correlationId' must be 1 to {MAX_CORRELATION_ID} printable characters: character {position + 1} "
                f"is a control, format or separator character (U+{ord(character):04X})"
            )


def correlation_id_pattern() -> str:
    """A regular expression for ``correlationId`` (for the OpenAPI document): no character of the refused kinds.

    Built from this interpreter's Unicode tables, as the check is; surrogates are left out (UTF-8 JSON cannot
    carry one, and a pattern cannot name one).
    """
    ranges: list[tuple[int, int]] = []
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF or unicodedata.category(chr(code)) not in _UNPRINTABLE_CATEGORIES:
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    excluded = "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)
    return f"^[^{excluded}]+$"


def parse_request(raw: bytes | str | Any, *, target: Target | None = None) -> AcquireRequest:
    """Validate one request.

    ``raw`` is the body as bytes or text, or an already decoded JSON value (Event Grid ``data``).
    With ``target`` (from an HTTP route's path) the body must not name a target itself.
    """
    data = _decode(raw)
    if not isinstance(data, dict):
        raise InvalidRequest("the request must be a JSON object")
    if target is not None:
        for name in ("servicePrincipalId", "applicationId"):
            if name in data:
                raise InvalidRequest(f"{name}: unknown field here; the target comes from the path")
        data = {**data, ("servicePrincipalId" if target.type == "servicePrincipal" else "applicationId"): target.id}
    problems: list[str] = []
    request = _acquire_request(_Fields(data, "", problems))
    if request is None or problems:
        raise InvalidRequest("; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else ""))
    try:
        _check_request(request)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return request


# ---- reading the JSON object: every problem with its location, never a value -----------------------------------

_Item = TypeVar("_Item")
_MISSING = object()


class _Fields:
    """One JSON object read against a model's fields (camelCase names only); problems go to a shared list."""

    def __init__(self, data: dict[str, Any], where: str, problems: list[str]) -> None:
        self.data = data
        self.where = where
        self.problems = problems
        self.read: set[str] = set()
        self.failed = False

    def fail(self, name: str | None, message: str) -> None:
        location = self.where if name is None else _at(self.where, name)
        self.problems.append(f"{location}: {message}" if location else message)
        self.failed = True

    def get(self, name: str) -> Any:
        self.read.add(name)
        return self.data.get(name, _MISSING)

    def string(self, name: str, *, required: bool = False, min_length: int = 0, max_length: int = 0) -> str | None:
        value = self.get(name)
        if value is _MISSING or (value is None and not required):
            if required:
                self.fail(name, "required")
            return None
        if not isinstance(value, str):
            self.fail(name, "Input should be a valid string")
            return None
        if len(value) < min_length:
            self.fail(name, f"String should have at least {_count(min_length, 'character')}")
        elif max_length and len(value) > max_length:
            self.fail(name, f"String should have at most {_count(max_length, 'character')}")
        return value

    def boolean(self, name: str) -> bool:
        value = self.get(name)
        if value is _MISSING:
            return False
        if not isinstance(value, bool):
            self.fail(name, "Input should be a valid boolean")
            return False
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        value = self.get(name)
        if value is _MISSING:
            self.fail(name, "required")
            return None
        return _choice(value, choices, lambda message: self.fail(name, message))

    def items(
        self,
        name: str,
        read: Callable[[Any, str], _Item | None],
        *,
        min_items: int,
        max_items: int,
        default: list[_Item] | None = None,
    ) -> list[_Item] | None:
        value = self.get(name)
        if value is _MISSING:
            if default is None:
                self.fail(name, "required")
            return default
        if not isinstance(value, list):
            self.fail(name, "Input should be a valid list")
            return None
        if len(value) < min_items:
            self.fail(name, f"List should have at least {_count(min_items, 'item')} after validation, not {len(value)}")
            return None
        if len(value) > max_items:
            self.fail(name, f"List should have at most {_count(max_items, 'item')} after validation, not {len(value)}")
            return None
        where = _at(self.where, name)
        results = [read(item, f"{where}[{index}]") for index, item in enumerate(value)]
        if any(result is None for result in results):
            self.failed = True
            return None
        return [result for result in results if result is not None]

    def obj(self, name: str, read: Callable[[Any, str], _Item | None]) -> _Item | None:
        value = self.get(name)
        if value is _MISSING or value is None:
            return None
        result = read(value, _at(self.where, name))
        if result is None:
            self.failed = True
        return result

    def finish(self) -> bool:
        """Report the members that are not fields; whether the object had no problem at all."""
        for name in self.data:
            if name not in self.read:
                self.fail(name[:64], "unknown field")
        return not self.failed


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _choice(value: Any, choices: tuple[str, ...], fail: Callable[[str], None]) -> str | None:
    if isinstance(value, str) and value in choices:
        return value
    quoted = [f"{choice!r}" for choice in choices]
    fail(
        f"Input should be {', '.join(quoted[:-1])} or {quoted[-1]}"
        if len(quoted) > 1
        else f"Input should be {quoted[0]}"
    )
    return None


def _object(value: Any, where: str, problems: list[str]) -> _Fields | None:
    if not isinstance(value, dict):
        problems.append(f"{where}: Input should be a JSON object")
        return None
    return _Fields(value, where, problems)


def _credential_reader(problems: list[str]) -> Callable[[Any, str], Credential | None]:
    def read(value: Any, where: str) -> Credential | None:
        fields = _object(value, where, problems)
        if fields is None:
            return None
        for name in ("value", "secretRef"):  # exactly one of the two: null is not a way of leaving one out
            if name in value and value[name] is None:
                fields.fail(None, f"'{name}' is null; leave it out instead")
                return None
        key = fields.string("key", required=True)
        inline = fields.string("value")
        secret_ref = fields.string("secretRef", max_length=2048)
        if not fields.finish() or key is None:
            return None
        credential = Credential(key=key, value=inline, secret_ref=secret_ref)
        try:
            _check_credential(credential)
        except ValueError as exc:
            fields.fail(None, str(exc))
            return None
        return credential

    return read


def _subject_reader(problems: list[str]) -> Callable[[Any, str], Subject | None]:
    def read(value: Any, where: str) -> Subject | None:
        fields = _object(value, where, problems)
        if fields is None:
            return None
        object_id = fields.string("objectId", required=True, min_length=1, max_length=256)
        type_name = fields.choice("objectTypeName", ("User", "Group"))
        if not fields.finish() or object_id is None or type_name is None:
            return None
        return Subject(object_id=object_id, object_type_name=type_name)  # type: ignore[arg-type]

    return read


def _on_demand_reader(problems: list[str]) -> Callable[[Any, str], OnDemand | None]:
    def read(value: Any, where: str) -> OnDemand | None:
        fields = _object(value, where, problems)
        if fields is None:
            return None
        rule_id = fields.string("ruleId", required=True, min_length=1, max_length=256)
        subjects = fields.items("subjects", _subject_reader(problems), min_items=1, max_items=MAX_SUBJECTS)
        if not fields.finish() or rule_id is None or subjects is None:
            return None
        return OnDemand(rule_id=rule_id, subjects=subjects)

    return read


def _step(problems: list[str]) -> Callable[[Any, str], str | None]:
    def read(value: Any, where: str) -> str | None:
        return _choice(value, STEP_NAMES, lambda message: problems.append(f"{where}: {message}"))

    return read


def _acquire_request(fields: _Fields) -> AcquireRequest | None:
    problems = fields.problems
    service_principal_id = fields.string("servicePrincipalId")
    application_id = fields.string("applicationId")
    credentials = fields.items("credentials", _credential_reader(problems), min_items=1, max_items=MAX_CREDENTIALS)
    correlation_id = fields.string("correlationId")
    dry_run = fields.boolean("dryRun")
    steps = fields.items(
        "steps", _step(problems), min_items=1, max_items=len(STEP_NAMES), default=["acquireAccessToken"]
    )
    job_id = fields.string("jobId")
    reset_scope = fields.string("resetScope")
    replace_secrets = fields.boolean("replaceSecrets")
    on_demand = fields.obj("onDemand", _on_demand_reader(problems))
    if not fields.finish() or credentials is None or steps is None:
        return None
    return AcquireRequest(
        credentials=credentials,
        service_principal_id=service_principal_id,
        application_id=application_id,
        correlation_id=correlation_id,
        dry_run=dry_run,
        steps=steps,  # type: ignore[arg-type]
        job_id=job_id,
        reset_scope=reset_scope,
        replace_secrets=replace_secrets,
        on_demand=on_demand,
    )


def _check_credential(credential: Credential) -> None:
    if credential.key not in _KEYS:
        raise ValueError(f"key {credential.key[:64]!r} is not a synchronizationSecret value as Graph spells it")
    if (credential.value is None) == (credential.secret_ref is None):
        raise ValueError(f"credential {credential.key!r} needs exactly one of 'value' or 'secretRef'")
    if credential.value is not None and len(credential.value.encode("utf-8")) > MAX_VALUE_BYTES:
        raise ValueError(f"credential {credential.key!r}: 'value' is longer than 8 KiB")
    if credential.secret_ref is not None and not credential.secret_ref.strip():
        raise ValueError(f"credential {credential.key!r}: 'secretRef' is empty")


def _check_request(request: AcquireRequest) -> None:
    """The rules across fields, once every field is well formed."""
    if (request.service_principal_id is None) == (request.application_id is None):
        raise ValueError("exactly one of 'servicePrincipalId' or 'applicationId' is required")
    target_id = request.service_principal_id or request.application_id or ""
    if not GUID.fullmatch(target_id):
        name = "servicePrincipalId" if request.service_principal_id is not None else "applicationId"
        raise ValueError(f"'{name}' must be a GUID (an object id)")
    seen: set[str] = set()
    for credential in request.credentials:
        if credential.key in seen:
            raise ValueError(f"credential key {credential.key!r} appears more than once")
        seen.add(credential.key)
    if request.correlation_id is not None:
        _check_correlation_id(request.correlation_id)
    steps = request.steps
    repeated = sorted({step for step in steps if steps.count(step) > 1})
    if repeated:
        raise ValueError(f"'steps' names {', '.join(repeated)} more than once; each step runs at most once")
    if request.application_id is not None and set(steps) != {"acquireAccessToken"}:
        others = [step for step in steps if step != "acquireAccessToken"]
        raise ValueError(f"step(s) {', '.join(others)} need a 'servicePrincipalId' target, not an application")
    # jobId, resetScope, replaceSecrets and onDemand are used only by their steps and ignored otherwise, so
    # that the request schema can state every rule; their own shape is checked whenever they are given.
    if request.job_id is not None and not _JOB_ID.fullmatch(request.job_id):
        raise ValueError("'jobId' must be 1 to 256 letters, digits, dots, dashes or underscores")
    if request.reset_scope is not None:
        _reset_scope_parts(request.reset_scope)
    if "provisionOnDemand" in steps and request.on_demand is None:
        raise ValueError("the provisionOnDemand step needs 'onDemand' (ruleId and subjects)")


def _decode(raw: bytes | str | Any) -> Any:
    if isinstance(raw, bytes | bytearray | memoryview):
        raw = bytes(raw)
        if len(raw) > MAX_BODY_BYTES:
            raise InvalidRequest(f"the request is larger than {MAX_BODY_BYTES // 1024} KiB")
        if raw.startswith(_UTF8_BOM):  # Windows tools write one; it is not part of the JSON
            raw = raw[len(_UTF8_BOM) :]
        if not raw.strip():
            raise InvalidRequest("the request is empty")
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("the request is not UTF-8 text") from None
    if isinstance(raw, str):
        raw = raw.removeprefix("\ufeff")
        if len(raw.encode("utf-8", errors="surrogatepass")) > MAX_BODY_BYTES:
            raise InvalidRequest(f"the request is larger than {MAX_BODY_BYTES // 1024} KiB")
        if not raw.strip():
            raise InvalidRequest("the request is empty")
        try:
            return json.loads(raw, object_pairs_hook=_unique_members)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(
                f"the request is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            ) from None
        except RecursionError:
            raise InvalidRequest("the request is nested too deeply") from None
    return raw


class _DuplicateMember(InvalidRequest):
    pass


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object that repeats a member is refused: never last-one-wins."""
    data: dict[str, Any] = {}
    for name, value in pairs:
        if name in data:
            raise _DuplicateMember(f"the member {name[:64]!r} appears more than once in one JSON object")
        data[name] = value
    return data
