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
from typing import Any, Literal

from .errors import InvalidRequest
from .keys import SYNCHRONIZATION_SECRET_KEYS
from .settings import GUID
from .stepnames import JOB_STEPS, SERVICE_PRINCIPAL_STEPS, STEP_NAMES, StepName

__all__ = [
    "DEFAULT_RESET_SCOPE",
    "JOB_ID_PATTERN",
    "JOB_STEPS",
    "MAX_BODY_BYTES",
    "RESET_SCOPES",
    "STEP_NAMES",
    "AcquireRequest",
    "Credential",
    "JsonNumber",
    "OnDemand",
    "StepName",
    "Subject",
    "Target",
    "decode_json",
    "parse_request",
    "schema_limits",
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
# Graph's synchronizationJobRestartScope values a restart may use. None, ConnectorDataStore and ForceDeletes are
# refused: Graph documents them as not to be used, and ForceDeletes deletes objects in the target system.
RESET_SCOPES = ("Watermark", "Escrows", "QuarantineState", "Full")
REFUSED_RESET_SCOPES = ("None", "ConnectorDataStore", "ForceDeletes")
DEFAULT_RESET_SCOPE = "QuarantineState"
MAX_SUBJECTS = 5
MAX_SECRET_REF = 2048
MAX_GRAPH_ID = 256  # a rule id or a subject's object id
MAX_JOB_ID = 256
JOB_ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_JOB_ID - 1}}}$"
_JOB_ID = re.compile(JOB_ID_PATTERN)


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
    recovery: bool = False  # a stored connection's opt-in to recovery playbooks (docs/fleet.md); ignored otherwise

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
    """Validate one request: every problem of the body at once (the first five), each with its field's path.

    ``raw`` is the body as bytes or text, or an already decoded JSON value (Event Grid ``data``).
    With ``target`` (from an HTTP route's path) the body must not name a target itself.
    """
    data = decode_json(raw)
    if not isinstance(data, dict):
        raise InvalidRequest("the request must be a JSON object")
    if target is not None:
        for name in ("servicePrincipalId", "applicationId"):
            if name in data:
                raise InvalidRequest(f"{name}: unknown field here; the target comes from the path")
        data = {**data, ("servicePrincipalId" if target.type == "servicePrincipal" else "applicationId"): target.id}
    problems: list[str] = []
    request = _read_object(_REQUEST, data, "", problems)
    if problems or not isinstance(request, AcquireRequest):
        raise InvalidRequest("; ".join(problems[:MAX_PROBLEMS]) + ("; ..." if len(problems) > MAX_PROBLEMS else ""))
    return request


# ---- decoding: JSON text to Python values, numbers kept as written ---------------------------------------------


