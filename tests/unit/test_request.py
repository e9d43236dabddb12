import json

import pytest

from shared.errors import InvalidRequest
from shared.request import MAX_BODY_BYTES, Target, parse_request
from shared.stepnames import STEP_TABLE
from tests.conftest import APP_ID, SCIM_URL, SP_ID, request_body


def parse(body: object, **kwargs: object):
    return parse_request(json.dumps(body).encode(), **kwargs)


def problem(body: object, **kwargs: object) -> str:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(body if isinstance(body, bytes | str) else json.dumps(body).encode(), **kwargs)
    return caught.value.message


def test_the_contract_example_parses_into_a_typed_request():
    request = parse(request_body(dryRun=False))
    assert request.target == Target(type="servicePrincipal", id=SP_ID)
    assert request.credential_keys == ["BaseAddress", "SecretToken"]
    assert request.credentials[1].secret_ref == "scim-token"
    assert request.correlation_id == "ticket-4711"
    assert request.dry_run is False


def test_an_application_target_is_the_application_object_id():
    request = parse(request_body(servicePrincipalId=None, applicationId=APP_ID.upper()))
    assert request.target == Target(type="application", id=APP_ID)
    assert request.target.graph_collection == "applications"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (request_body(applicationId=APP_ID), "exactly one of 'servicePrincipalId' or 'applicationId'"),
        (request_body(servicePrincipalId=None), "exactly one of 'servicePrincipalId' or 'applicationId'"),
        (request_body(servicePrincipalId="not-a-guid"), "'servicePrincipalId' must be a GUID"),
        (request_body(servicePrincipalId=42), "servicePrincipalId: Input should be a valid string"),
        (request_body(extra=1), "extra: unknown field"),
        (request_body(credentials=[]), "credentials: List should have at least 1 item"),
        (request_body(credentials=[{"key": "Url", "value": "x"}] * 33), "credentials: List should have at most 32"),
        (
            request_body(credentials=[{"key": "Bogus", "value": "x"}]),
            "credentials[0].key: the key is not a synchronizationSecret value",
        ),
        (request_body(credentials=[{"key": "secrettoken", "secretRef": "x"}]), "is not a synchronizationSecret"),
        (request_body(credentials=[{"key": "Url"}]), "needs exactly one of 'value' or 'secretRef'"),
        (request_body(credentials=[{"key": "Url", "value": "a", "secretRef": "b"}]), "needs exactly one of"),
        (request_body(credentials=[{"key": "Url", "value": "a", "note": 1}]), "credentials[0].note: unknown field"),
        (
            request_body(credentials=[{"key": "Url", "value": 5}]),
            "credentials[0].value: Input should be a valid string",
        ),
        (request_body(credentials=[{"key": "Url", "value": "x" * 8193}]), "'value' is longer than 8 KiB"),
        (
            request_body(credentials=[{"key": "Url", "value": "a"}, {"key": "Url", "value": "b"}]),
            "appears more than once",
        ),
        (request_body(credentials=[{"key": "Url", "secretRef": "  "}]), "'secretRef' is empty"),
        (request_body(credentials="BaseAddress"), "credentials: Input should be a valid list"),
        (request_body(correlationId="x" * 129), "'correlationId' must be 1 to 128 printable"),
        (request_body(correlationId="line\nbreak"), "'correlationId' must be 1 to 128 printable"),
        (request_body(dryRun="yes"), "dryRun: Input should be a valid boolean"),
        ([1, 2], "the request must be a JSON object"),
    ],
)
def test_a_malformed_request_is_refused_with_a_message_naming_the_field(body, expected):
    assert expected in problem(body)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "the request is empty"),
        (b"{not json", "the request is not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 100000, "larger than 64 KiB"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        (b" " * (MAX_BODY_BYTES + 1), "larger than 64 KiB"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(raw, expected):
    assert expected in problem(raw)


def test_the_path_target_forbids_a_target_in_the_body():
    target = Target(type="servicePrincipal", id=SP_ID)
    assert "servicePrincipalId: unknown field here" in problem(request_body(), target=target)
    request = parse(request_body(servicePrincipalId=None), target=target)
    assert request.target == target


def test_an_inline_value_never_appears_in_the_error_message():
    secret = "s3cr3t-inline-value-that-must-not-leak"
    message = problem(request_body(credentials=[{"key": "Password", "value": secret, "secretRef": "x"}]))
    message += problem(request_body(credentials=[{"key": "Password", "value": [secret]}]))
    message += problem(request_body(credentials=[{"key": secret[:10], "value": secret}]))
    assert secret not in message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (request_body(dry_run=True), "dry_run"),
        (request_body(correlation_id="x"), "correlation_id"),
        (request_body(servicePrincipalId=None, service_principal_id=SP_ID), "service_principal_id"),
        (request_body(servicePrincipalId=None, application_id=APP_ID), "application_id"),
        (request_body(credentials=[{"key": "SecretToken", "secret_ref": "scim-token"}]), "credentials[0].secret_ref"),
        (request_body(credentials=[{"Key": "Url", "value": "x"}]), "credentials[0].Key"),
        (request_body(DryRun=True), "DryRun"),
    ],
)
def test_only_the_camel_case_names_are_fields(body, field):
    assert f"{field}: unknown field" in problem(body)


