"""The Event Grid trigger with real azure.functions events, in both schemas, as the worker decodes them."""

import datetime
import json
import logging

import azure.functions as func
import pytest
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

import function_app
from shared.triggers import EVENT_TYPE, RetryableFailure
from tests.conftest import SP_ID, request_body

NOW = datetime.datetime.now(datetime.UTC)


def handler():
    return function_app.acquire_from_event_grid.build().get_user_function()


def event_grid_event(data, event_type=EVENT_TYPE) -> func.EventGridEvent:
    return func.EventGridEvent(
        id="evt-1",
        data=data,
        topic="/subscriptions/x/resourceGroups/rg/providers/Microsoft.EventGrid/topics/provisioning",
        subject="provisioning/ticket-4711",
        event_type=event_type,
        event_time=NOW,
        data_version="1.0",
    )


def cloud_event(data, event_type=EVENT_TYPE) -> func.CloudEvent:
    return func.CloudEvent(
        id="ce-1",
        source="/provisioning",
        type=event_type,
        specversion="1.0",
        data=data,
        time=NOW,
        subject="ticket-4711",
        datacontenttype="application/json",
    )


def from_wire(payload: dict):
    """What the Python worker builds from the JSON the host delivers."""
    return EventGridEventInConverter.decode(meta.Datum(json.dumps(payload), "json"), trigger_metadata={})


def test_the_event_grid_trigger_is_declared(app_functions):
    [function] = [f for f in app_functions if f.get_trigger().type == "eventGridTrigger"]
    assert function.get_function_name() == "acquire_from_event_grid"


@pytest.mark.parametrize("make", [event_grid_event, cloud_event], ids=["event-grid-schema", "cloudevents-schema"])
async def test_a_request_event_is_authorized(app_env, outcomes, make):
    await handler()(make(request_body()))
    [outcome] = outcomes()
    assert (outcome["outcome"], outcome["trigger"]) == ("succeeded", "eventGrid")
    assert app_env.graph.authorized[0][1] == SP_ID


@pytest.mark.parametrize(
    "payload",
    [
        {
            "id": "1",
            "topic": "t",
            "subject": "s",
            "eventType": EVENT_TYPE,
            "eventTime": NOW.isoformat(),
            "dataVersion": "1.0",
            "data": request_body(dryRun=True),
        },
        {
            "specversion": "1.0",
            "id": "2",
            "source": "/provisioning",
            "type": EVENT_TYPE,
            "time": NOW.isoformat(),
            "datacontenttype": "application/json",
            "data": request_body(dryRun=True),
        },
    ],
    ids=["event-grid-schema", "cloudevents-schema"],
)
async def test_events_decoded_from_the_wire_in_either_schema_are_handled(app_env, outcomes, payload):
    await handler()(from_wire(payload))
    assert [o["outcome"] for o in outcomes()] == ["validated"]


async def test_data_sent_as_a_json_string_is_taken(app_env, outcomes):
    await handler()(event_grid_event(json.dumps(request_body(dryRun=True))))
    assert [o["outcome"] for o in outcomes()] == ["validated"]


async def test_other_event_types_are_logged_and_ignored(app_env, outcomes, caplog):
    caplog.set_level(logging.INFO, logger="shared.triggers")
    await handler()(event_grid_event(request_body(), event_type="Microsoft.Storage.BlobCreated"))
    await handler()(cloud_event(request_body(), event_type="Microsoft.Resources.ResourceWriteSuccess"))
    assert outcomes() == []
    assert app_env.graph.seen == []
    assert "ignoring Event Grid event evt-1 of type 'Microsoft.Storage.BlobCreated'" in caplog.text


@pytest.mark.parametrize("data", [None, "not json", ["a"], {"credentials": "x"}])
async def test_a_malformed_request_event_is_rejected_not_retried(app_env, outcomes, data):
    await handler()(event_grid_event(data))
    [outcome] = outcomes()
    assert (outcome["outcome"], outcome["retryable"]) == ("rejected", False)


async def test_a_failed_request_event_raises_so_event_grid_retries(app_env, outcomes):
    app_env.identity.graph_roles = []
    with pytest.raises(RetryableFailure, match="Authorization_RequestDenied"):
        await handler()(cloud_event(request_body()))
    assert [o["outcome"] for o in outcomes()] == ["failed"]
