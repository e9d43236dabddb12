"""Azure Functions triggers: parse the trigger's input, call the pipeline, shape the reply. No logic here.

Indexing imports this file on every cold start, so it imports ``azure.functions`` and nothing heavy: each trigger
imports the module it calls (``from shared import http_api``) in its own body, typed, on its first invocation.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import azure.functions as func

from shared.settings import Settings, SettingsError
from shared.telemetry import hold_sdk_loggers

if TYPE_CHECKING:
    from shared.http_api import HttpReply
    from shared.pipeline import Pipeline
    from shared.request import TargetType
    from shared.store import ConnectionStore

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
hold_sdk_loggers()  # the worker set the root logger to INFO: the SDKs' HTTP logging must not feed telemetry

try:
    Settings.from_env()
except SettingsError as _exc:  # loud at start-up; /api/health says the same
    logging.getLogger("function_app").critical("%s", _exc)


def get_pipeline() -> Pipeline:
    from shared.runtime import get_pipeline as pipeline

    return pipeline()


def get_store() -> ConnectionStore:
    from shared.runtime import get_store as store

    return store()


def _reply(reply: HttpReply) -> func.HttpResponse:
    return func.HttpResponse(reply.body, status_code=reply.status, headers=reply.headers, mimetype=reply.mimetype)


async def _acquire_on_path(req: func.HttpRequest, target_type: TargetType) -> func.HttpResponse:
    from shared import http_api

    return _reply(
        await http_api.acquire(
            get_pipeline, req.get_body(), req.headers, target_type=target_type, target_id=req.route_params.get("id")
        )
    )


@app.route(route="servicePrincipals/{id}/synchronization/acquireAccessToken", methods=["POST"])
async def acquire_for_service_principal(req: func.HttpRequest) -> func.HttpResponse:
    return await _acquire_on_path(req, "servicePrincipal")


@app.route(route="applications/{id}/synchronization/acquireAccessToken", methods=["POST"])
async def acquire_for_application(req: func.HttpRequest) -> func.HttpResponse:
    return await _acquire_on_path(req, "application")


@app.route(route="acquireAccessToken", methods=["POST"])
async def acquire_access_token(req: func.HttpRequest) -> func.HttpResponse:
    from shared import http_api

    return _reply(await http_api.acquire(get_pipeline, req.get_body(), req.headers))


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health_check(req: func.HttpRequest) -> func.HttpResponse:
    from shared import http_api
    from shared.health import health

    status, payload = health()
    return _reply(http_api.json_reply(status, payload))


@app.route(route="health/detail", methods=["GET"])
async def health_detail(req: func.HttpRequest) -> func.HttpResponse:
    from shared import http_api

    return _reply(await http_api.health_detail(get_pipeline, req.params))


@app.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    from shared import http_api
    from shared.openapi import openapi_document

    return _reply(http_api.json_reply(200, openapi_document()))


@app.route(route="swagger.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def swagger(req: func.HttpRequest) -> func.HttpResponse:
    from shared import http_api
    from shared.swagger import swagger_document

    return _reply(http_api.json_reply(200, swagger_document()))


@app.route(route="connections/{name}", methods=["GET", "PUT", "DELETE"])
async def connection(req: func.HttpRequest) -> func.HttpResponse:
    from shared import http_api

    return _reply(
        await http_api.connection(
            get_pipeline, get_store, req.method, req.route_params.get("name"), req.get_body(), req.headers
        )
    )


@app.route(route="connections", methods=["GET"])
async def list_connections(req: func.HttpRequest) -> func.HttpResponse:
    from shared import http_api

    return _reply(await http_api.connections(get_pipeline, get_store, req.params, req.headers))


@app.route(route="connections/{name}/run", methods=["POST"])
async def run_connection(req: func.HttpRequest) -> func.HttpResponse:
    from shared import http_api

    return _reply(await http_api.run_connection(get_pipeline, get_store, req.route_params.get("name"), req.headers))


@app.queue_trigger(arg_name="msg", queue_name="%REQUEST_QUEUE_NAME%", connection="AzureWebJobsStorage")
async def acquire_from_queue(msg: func.QueueMessage) -> None:
    from shared import triggers

    await triggers.from_queue(get_pipeline, msg.get_body(), dequeue_count=msg.dequeue_count)


@app.event_grid_trigger(arg_name="event")
async def acquire_from_event_grid(event: func.EventGridEvent) -> None:
    from shared import triggers

    # The worker hands over an EventGridEvent or, for the CloudEvents schema, a CloudEvent.
    event_type = getattr(event, "event_type", None) or getattr(event, "type", None)
    topic = getattr(event, "topic", None) or getattr(event, "source", None)  # who vouches for a Key Vault event
    await triggers.from_event(
        get_pipeline, event_type=event_type, event_id=event.id, data=event.get_json(), get_store=get_store, topic=topic
    )


@app.timer_trigger(schedule="%SWEEP_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
async def sweep_connections(timer: func.TimerRequest) -> None:
    from shared import triggers

    await triggers.sweep(get_pipeline, get_store)


@app.queue_trigger(arg_name="msg", queue_name="%CONNECTION_QUEUE_NAME%", connection="AzureWebJobsStorage")
async def connection_work(msg: func.QueueMessage) -> None:
    from shared.fleet import from_work_queue

    await from_work_queue(get_pipeline, get_store, msg.get_body(), dequeue_count=msg.dequeue_count, message_id=msg.id)