@pytest.mark.parametrize(
    ("raw", "member"),
    [
        (
            f'{{"servicePrincipalId": "{SP_ID}", "servicePrincipalId": "{APP_ID}", "credentials": []}}',
            "servicePrincipalId",
        ),
        (
            f'{{"servicePrincipalId": "{SP_ID}", "credentials": [{{"key": "Url", "key": "Password", "value": "x"}}]}}',
            "key",
        ),
        (f'{{"servicePrincipalId": "{SP_ID}", "dryRun": true, "dryRun": false, "credentials": []}}', "dryRun"),
        ('{"a": {"b": 1, "b": 2}}', "b"),
    ],
)
def test_a_member_repeated_in_one_object_is_refused_at_every_level_never_last_one_wins(raw, member):
    for form in (raw, raw.encode()):
        assert f"the member '{member}' appears more than once" in problem(form)


def test_the_same_member_in_two_different_objects_is_fine():
    body = request_body(credentials=[{"key": "Url", "value": "a"}, {"key": "BaseAddress", "value": "b"}])
    assert parse(body).credential_keys == ["Url", "BaseAddress"]


def test_a_leading_utf8_byte_order_mark_is_ignored():
    text = json.dumps(request_body())
    assert parse_request(b"\xef\xbb\xbf" + text.encode()).target.id == SP_ID
    assert parse_request("\ufeff" + text).target.id == SP_ID
    assert "the request is empty" in problem(b"\xef\xbb\xbf")


@pytest.mark.parametrize(
    "value", ["ticket-4711", "Störung 42", "工单-4711", "🎫 4711", "a" * 128, "x", "tab-free text"]
)
def test_a_correlation_id_is_any_printable_unicode_text(value):
    assert parse(request_body(correlationId=value)).correlation_id == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a" * 129,
        "tab\there",
        "nul\x00",
        "del\x7f",
        "c1\x85",
        "zero\u200bwidth",
        "bidi\u202eoverride",
        "bom\ufeff",
        "line\u2028sep",
        "para\u2029sep",
        "tag\U000e0001",
    ],
)
def test_a_correlation_id_with_control_or_format_characters_is_refused(value):
    assert "'correlationId' must be 1 to 128 printable characters" in problem(request_body(correlationId=value))


def test_the_openapi_pattern_for_correlation_ids_agrees_with_the_check():
    import re

    from shared.request import correlation_id_pattern

    pattern = re.compile(correlation_id_pattern())
    for good in ["ticket-4711", "Störung 42", "🎫 4711"]:
        assert pattern.match(good)
    for bad in ["tab\there", "zero\u200bwidth", "bidi\u202eoverride", "tag\U000e0001", "line\u2028sep"]:
        assert not pattern.match(bad)


