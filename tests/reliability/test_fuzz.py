"""Property-based fuzzing of every trigger's input: thousands of malformed bodies, headers, messages and events.

Whatever arrives, the app answers with a status of the contract (never 500), a JSON body (problem+json for
errors) and no traceback; the queue and Event Grid triggers either settle the message with an outcome or raise
the one retryable failure, and nothing else. The examples are derandomized so that CI runs the same thousands.
"""

import asyncio
import base64
import json
import string
import uuid

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import function_app
from shared import runtime
from shared.keys import SYNCHRONIZATION_SECRET_KEYS
from shared.request import STEP_NAMES
from shared.triggers import EVENT_TYPE, RetryableFailure

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CONTRACT_STATUSES = {200, 400, 403, 404, 422, 502, 503}

# Numbers Python's json cannot or will not convert (over 4,300 digits) or converts to infinities: placed in a body as
# a marker string, written into the JSON text by dump().
RAW_NUMBERS = ("1" * 5000, "-" + "9" * 4400, "1e999999", "-1E-999999", "NaN", "-Infinity")
raw_numbers = st.sampled_from(range(len(RAW_NUMBERS))).map(lambda index: f"\x00number{index}\x00")


def dump(value: object) -> bytes:
    """JSON text of a generated value, its raw-number markers replaced by the numbers themselves."""
    text = json.dumps(value)
    for index, number in enumerate(RAW_NUMBERS):
        text = text.replace(json.dumps(f"\x00number{index}\x00"), number)
    return text.encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40) | raw_numbers,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=25,
)
guids = st.uuids().map(str)
ids = st.one_of(guids, st.text(max_size=40), st.integers(), st.none())
keys = st.one_of(st.sampled_from(SYNCHRONIZATION_SECRET_KEYS), st.text(max_size=30))
references = st.one_of(
    st.text(max_size=60),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(/[0-9a-f]{32})?", fullmatch=True),
    st.builds(
        lambda host, name: f"https://{host}/secrets/{name}",
        st.text(string.ascii_lowercase + ".:", max_size=30),
        st.text(max_size=20),
    ),
    st.builds(
        lambda v, n: f"@Microsoft.KeyVault(VaultName={v};SecretName={n})", st.text(max_size=20), st.text(max_size=20)
    ),
)
credentials = st.fixed_dictionaries(
    {"key": keys},
    optional={"value": st.one_of(st.text(max_size=50), json_values), "secretRef": references, "extra": json_values},
)
near_valid = st.fixed_dictionaries(
    {},
    optional={
        "servicePrincipalId": ids,
        "applicationId": ids,
        "credentials": st.one_of(st.lists(credentials, max_size=6), json_values),
        "correlationId": st.one_of(st.text(max_size=140), json_values),
        "dryRun": st.one_of(st.booleans(), json_values),
        "unexpected": json_values,
        "steps": st.one_of(
            st.lists(
                st.sampled_from([*STEP_NAMES, "bogus"]),
                max_size=7,
            ),
            json_values,
        ),
        "jobId": st.one_of(st.text(max_size=60), json_values),
        "resetScope": st.one_of(
            st.text("WatermarkEscrowsQuarantineStateFullForceDeletesNone, ", max_size=50), json_values
        ),
        "replaceSecrets": st.one_of(st.booleans(), json_values),
        "onDemand": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=600),
    json_values.map(dump),
    near_valid.map(dump),
)


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def fuzz_env(app_env, monkeypatch, loop):
    monkeypatch.setenv("GRAPH_MAX_ATTEMPTS", "1")
    yield app_env
    loop.run_until_complete(runtime.aclose())


def check_reply(response: func.HttpResponse) -> None:
    assert response.status_code in CONTRACT_STATUSES, response.get_body()
    text = response.get_body().decode("utf-8")
    assert "Traceback" not in text
    payload = json.loads(text)
    assert payload["outcome"] in {"succeeded", "validated", "rejected", "failed"}
    if response.status_code != 200:
        assert response.mimetype == "application/problem+json"
        assert payload["status"] == response.status_code
        assert payload["error"]["message"]


def post(route: str, body: bytes, route_params=None, headers=None) -> func.HttpRequest:
    return func.HttpRequest(
        "POST", f"https://app.example/api/{route}", route_params=route_params or {}, headers=headers or {}, body=body
    )


@settings(FUZZ, max_examples=700)
@given(body=bodies)
def test_the_whole_request_route_never_fails_on_any_body(fuzz_env, loop, body):
    handler = function_app.acquire_access_token.build().get_user_function()
    check_reply(loop.run_until_complete(handler(post("acquireAccessToken", body))))


@settings(FUZZ, max_examples=700)
@given(
    body=bodies,
    target=st.one_of(guids, st.text(max_size=50)),
    route=st.sampled_from(["acquire_for_service_principal", "acquire_for_application"]),
)
def test_the_path_routes_never_fail_on_any_body_or_id(fuzz_env, loop, body, target, route):
    handler = getattr(function_app, route).build().get_user_function()
    request = post(f"x/{target}/synchronization/acquireAccessToken", body, route_params={"id": target})
    check_reply(loop.run_until_complete(handler(request)))


principals = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode()),
    json_values.map(lambda v: base64.b64encode(json.dumps(v).encode()).decode()),
    st.lists(
        st.fixed_dictionaries({"typ": st.sampled_from(["roles", "name", "x"]), "val": json_values}), max_size=4
    ).map(lambda c: base64.b64encode(json.dumps({"claims": c}).encode()).decode()),
)


