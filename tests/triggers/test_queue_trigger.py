"""The queue trigger against Azurite: enqueue with the CLI, receive, hand to the decorated function."""

import base64
import json
import os
import subprocess
import sys
import uuid

import pytest

import function_app
from shared import runtime
from shared.queueing import encode_message
from standins.queue_host import QUEUES, QueueHost
from tests.conftest import CANARIES, SP_ID, UNKNOWN_ID, request_body

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def queue_env(app_env, azurite, monkeypatch):
    name = f"acquire-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("REQUEST_QUEUE_NAME", name)
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    handler = function_app.acquire_from_queue.build().get_user_function()
    host = QueueHost(azurite.connection_string, name, handler)
    host.create()
    return host


def enqueue_cli(request: dict, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared", "enqueue", "--request", "-", *extra],
        cwd=ROOT,
        env=dict(os.environ),
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_queue_triggers_bind_the_request_and_connection_work_queue_settings(app_functions):
    queues = {
        f.get_function_name(): (f.get_trigger().queue_name, f.get_trigger().connection)
        for f in app_functions
        if f.get_trigger().type == "queueTrigger"
    }
    assert queues == {
        "acquire_from_queue": ("%REQUEST_QUEUE_NAME%", "AzureWebJobsStorage"),
        "connection_work": ("%CONNECTION_QUEUE_NAME%", "AzureWebJobsStorage"),
    }


def test_host_json_sets_the_queue_behaviour_deliberately():
    assert QUEUES == {
        "messageEncoding": "none",
        "maxDequeueCount": 5,
        "visibilityTimeout": "00:02:00",
        "batchSize": 8,
        "newBatchThreshold": 8,
        "maxPollingInterval": "00:00:10",
    }


async def test_a_request_enqueued_with_the_cli_is_authorized_and_completed(queue_env, outcomes):
    result = enqueue_cli(request_body())
    assert result.returncode == 0, result.stderr
    receipt = json.loads(result.stdout)
    assert receipt["queue"] == queue_env.queue.queue_name
    [stored] = queue_env.remaining()
    assert json.loads(base64.b64decode(stored)) == request_body()  # base64, as the host expects by default
    await queue_env.drain()
    assert queue_env.remaining() == []
    assert queue_env.poisoned() == []
    [outcome] = outcomes()
    assert (outcome["outcome"], outcome["trigger"], outcome["dequeueCount"]) == ("succeeded", "queue", 1)
    assert outcome["target"]["id"] == SP_ID


async def test_plain_json_messages_are_taken_too(queue_env, outcomes):
    queue_env.queue.send_message(json.dumps(request_body(dryRun=True)))
    await queue_env.drain()
    assert [o["outcome"] for o in outcomes()] == ["validated"]
    assert queue_env.remaining() == []


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("this is not json", "neither JSON nor base64-encoded JSON"),
        ("!!!not-base64!!!", "neither JSON nor base64-encoded JSON"),
        (base64.b64encode(b"not json either").decode(), "not valid JSON"),
        (base64.b64encode(b"\xff\xfe\x00").decode(), "base64 content is not UTF-8"),
        (base64.b64encode(json.dumps({"credentials": []}).encode()).decode(), "credentials"),
        (json.dumps(request_body(extra=True)), "extra: unknown field"),
    ],
)
async def test_a_malformed_message_is_rejected_once_with_an_outcome_and_not_retried(
    queue_env, outcomes, message, expected
):
    queue_env.queue.send_message(message)
    await queue_env.drain()
    assert queue_env.remaining() == []
    assert queue_env.poisoned() == []
    [outcome] = outcomes()
    assert (outcome["outcome"], outcome["dequeueCount"], outcome["retryable"]) == ("rejected", 1, False)
    assert expected in outcome["error"]["message"]


async def test_a_rejected_request_completes_the_message(queue_env, outcomes):
    queue_env.queue.send_message(
        encode_message(json.dumps(request_body(credentials=[{"key": "SecretToken", "secretRef": "missing"}])))
    )
    await queue_env.drain()
    assert queue_env.remaining() == []
    assert queue_env.poisoned() == []
    assert [(o["outcome"], o["error"]["code"]) for o in outcomes()] == [("rejected", "SecretNotFound")]