@pytest.mark.parametrize(
    "body",
    [
        request_body(servicePrincipalId=SP_ID + "\n"),
        request_body(credentials=[{"key": "SecretToken", "secretRef": "scim-token\n"}]),
        request_body(steps=["restartJob"], jobId="scim.job\n"),
    ],
)
def test_a_trailing_newline_never_slips_past_a_pattern(body):
    from shared.references import parse_reference
    from shared.settings import Settings

    def check() -> None:
        request = parse_request(json.dumps(body).encode())
        for credential in request.credentials:
            if credential.secret_ref:
                parse_reference(credential.secret_ref, Settings.from_env({"KEY_VAULT_URI": "https://kv"}))

    with pytest.raises(InvalidRequest):
        check()


ON_DEMAND_STEPS = {"steps": ["provisionOnDemand"]}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"steps": ["acquireAccessToken", "rebootGraph"]}, "steps[1]: Input should be 'validateCredentials', "),
        ({"steps": "acquireAccessToken"}, "steps: Input should be a valid list"),
        ({"steps": []}, "steps: List should have at least 1 item after validation, not 0"),
        ({"credentials": ["BaseAddress"]}, "credentials[0]: Input should be a JSON object"),
        ({"credentials": [{"key": "Url", "secretRef": None}]}, "credentials[0]: 'secretRef' is null; leave it out"),
        ({"credentials": [{"value": "x"}]}, "credentials[0].key: required"),
        ({"credentials": [{"key": "Url", "secretRef": "x" * 2049}]}, "String should have at most 2048 characters"),
        ({**ON_DEMAND_STEPS, "onDemand": "rule"}, "onDemand: Input should be a JSON object"),
        (
            {**ON_DEMAND_STEPS, "onDemand": {"subjects": [{"objectId": "a", "objectTypeName": "User"}]}},
            "onDemand.ruleId: required",
        ),
        (
            {**ON_DEMAND_STEPS, "onDemand": {"ruleId": "r", "subjects": []}},
            "onDemand.subjects: List should have at least 1 item",
        ),
        (
            {
                **ON_DEMAND_STEPS,
                "onDemand": {"ruleId": "r", "subjects": [{"objectId": "a", "objectTypeName": "Device"}]},
            },
            "onDemand.subjects[0].objectTypeName: Input should be 'User' or 'Group'",
        ),
        (
            {**ON_DEMAND_STEPS, "onDemand": {"ruleId": "", "subjects": [{"objectId": "a", "objectTypeName": "User"}]}},
            "onDemand.ruleId: String should have at least 1 character",
        ),
        (
            {
                **ON_DEMAND_STEPS,
                "onDemand": {"ruleId": "r", "subjects": [{"objectId": "a", "objectTypeName": "User", "x": 1}]},
            },
            "onDemand.subjects[0].x: unknown field",
        ),
    ],
)
def test_nested_problems_name_their_path(overrides, expected):
    assert expected in problem(request_body(**overrides))


def test_null_is_not_a_boolean():
    assert "dryRun: Input should be a valid boolean" in problem({**request_body(), "dryRun": None})


def test_every_problem_is_reported_up_to_five():
    message = problem({"servicePrincipalId": 1, "applicationId": 2, "credentials": 3, "dryRun": 4, "jobId": 5, "x": 6})
    assert message.startswith("servicePrincipalId: Input should be a valid string; applicationId: Input should be")
    assert message.count(";") == 5
    assert message.endswith("; ...")


def test_a_well_formed_on_demand_request_parses():
    request = parse(
        request_body(
            steps=["provisionOnDemand"],
            onDemand={"ruleId": "rule-1", "subjects": [{"objectId": "u1", "objectTypeName": "Group"}]},
        )
    )
    assert request.on_demand is not None
    assert request.on_demand.rule_id == "rule-1"
    assert [(s.object_id, s.object_type_name) for s in request.on_demand.subjects] == [("u1", "Group")]
    assert request.steps == ["provisionOnDemand"]


# ---- one round: every problem of the body at once -------------------------------------------------------------