class JsonNumber:
    """A JSON number as the body wrote it, never converted.

    The request takes no number, so converting one would only cost: Python refuses integers of more than 4,300
    digits with a ValueError, and an infinite or huge float is not worth computing. The reader refuses it like any
    value of the wrong type ("Input should be a valid string"), naming the field.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"JsonNumber(<{len(self.text)} characters>)"


def decode_json(raw: bytes | str | Any) -> Any:
    """The JSON value of a request body: bytes or text decoded, anything else (an already decoded value) as is.

    Refused with :class:`~shared.errors.InvalidRequest`: a body over ``MAX_BODY_BYTES``, an empty one, bytes that
    are not UTF-8, text that is not JSON, nesting too deep for the parser, and an object that repeats a member.
    A leading UTF-8 byte order mark is ignored. Numbers come back as :class:`JsonNumber`, whatever their size.
    """
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
            return json.loads(
                raw,
                object_pairs_hook=_unique_members,
                parse_int=JsonNumber,
                parse_float=JsonNumber,
                parse_constant=JsonNumber,
            )
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


# ---- reading: one walker over a table of fields per object; every problem with its path, never a value --------

MAX_PROBLEMS = 5
FieldKind = Literal["string", "boolean", "choice", "list", "object"]
# A rule across an object's well-formed fields: it reports through fail(member or None for the object, message).
_Fail = Callable[[str | None, str], None]
_Rule = Callable[[dict[str, Any], _Fail], None]


@dataclass(frozen=True, slots=True)
class _Field:
    """One member of a JSON object (``name``) and the model attribute it fills (``attr``)."""

    name: str
    attr: str
    kind: FieldKind
    required: bool = False
    min_length: int = 0
    max_length: int = 0
    choices: tuple[str, ...] = ()
    item: _Field | _Model | None = None  # what a list holds, or the model of an object
    min_items: int = 0
    max_items: int = 0
    default: Any = None  # an absent list's value (then it is not required); an absent boolean is False


@dataclass(frozen=True, slots=True)
class _Model:
    """A JSON object: its fields in reading order, the rules across them, the frozen dataclass it builds."""

    fields: tuple[_Field, ...]
    build: Callable[..., Any]
    rules: tuple[_Rule, ...] = ()
    no_null: tuple[str, ...] = ()  # members that may not be null (null is not a way of leaving one out)


_MISSING = object()  # a member the object does not have
_INVALID = object()  # a value that had a problem (already reported)


def _read_object(model: _Model, value: Any, where: str, problems: list[str]) -> Any:
    """The model's dataclass, or ``_INVALID`` with every problem of this object (and below it) reported."""
    if not isinstance(value, dict):
        problems.append(f"{where}: Input should be a JSON object")
        return _INVALID
    failed = False

    def fail(name: str | None, message: str) -> None:
        nonlocal failed
        location = where if name is None else _at(where, name)
        problems.append(f"{location}: {message}" if location else message)
        failed = True

    for name in model.no_null:
        if name in value and value[name] is None:
            fail(None, f"'{name}' is null; leave it out instead")
            return _INVALID
    values: dict[str, Any] = {}
    for spec in model.fields:
        result = _read_member(spec, value.get(spec.name, _MISSING), where, fail, problems)
        if result is _INVALID:
            failed = True
        else:
            values[spec.attr] = result
    known = {spec.name for spec in model.fields}
    for name in value:
        if name not in known:
            fail(name[:64], "unknown field")
    for rule in model.rules:
        rule(values, fail)
    return _INVALID if failed else model.build(**values)


def _read_member(spec: _Field, value: Any, where: str, fail: _Fail, problems: list[str]) -> Any:
    """One member's value (``_MISSING`` when absent) read against its field; ``_INVALID`` after a problem."""
    name = spec.name
    if spec.kind == "string":
        if value is _MISSING or (value is None and not spec.required):
            if spec.required:
                fail(name, "required")
                return _INVALID
            return None
        if not isinstance(value, str):
            fail(name, "Input should be a valid string")
            return _INVALID
        if len(value) < spec.min_length:
            fail(name, f"String should have at least {_count(spec.min_length, 'character')}")
            return _INVALID
        if spec.max_length and len(value) > spec.max_length:
            fail(name, f"String should have at most {_count(spec.max_length, 'character')}")
            return _INVALID
        return value
    if spec.kind == "boolean":
        if value is _MISSING:
            return False
        if not isinstance(value, bool):
            fail(name, "Input should be a valid boolean")
            return _INVALID
        return value
    if spec.kind == "choice":
        if value is _MISSING:
            fail(name, "required")
            return _INVALID
        return _choice(value, spec.choices, lambda message: fail(name, message))
    if spec.kind == "object":
        if value is _MISSING or value is None:
            return None
        return _read_item(spec, value, _at(where, name), problems)
    # a list
    if value is _MISSING:
        if spec.default is None:
            fail(name, "required")
            return _INVALID
        return list(spec.default)
    if not isinstance(value, list):
        fail(name, "Input should be a valid list")
        return _INVALID
    if len(value) < spec.min_items:
        fail(name, f"List should have at least {_count(spec.min_items, 'item')} after validation, not {len(value)}")
        return _INVALID
    if len(value) > spec.max_items:
        fail(name, f"List should have at most {_count(spec.max_items, 'item')} after validation, not {len(value)}")
        return _INVALID
    results = [_read_item(spec, item, f"{_at(where, name)}[{index}]", problems) for index, item in enumerate(value)]
    return _INVALID if any(result is _INVALID for result in results) else results