async def test_a_failed_request_is_retried_then_moved_to_the_poison_queue(queue_env, app_env, outcomes):
    app_env.identity.graph_roles = []  # Graph refuses the app's identity: failed, retryable
    message = encode_message(json.dumps(request_body()))
    queue_env.queue.send_message(message)
    await queue_env.drain()
    assert queue_env.remaining() == []
    assert queue_env.poisoned() == [message]  # nothing lost: the request waits in <queue>-poison
    emitted = outcomes()
    assert [o["dequeueCount"] for o in emitted] == [1, 2, 3, 4, 5]
    assert {(o["outcome"], o["retryable"]) for o in emitted} == {("failed", True)}
    assert len(queue_env.errors) == 5
    assert "Authorization_RequestDenied" in str(queue_env.errors[0])


async def test_a_failure_that_passes_succeeds_on_a_later_dequeue(queue_env, app_env, outcomes):
    app_env.identity.graph_roles = []
    queue_env.queue.send_message(encode_message(json.dumps(request_body())))
    await queue_env.poll_once()
    await queue_env.poll_once()
    app_env.identity.header_secret += "-rotated"  # a new worker, with the role now granted
    os.environ["IDENTITY_HEADER"] = app_env.identity.header_secret
    runtime.reset()
    app_env.identity.graph_roles = ["Synchronization.ReadWrite.All"]
    await queue_env.drain()
    assert [(o["outcome"], o["dequeueCount"]) for o in outcomes()] == [("failed", 1), ("failed", 2), ("succeeded", 3)]
    assert queue_env.remaining() == []
    assert queue_env.poisoned() == []


async def test_a_bad_app_setting_keeps_the_message_for_retry(queue_env, outcomes, monkeypatch):
    monkeypatch.setenv("GRAPH_TIMEOUT_SECONDS", "soon")
    queue_env.queue.send_message(encode_message(json.dumps(request_body())))
    await queue_env.poll_once()
    assert len(queue_env.remaining()) == 1
    [outcome] = outcomes()
    assert (outcome["outcome"], outcome["error"]["code"], outcome["dequeueCount"]) == (
        "failed",
        "configurationError",
        1,
    )


async def test_no_canary_reaches_the_queue_or_the_outcomes(queue_env, outcomes, all_logs):
    queue_env.queue.send_message(encode_message(json.dumps(request_body())))
    await queue_env.drain()
    text = json.dumps(outcomes()) + "".join(r.getMessage() for r in all_logs.records)
    for canary in CANARIES:
        assert canary not in text


def test_enqueue_refuses_an_invalid_request_and_queues_nothing(queue_env):
    result = enqueue_cli({"credentials": [{"key": "Nope", "value": "x"}]})
    assert result.returncode == 2
    assert "invalid request" in result.stderr
    assert queue_env.remaining() == []


@pytest.mark.parametrize(
    ("credentials", "env", "code"),
    [
        ([{"key": "SecretToken", "value": "inline-secret-xyz-0001"}], {}, "inlineSecretNotAllowed"),
        (
            [{"key": "SecretToken", "secretRef": "https://other-kv.vault.azure.net/secrets/x"}],
            {},
            "vaultHostNotAllowed",
        ),
        ([{"key": "SecretToken", "secretRef": "scim-token"}], {"ALLOWED_TARGETS": UNKNOWN_ID}, "targetNotAllowed"),
    ],
)
def test_enqueue_applies_the_apps_policy_and_queues_nothing_it_would_refuse(
    queue_env, monkeypatch, credentials, env, code
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = enqueue_cli(request_body(credentials=credentials))
    assert result.returncode == 3, result.stderr
    assert f"refused: {code}" in result.stderr
    assert queue_env.remaining() == []
    assert "inline-secret-xyz" not in result.stderr + result.stdout


def test_enqueue_refuses_an_address_with_user_information(queue_env):
    body = request_body(credentials=[{"key": "BaseAddress", "value": "https://u:pw-9876@scim.example.com/v2"},
                                     {"key": "SecretToken", "secretRef": "scim-token"}])  # fmt: skip
    result = enqueue_cli(body)
    assert result.returncode == 2
    assert "pw-9876" not in result.stderr
    assert queue_env.remaining() == []


def test_enqueue_says_so_when_the_queue_does_not_exist(queue_env, monkeypatch):
    monkeypatch.setenv("REQUEST_QUEUE_NAME", "no-such-queue")
    result = enqueue_cli(request_body())
    assert result.returncode == 4
    assert "does not exist" in result.stderr


def test_enqueue_needs_a_queue(queue_env, monkeypatch):
    monkeypatch.delenv("AzureWebJobsStorage")
    result = enqueue_cli(request_body())
    assert result.returncode == 2
    assert "no queue given" in result.stderr