def test_every_problem_of_the_body_is_reported_in_one_round():
    message = problem({"servicePrincipalId": "nope"})
    assert message == "credentials: required; 'servicePrincipalId' must be a GUID (an object id)"
    message = problem(
        request_body(
            servicePrincipalId="nope",
            correlationId="tab\there",
            jobId="bad job",
            credentials=[{"key": "Url", "value": "a", "secretRef": "b"}],
        )
    )
    assert message.split("; ") == [
        "credentials[0]: credential 'Url' needs exactly one of 'value' or 'secretRef'",
        "'servicePrincipalId' must be a GUID (an object id)",
        "'correlationId' must be 1 to 128 printable characters: character 4 is a control, format or separator "
        "character (U+0009)",
        "'jobId' must be 1 to 256 letters, digits, dots, dashes or underscores",
    ]


def test_the_rules_across_fields_are_reported_beside_the_shape_problems():
    message = problem(
        request_body(
            credentials=[{"key": "Url", "value": "a"}, {"key": "Url", "value": "b"}],
            steps=["restartJob", "restartJob", "provisionOnDemand"],
            resetScope="ForceDeletes",
            dryRun="yes",
        )
    )
    assert "dryRun: Input should be a valid boolean" in message
    assert "credential key 'Url' appears more than once" in message
    assert "'steps' names restartJob more than once" in message
    assert "the provisionOnDemand step needs 'onDemand'" in message
    assert "'resetScope' ForceDeletes is refused" in message


def test_a_credential_reports_each_of_its_problems():
    message = problem(request_body(credentials=[{"key": "Nope", "value": "x" * 9000, "secretRef": " "}]))
    assert message.split("; ") == [
        "credentials[0].key: the key is not a synchronizationSecret value as Graph spells it",
        "credentials[0]: the credential needs exactly one of 'value' or 'secretRef'",
        "credentials[0]: the credential: 'value' is longer than 8 KiB",
        "credentials[0]: the credential: 'secretRef' is empty",
    ]


def test_a_key_outside_the_enum_is_named_by_its_position_never_quoted():
    pasted = "s3cr3t-pasted-where-the-key-goes-" + "x" * 40
    credentials = [
        {"key": "BaseAddress", "value": SCIM_URL},
        {"key": "SecretToken", "secretRef": "scim-token"},
        {"key": "Url", "value": "u"},
        {"key": pasted, "value": "v"},
    ]
    message = problem(request_body(credentials=credentials))
    assert message == "credentials[3].key: the key is not a synchronizationSecret value as Graph spells it"
    assert pasted[:8] not in message


# ---- JSON numbers: the request takes none; each is a 400 naming its field, whatever its size -------------------

HUGE = "1" * 5000  # Python's json refuses to convert more than 4,300 digits (ValueError)


@pytest.mark.parametrize(
    "number",
    [HUGE, "-" + HUGE, "1", "0", "-0", "1.5", "1e999999", "-1E-999", "NaN", "Infinity"],
    ids=lambda number: f"{len(number)}-digits" if len(number) > 100 else number,
)
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('{"servicePrincipalId": N, "credentials": []}', "servicePrincipalId: Input should be a valid string"),
        (
            '{"servicePrincipalId": "SP", "credentials": [{"key": "Url", "value": N}]}',
            "credentials[0].value: Input should be a valid string",
        ),
        ('{"servicePrincipalId": "SP", "credentials": [N]}', "credentials[0]: Input should be a JSON object"),
        ('{"servicePrincipalId": "SP", "credentials": N}', "credentials: Input should be a valid list"),
        ('{"servicePrincipalId": "SP", "credentials": [], "dryRun": N}', "dryRun: Input should be a valid boolean"),
        ('{"servicePrincipalId": "SP", "credentials": [], "steps": [N]}', "steps[0]: Input should be 'validate"),
        ('{"servicePrincipalId": "SP", "credentials": [], "count": N}', "count: unknown field"),
        ('{"servicePrincipalId": "SP", "credentials": [], "x": {"y": [N]}}', "x: unknown field"),
        (
            '{"servicePrincipalId": "SP", "credentials": [], "onDemand": {"ruleId": "r", '
            '"subjects": [{"objectId": N, "objectTypeName": "User"}]}}',
            "onDemand.subjects[0].objectId: Input should be a valid string",
        ),
        ("N", "the request must be a JSON object"),
    ],
)
def test_a_json_number_is_a_400_naming_its_field_whatever_its_size(number, template, expected):
    raw = template.replace("SP", SP_ID).replace("N", number)
    for form in (raw, raw.encode()):
        assert expected in problem(form)