@settings(FUZZ, max_examples=300)
@given(
    principal=principals,
    extra=st.dictionaries(
        st.text(string.ascii_letters + "-", min_size=1, max_size=20), st.text(max_size=40), max_size=4
    ),
)
def test_caller_role_checks_never_fail_on_any_principal_header(fuzz_env, loop, monkeypatch, principal, extra):
    monkeypatch.setenv("CALLER_AUTH", "entra")
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")  # App Service Authentication on, as CALLER_AUTH=entra needs
    handler = function_app.acquire_access_token.build().get_user_function()
    body = json.dumps(
        {"servicePrincipalId": str(uuid.uuid4()), "credentials": [{"key": "Url", "value": "x"}], "dryRun": True}
    ).encode()
    response = loop.run_until_complete(
        handler(post("acquireAccessToken", body, headers={**extra, "X-MS-CLIENT-PRINCIPAL": principal}))
    )
    check_reply(response)
    assert response.status_code == 403


messages = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=300).map(str.encode),
    bodies,  # plain JSON, which the trigger takes too
    bodies.map(lambda b: base64.b64encode(b)),
)


@settings(FUZZ, max_examples=600)
@given(body=messages, dequeue_count=st.integers(min_value=1, max_value=5))
def test_the_queue_trigger_settles_or_retries_any_message(fuzz_env, loop, body, dequeue_count):
    handler = function_app.acquire_from_queue.build().get_user_function()
    message = QueueMessage(id="m", body=body, dequeue_count=dequeue_count, pop_receipt="p")
    try:
        assert loop.run_until_complete(handler(message)) is None
    except RetryableFailure as failure:
        assert failure.outcome.outcome == "failed"
        assert failure.outcome.error_code != "internalError", failure.outcome.error_message  # a bug, retried


@settings(FUZZ, max_examples=500)
@given(
    data=st.one_of(
        json_values,
        near_valid,
        st.text(max_size=200),
        near_valid.map(lambda v: dump(v).decode()),  # data as JSON text, raw numbers and all
        near_valid.map(lambda v: {**v, "correlationId": 10**5000}),  # as a worker without the digit limit decodes
    ),
    event_type=st.one_of(st.just(EVENT_TYPE), st.text(max_size=40), st.none()),
    schema=st.sampled_from(["eventgrid", "cloudevents"]),
)
def test_the_event_grid_trigger_settles_or_retries_any_event(fuzz_env, loop, data, event_type, schema):
    handler = function_app.acquire_from_event_grid.build().get_user_function()
    if schema == "eventgrid":
        event = func.EventGridEvent(
            id="e", data=data, topic="t", subject="s", event_type=event_type, event_time=None, data_version="1.0"
        )
    else:
        event = func.CloudEvent(id="e", source="/s", type=event_type, specversion="1.0", data=data)
    try:
        assert loop.run_until_complete(handler(event)) is None
    except RetryableFailure as failure:
        assert failure.outcome.outcome == "failed"
        assert failure.outcome.error_code != "internalError", failure.outcome.error_message  # a bug, retried


connection_names = st.one_of(st.from_regex(r"[a-z0-9-]{1,63}", fullmatch=True), st.text(max_size=70))


@settings(FUZZ, max_examples=150)
@given(name=connection_names, body=bodies, verb=st.sampled_from(["PUT", "GET", "DELETE"]))
def test_the_connection_routes_never_fail_on_any_name_or_body(fuzz_env, azurite, monkeypatch, loop, name, body, verb):
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("CONNECTIONS_TABLE", "fuzzconnections")
    handler = function_app.connection.build().get_user_function()
    request = func.HttpRequest(
        verb, f"https://app.example/api/connections/{name}", route_params={"name": name}, body=body
    )
    response = loop.run_until_complete(handler(request))
    assert response.status_code in {200, 201, 204, 400, 403, 404, 412}, response.get_body()
    if response.status_code >= 400:
        problem = json.loads(response.get_body())
        assert response.mimetype == "application/problem+json"
        assert problem["status"] == response.status_code
        assert problem["error"]["message"]
        assert "Traceback" not in response.get_body().decode()


key_vault_data = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "Id": st.one_of(st.text(max_size=80), st.just("https://127.0.0.1:1/secrets/scim-token/abc"), json_values),
            "VaultName": st.one_of(st.text(max_size=30), json_values),
            "ObjectType": st.one_of(st.sampled_from(["Secret", "Key", " secret "]), json_values),
            "ObjectName": st.one_of(st.text(max_size=30), json_values),
            "Version": st.one_of(st.text(max_size=40), json_values),
            "NBF": json_values,
            "EXP": json_values,
        },
    ),
)


@settings(FUZZ, max_examples=200)
@given(
    data=key_vault_data,
    event_type=st.sampled_from(
        [
            "Microsoft.KeyVault.SecretNewVersionCreated",
            "Microsoft.KeyVault.SecretNearExpiry",
            "Microsoft.KeyVault.SecretExpired",
        ]
    ),
)
def test_key_vault_events_never_fail_except_to_be_retried(fuzz_env, azurite, monkeypatch, loop, data, event_type):
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("CONNECTIONS_TABLE", "fuzzrotation")
    handler = function_app.acquire_from_event_grid.build().get_user_function()
    event = func.EventGridEvent(
        id="e", data=data, topic="t", subject="s", event_type=event_type, event_time=None, data_version="1"
    )
    try:
        loop.run_until_complete(handler(event))
    except RetryableFailure:
        pass