def _read_item(spec: _Field, value: Any, location: str, problems: list[str]) -> Any:
    """An object's value or a list's item, read against ``spec.item`` (a model, or a field without a name)."""
    if isinstance(spec.item, _Model):
        return _read_object(spec.item, value, location, problems)
    if spec.item is None:
        raise TypeError(f"the field {spec.name!r} says nothing of its items")

    def fail(_name: str | None, message: str) -> None:
        problems.append(f"{location}: {message}")

    return _read_member(spec.item, value, location, fail, problems)


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _choice(value: Any, choices: tuple[str, ...], fail: Callable[[str], None]) -> Any:
    if isinstance(value, str) and value in choices:
        return value
    quoted = [f"{choice!r}" for choice in choices]
    fail(
        f"Input should be {', '.join(quoted[:-1])} or {quoted[-1]}"
        if len(quoted) > 1
        else f"Input should be {quoted[0]}"
    )
    return _INVALID


# ---- the rules across fields, each run on the fields that are well formed ------------------------------------------


def _credential_rules(values: dict[str, Any], fail: _Fail) -> None:
    if "key" not in values:
        return
    key = values["key"]
    if key in _KEYS:
        label = f"credential {key!r}"
    else:  # named by its position, never quoted: it may be anything, a secret pasted in the wrong place included
        fail("key", "the key is not a synchronizationSecret value as Graph spells it")
        label = "the credential"
    if "value" not in values or "secret_ref" not in values:
        return
    inline, secret_ref = values["value"], values["secret_ref"]
    if (inline is None) == (secret_ref is None):
        fail(None, f"{label} needs exactly one of 'value' or 'secretRef'")
    if inline is not None and len(inline.encode("utf-8", errors="surrogatepass")) > MAX_VALUE_BYTES:
        fail(None, f"{label}: 'value' is longer than {MAX_VALUE_BYTES // 1024} KiB")
    if secret_ref is not None and not secret_ref.strip():
        fail(None, f"{label}: 'secretRef' is empty")


def _target_rules(values: dict[str, Any], fail: _Fail) -> None:
    names = {"service_principal_id": "servicePrincipalId", "application_id": "applicationId"}
    if all(attr in values for attr in names) and (values["service_principal_id"] is None) == (
        values["application_id"] is None
    ):
        fail(None, "exactly one of 'servicePrincipalId' or 'applicationId' is required")
    for attr, name in names.items():
        if values.get(attr) is not None and not GUID.fullmatch(values[attr]):
            fail(None, f"'{name}' must be a GUID (an object id)")


def _credential_list_rules(values: dict[str, Any], fail: _Fail) -> None:
    keys = [credential.key for credential in values.get("credentials", ())]
    for key in dict.fromkeys(key for key in keys if keys.count(key) > 1):
        fail(None, f"credential key {key!r} appears more than once")


def _correlation_rules(values: dict[str, Any], fail: _Fail) -> None:
    if values.get("correlation_id") is not None:
        try:
            _check_correlation_id(values["correlation_id"])
        except ValueError as exc:
            fail(None, str(exc))


def _step_rules(values: dict[str, Any], fail: _Fail) -> None:
    if "steps" not in values:
        return
    steps = values["steps"]
    repeated = sorted({step for step in steps if steps.count(step) > 1})
    if repeated:
        fail(None, f"'steps' names {', '.join(repeated)} more than once; each step runs at most once")
    if values.get("application_id") is not None and values.get("service_principal_id") is None:
        others = [step for step in steps if step in SERVICE_PRINCIPAL_STEPS]
        if others:
            fail(None, f"step(s) {', '.join(others)} need a 'servicePrincipalId' target, not an application")
    if "provisionOnDemand" in steps and "on_demand" in values and values["on_demand"] is None:
        fail(None, "the provisionOnDemand step needs 'onDemand' (ruleId and subjects)")