def test_decode_json_keeps_numbers_as_written():
    from shared.request import JsonNumber, decode_json

    value = decode_json(b'{"a": [' + HUGE.encode() + b", 1.5, NaN]}")
    assert [type(item) for item in value["a"]] == [JsonNumber] * 3
    assert [item.text for item in value["a"]] == [HUGE, "1.5", "NaN"]
    assert HUGE not in repr(value)


@pytest.mark.parametrize("number", [10**5000, 1.5, float("inf"), True], ids=["huge", "float", "inf", "bool"])
def test_a_number_in_an_already_decoded_value_is_refused_naming_its_field(number):
    """Event Grid data arrives decoded: Python numbers are refused the same way (a bool is not a string either)."""
    body = request_body(correlationId=number)
    with pytest.raises(InvalidRequest, match=r"^correlationId: Input should be a valid string$"):
        parse_request(body)


# ---- jobId, resetScope, replaceSecrets, onDemand: checked when given, used only by their steps -----------------


def test_the_step_fields_are_checked_when_given_and_ignored_without_their_steps():
    on_demand = {"ruleId": "r", "subjects": [{"objectId": "u1", "objectTypeName": "User"}]}
    request = parse(request_body(jobId="scim.1", resetScope="Watermark", replaceSecrets=True, onDemand=on_demand))
    assert request.steps == ["acquireAccessToken"]
    assert (request.job_id, request.reset_scope, request.replace_secrets) == ("scim.1", "Watermark", True)
    assert "'jobId' must be 1 to 256 letters" in problem(request_body(jobId="bad job"))
    assert "'resetScope' ForceDeletes is refused" in problem(request_body(resetScope="ForceDeletes"))


def test_the_docs_say_the_step_fields_are_ignored_without_their_steps_not_refused():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for name in ("README.md", "docs/reference.md"):
        text = " ".join((root / name).read_text(encoding="utf-8").split())
        assert "refused (400) when no step uses them" not in text, name
        assert "only with a job step" not in text, name
        assert "only with `saveSecrets`" not in text, name
        assert "and only with it" not in text, name
        assert "used only by the steps that take them" in text, name


# ---- the step table: one row per step, the rest derived ------------------------------------------------------------


def test_the_step_table_is_the_one_source_of_the_step_facts():
    from shared import request, steps
    from shared.openapi import openapi_document

    names = tuple(row.name for row in STEP_TABLE)
    assert request.STEP_NAMES == names == tuple(steps.STEPS)
    assert openapi_document()["components"]["schemas"]["StepName"]["enum"] == list(names)
    assert {row.name for row in STEP_TABLE if row.needs_job} == request.JOB_STEPS
    assert {row.name for row in STEP_TABLE if row.changes_state} == steps.CHANGING_STEPS
    assert {row.name for row in STEP_TABLE if row.runs_in_dry_run} == steps.DRY_RUN_STEPS


@pytest.mark.parametrize("row", STEP_TABLE, ids=lambda row: row.name)
def test_an_application_target_is_refused_exactly_the_steps_that_need_a_service_principal(row):
    extra = {"onDemand": {"ruleId": "r", "subjects": [{"objectId": "a", "objectTypeName": "User"}]}}
    body = request_body(servicePrincipalId=None, applicationId=APP_ID, steps=[row.name], **extra)
    if row.needs_service_principal:
        assert f"step(s) {row.name} need a 'servicePrincipalId' target" in problem(body)
    else:
        assert parse(body).steps == [row.name]
