"""A JSON number where the request takes none (any number, a 5,000-digit integer included) is a 400 naming the field
on every trigger and the connections routes: rejected, never retried, never a 500 (docs/reference.md, "The request")."""

import json
import uuid

import pytest

import function_app
from tests.conftest import request_body
from tests.integration.test_connections import http, put
from tests.triggers.test_event_grid_trigger import event_grid_event
from tests.triggers.test_http_trigger import call_body, call_sp, path_body, problem_of
from tests.triggers.test_queue_trigger import queue_env  # noqa: F401 - the fixture

HUGE = "1" * 5000  # Python's json refuses to convert more than 4,300 digits (ValueError)
FIELD = "credentials[0].value: Input should be a valid string"


def with_number(body: dict, number: str = HUGE) -> bytes:
    """The body with its first credential's value replaced by a bare JSON number."""
    body = {**body, "credentials": [{"key": "BaseAddress", "value": "NUMBER"}, *body["credentials"][1:]]}
    return json.dumps(body).replace('"NUMBER"', number).encode()


@pytest.mark.parametrize("number", [HUGE, "1e999999", "NaN", "7"], ids=["5000-digits", "huge-float", "nan", "seven"])
async def test_the_http_routes_answer_400_naming_the_field(app_env, outcomes, number):
    for response in (await call_sp(with_number(path_body(), number)), await call_body(with_number(request_body()))):
        problem = problem_of(response, 400)
        assert (problem["outcome"], problem["retryable"]) == ("rejected", False)
        assert FIELD in problem["detail"]
    assert [o["error"]["code"] for o in outcomes()] == ["invalidRequest", "invalidRequest"]
    assert app_env.graph.seen == []


async def test_a_queue_message_is_rejected_once_not_retried_into_the_poison_queue(queue_env, outcomes):  # noqa: F811
    queue_env.queue.send_message(with_number(request_body()).decode())
    await queue_env.drain()
    assert queue_env.remaining() == []
    assert queue_env.poisoned() == []
    [outcome] = outcomes()
    assert (outcome["outcome"], outcome["retryable"], outcome["dequeueCount"]) == ("rejected", False, 1)
    assert FIELD in outcome["error"]["message"]


@pytest.mark.parametrize(
    "data",
    [
        with_number(request_body()).decode(),  # data as JSON text: the app decodes it
        {**request_body(), "credentials": [{"key": "BaseAddress", "value": 10**5000}]},  # decoded by the worker
    ],
    ids=["json-text", "decoded"],
)
async def test_an_event_grid_event_is_rejected_not_retried(app_env, outcomes, data):
    handler = function_app.acquire_from_event_grid.build().get_user_function()
    await handler(event_grid_event(data))  # returns: Event Grid gets a success and neither retries nor dead-letters
    [outcome] = outcomes()
    assert (outcome["outcome"], outcome["retryable"]) == ("rejected", False)
    assert FIELD in outcome["error"]["message"]


@pytest.fixture
def table(app_env, azurite, monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("CONNECTIONS_TABLE", "num" + uuid.uuid4().hex[:12])
    return app_env


async def test_a_connection_put_answers_400_naming_the_field(table):
    problem = problem_of(await put("contoso-scim", with_number(request_body(correlationId=None))), 400)
    assert FIELD in problem["detail"]
    assert problem["retryable"] is False
    handler = function_app.connection.build().get_user_function()
    missing = await handler(http("GET", "connections/contoso-scim", route_params={"name": "contoso-scim"}))
    assert missing.status_code == 404  # nothing was stored