def _job_rules(values: dict[str, Any], fail: _Fail) -> None:
    # jobId, resetScope, replaceSecrets and onDemand are used only by their steps and ignored otherwise, so that
    # the request schema can state every rule; their own shape is checked whenever they are given.
    if values.get("job_id") is not None and not _JOB_ID.fullmatch(values["job_id"]):
        fail(None, f"'jobId' must be 1 to {MAX_JOB_ID} letters, digits, dots, dashes or underscores")
    if values.get("reset_scope") is not None:
        try:
            _reset_scope_parts(values["reset_scope"])
        except ValueError as exc:
            fail(None, str(exc))


_CREDENTIAL = _Model(
    fields=(
        _Field("key", "key", "string", required=True),
        _Field("value", "value", "string"),
        _Field("secretRef", "secret_ref", "string", max_length=MAX_SECRET_REF),
    ),
    build=Credential,
    rules=(_credential_rules,),
    no_null=("value", "secretRef"),
)
_SUBJECT = _Model(
    fields=(
        _Field("objectId", "object_id", "string", required=True, min_length=1, max_length=MAX_GRAPH_ID),
        _Field("objectTypeName", "object_type_name", "choice", choices=("User", "Group")),
    ),
    build=Subject,
)
_ON_DEMAND = _Model(
    fields=(
        _Field("ruleId", "rule_id", "string", required=True, min_length=1, max_length=MAX_GRAPH_ID),
        _Field("subjects", "subjects", "list", item=_SUBJECT, min_items=1, max_items=MAX_SUBJECTS),
    ),
    build=OnDemand,
)
_REQUEST = _Model(
    fields=(
        _Field("servicePrincipalId", "service_principal_id", "string"),
        _Field("applicationId", "application_id", "string"),
        _Field("credentials", "credentials", "list", item=_CREDENTIAL, min_items=1, max_items=MAX_CREDENTIALS),
        _Field("correlationId", "correlation_id", "string"),
        _Field("dryRun", "dry_run", "boolean"),
        _Field(
            "steps",
            "steps",
            "list",
            item=_Field("", "", "choice", choices=STEP_NAMES),
            min_items=1,
            max_items=len(STEP_NAMES),
            default=("acquireAccessToken",),
        ),
        _Field("jobId", "job_id", "string"),
        _Field("resetScope", "reset_scope", "string"),
        _Field("replaceSecrets", "replace_secrets", "boolean"),
        _Field("onDemand", "on_demand", "object", item=_ON_DEMAND),
        _Field("recovery", "recovery", "boolean"),
    ),
    build=AcquireRequest,
    rules=(_target_rules, _credential_list_rules, _correlation_rules, _step_rules, _job_rules),
)


def schema_limits() -> dict[str, dict[str, int]]:
    """The request's length and count limits as JSON Schema keywords, by the member's path (``credentials[].key``),
    for the OpenAPI document: read from the field table and the rules' constants, so the document says what the
    reader checks. ``credentials[].value`` is limited in UTF-8 bytes, which JSON Schema cannot say: its maxLength
    (characters) is the same number, a bound every value the reader accepts keeps."""
    limits: dict[str, dict[str, int]] = {}

    def walk(model: _Model, where: str) -> None:
        for spec in model.fields:
            path = _at(where, spec.name)
            if spec.kind == "string" and (spec.min_length or spec.max_length):
                limits[path] = {"minLength": spec.min_length} if spec.min_length else {}
                if spec.max_length:
                    limits[path]["maxLength"] = spec.max_length
            if spec.kind == "list":
                limits[path] = {"minItems": spec.min_items, "maxItems": spec.max_items}
            if isinstance(spec.item, _Model):
                walk(spec.item, f"{path}[]" if spec.kind == "list" else path)

    walk(_REQUEST, "")
    limits["credentials[].secretRef"] = {"minLength": 1, **limits["credentials[].secretRef"]}  # an empty one is refused
    limits["credentials[].value"] = {"maxLength": MAX_VALUE_BYTES}
    limits["correlationId"] = {"minLength": 1, "maxLength": MAX_CORRELATION_ID}
    limits["jobId"] = {"minLength": 1, "maxLength": MAX_JOB_ID}
    return limits
