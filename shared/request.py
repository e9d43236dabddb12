"""The request (docs/reference.md, "The request"): one JSON object, the same wherever it arrives.

Raw input stops here: :func:`parse_request` turns bytes, text or a decoded JSON value into an
:class:`AcquireRequest` or raises :class:`~shared.errors.InvalidRequest` with a message naming the field.
Values are never echoed in messages: a credential value may be a secret.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError, model_validator
from pydantic.alias_generators import to_camel

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


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        # Only the camelCase names are fields: ``dry_run`` or ``service_principal_id`` is an unknown field.
        populate_by_name=False,
        hide_input_in_errors=True,
    )


class Credential(_Model):
    key: StrictStr
    value: Annotated[StrictStr | None, Field(default=None, repr=False)] = None
    secret_ref: Annotated[StrictStr | None, Field(default=None, max_length=2048)] = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        # Exactly one of the two is given: null is not a way of leaving one out.
        if isinstance(data, dict):
            for name in ("value", "secretRef"):
                if name in data and data[name] is None:
                    raise ValueError(f"'{name}' is null; leave it out instead")
        return data

    @model_validator(mode="after")
    def _check(self) -> Credential:
        if self.key not in _KEYS:
            raise ValueError(f"key {self.key[:64]!r} is not a synchronizationSecret value as Graph spells it")
        if (self.value is None) == (self.secret_ref is None):
            raise ValueError(f"credential {self.key!r} needs exactly one of 'value' or 'secretRef'")
        if self.value is not None and len(self.value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise ValueError(f"credential {self.key!r}: 'value' is longer than 8 KiB")
        if self.secret_ref is not None and not self.secret_ref.strip():
            raise ValueError(f"credential {self.key!r}: 'secretRef' is empty")
        return self


class Target(_Model):
    type: TargetType
    id: StrictStr

    @property
    def graph_collection(self) -> str:
        return "servicePrincipals" if self.type == "servicePrincipal" else "applications"


class Subject(_Model):
    object_id: Annotated[StrictStr, Field(min_length=1, max_length=256)]
    object_type_name: Literal["User", "Group"]


class OnDemand(_Model):
    rule_id: Annotated[StrictStr, Field(min_length=1, max_length=256)]
    subjects: Annotated[list[Subject], Field(min_length=1, max_length=MAX_SUBJECTS)]


class AcquireRequest(_Model):
    service_principal_id: StrictStr | None = None
    application_id: StrictStr | None = None
    credentials: Annotated[list[Credential], Field(min_length=1, max_length=MAX_CREDENTIALS)]
    correlation_id: StrictStr | None = None
    dry_run: StrictBool = False
    steps: Annotated[list[StepName], Field(min_length=1, max_length=len(STEP_NAMES))] = ["acquireAccessToken"]
    job_id: StrictStr | None = None
    reset_scope: StrictStr | None = None
    replace_secrets: StrictBool = False
    on_demand: OnDemand | None = None

    @model_validator(mode="after")
    def _check(self) -> AcquireRequest:
        if (self.service_principal_id is None) == (self.application_id is None):
            raise ValueError("exactly one of 'servicePrincipalId' or 'applicationId' is required")
        target_id = self.service_principal_id or self.application_id or ""
        if not GUID.fullmatch(target_id):
            field = "servicePrincipalId" if self.service_principal_id is not None else "applicationId"
            raise ValueError(f"'{field}' must be a GUID (an object id)")
        seen: set[str] = set()
        for credential in self.credentials:
            if credential.key in seen:
                raise ValueError(f"credential key {credential.key!r} appears more than once")
            seen.add(credential.key)
        if self.correlation_id is not None:
            _check_correlation_id(self.correlation_id)
        self._check_steps()
        return self

    def _check_steps(self) -> None:
        steps = self.steps
        repeated = sorted({step for step in steps if steps.count(step) > 1})
        if repeated:
            raise ValueError(f"'steps' names {', '.join(repeated)} more than once; each step runs at most once")
        if self.application_id is not None and set(steps) != {"acquireAccessToken"}:
            others = [step for step in steps if step != "acquireAccessToken"]
            raise ValueError(f"step(s) {', '.join(others)} need a 'servicePrincipalId' target, not an application")
        # jobId, resetScope, replaceSecrets and onDemand are used only by their steps and ignored otherwise, so
        # that the request schema can state every rule; their own shape is checked whenever they are given.
        if self.job_id is not None and not _JOB_ID.fullmatch(self.job_id):
            raise ValueError("'jobId' must be 1 to 256 letters, digits, dots, dashes or underscores")
        if self.reset_scope is not None:
            _reset_scope_parts(self.reset_scope)
        if "provisionOnDemand" in steps and self.on_demand is None:
            raise ValueError("the provisionOnDemand step needs 'onDemand' (ruleId and subjects)")

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
    try:
        return AcquireRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc)) from None


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


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        location = _location(error["loc"])
        if error["type"] == "extra_forbidden":
            problems.append(f"{location}: unknown field")
        elif error["type"] == "missing":
            problems.append(f"{location}: required")
        elif error["type"] == "value_error":
            message = str(error.get("ctx", {}).get("error", error["msg"]))
            problems.append(f"{location}: {message}" if location else message)
        else:
            problems.append(f"{location}: {error['msg']}" if location else error["msg"])
    return "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
