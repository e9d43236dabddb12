"""The credential lifecycle steps against the Graph stand-in's synchronization API, through the HTTP routes, the
queue trigger and the command line: what each step sends, what it refuses, what Graph saw, and the outcome."""

import json

import pytest
from azure.functions.queue import QueueMessage

import function_app
from shared.telemetry import dimensions
from shared.triggers import RetryableFailure
from standins.base import Reply
from standins.graph import new_job, quarantine
from tests.conftest import APP_ID, CANARIES, CANARY_PASSWORD, CANARY_TOKEN, SCIM_URL, SP_ID, request_body
from tests.test_cli import cli
from tests.triggers.test_http_trigger import call_app, call_body, call_sp, path_body, payload

JOB = "scim.0b9e8b8a8f7e4f6c9d0a3d3c6f6f1a11.7e4d9f3a-1c2b-4a5d-8e6f-0a1b2c3d4e5f"
OTHER_JOB = "scim.0b9e8b8a8f7e4f6c9d0a3d3c6f6f1a11.11111111-2222-4333-8444-555555555555"
OLD_TOKEN = "old-scim-token-value-0042"


@pytest.fixture
def graph(app_env):
    """One SCIM job, Active; the saved set holds the address and an old token."""
    stand_in = app_env.graph
    stand_in.jobs[SP_ID] = {JOB: new_job(JOB)}
    stand_in.stored_secrets[SP_ID] = [
        {"key": "BaseAddress", "value": SCIM_URL},
        {"key": "SecretToken", "value": OLD_TOKEN},
    ]
    return stand_in


def actions(graph, name=None):
    return [a for a in graph.actions if name is None or a[0] == name]


def statuses(outcome):
    return [(s["name"], s["status"]) for s in outcome["steps"]]


async def test_a_request_without_steps_behaves_as_before(graph):
    outcome = payload(await call_sp(path_body()))
    assert outcome["outcome"] == "succeeded"
    assert statuses(outcome) == [("acquireAccessToken", "succeeded")]
    assert outcome["job"] is None
    assert outcome["graph"]["status"] == 204
    assert graph.actions == []  # no job or secrets call


async def test_the_full_sequence_validates_saves_and_restarts(graph):
    body = path_body(steps=["validateCredentials", "saveSecrets", "restartJob"], correlationId="rotate-1")
    response = await call_sp(body)
    outcome = payload(response)
    assert response.status_code == 200, outcome
    assert statuses(outcome) == [
        ("validateCredentials", "succeeded"),
        ("saveSecrets", "succeeded"),
        ("restartJob", "succeeded"),
    ]
    assert [a[0] for a in graph.actions] == ["validateCredentials", "saveSecrets", "restart"]
    assert graph.actions[2] == ("restart", SP_ID, JOB, "QuarantineState")
    assert graph.stored_secrets[SP_ID] == [
        {"key": "BaseAddress", "value": SCIM_URL},
        {"key": "SecretToken", "value": CANARY_TOKEN},
    ]
    assert outcome["job"] == {"id": JOB, "status": "Active", "quarantine": None}
    assert outcome["graph"]["status"] == 204  # the restart, the last step's call
    assert outcome["steps"][2]["result"] == {"resetScope": "QuarantineState"}
    text = json.dumps(outcome)
    for canary in CANARIES:
        assert canary not in text


async def test_validate_credentials_sends_the_given_credentials_never_the_saved_ones(graph):
    await call_sp(path_body(steps=["validateCredentials"]))
    [seen] = [s for s in graph.seen if s.path.endswith("/validateCredentials")]
    assert seen.path == f"/v1.0/servicePrincipals/{SP_ID}/synchronization/jobs/{JOB}/validateCredentials"
    assert seen.json() == {
        "useSavedCredentials": False,
        "credentials": [{"key": "BaseAddress", "value": SCIM_URL}, {"key": "SecretToken", "value": CANARY_TOKEN}],
    }


async def test_rejected_credentials_stop_the_sequence_before_anything_is_written(graph):
    graph.service_principals[SP_ID] = {"SecretToken": "what the SCIM app really wants"}
    response = await call_sp(path_body(steps=["validateCredentials", "saveSecrets", "restartJob"]))
    outcome = payload(response)
    assert response.status_code == 422
    assert outcome["error"]["code"] == "CredentialValidationUnavailable"
    assert statuses(outcome) == [
        ("validateCredentials", "rejected"),
        ("saveSecrets", "notRun"),
        ("restartJob", "notRun"),
    ]
    assert outcome["steps"][0]["error"]["code"] == "CredentialValidationUnavailable"
    assert actions(graph) == []
    assert graph.stored_secrets[SP_ID][1]["value"] == OLD_TOKEN


async def test_a_dry_run_is_a_connection_test_that_writes_nothing(graph):
    body = path_body(steps=["validateCredentials", "saveSecrets", "startJob", "restartJob"], dryRun=True)
    outcome = payload(await call_sp(body))
    assert outcome["outcome"] == "validated"
    assert statuses(outcome) == [
        ("validateCredentials", "succeeded"),
        ("saveSecrets", "skipped"),
        ("startJob", "skipped"),
        ("restartJob", "skipped"),
    ]
    assert [a[0] for a in graph.actions] == ["validateCredentials"]
    assert {s.method for s in graph.seen} <= {"GET", "POST"}
    assert not [s for s in graph.seen if s.method == "PUT" or s.path.endswith(("/start", "/restart"))]
    assert graph.stored_secrets[SP_ID][1]["value"] == OLD_TOKEN


# ---- saveSecrets: read-modify-write --------------------------------------------------------------------------------


async def test_save_keeps_stored_non_sensitive_keys_and_replaces_the_named_ones(graph):
    graph.stored_secrets[SP_ID].append({"key": "UserName", "value": "provisioning-bot"})
    outcome = payload(await call_sp(path_body(steps=["saveSecrets"])))
    assert outcome["outcome"] == "succeeded"
    saved = {s["key"]: s["value"] for s in graph.stored_secrets[SP_ID]}
    assert saved == {"BaseAddress": SCIM_URL, "SecretToken": CANARY_TOKEN, "UserName": "provisioning-bot"}
    [get, put] = [s for s in graph.seen if s.path.endswith("/synchronization/secrets")]
    assert (get.method, put.method) == ("GET", "PUT")
    assert set(put.json()) == {"value"}


async def test_save_refuses_to_drop_a_stored_sensitive_key_the_request_does_not_name(graph):
    graph.stored_secrets[SP_ID].append({"key": "Password", "value": "stored-password-1234"})
    response = await call_sp(path_body(steps=["saveSecrets"]))
    outcome = payload(response)
    assert response.status_code == 422
    assert outcome["error"]["code"] == "secretsIncomplete"
    assert "Password" in outcome["error"]["message"]
    assert "stored-password-1234" not in json.dumps(outcome)
    assert not [s for s in graph.seen if s.method == "PUT"]


async def test_save_with_every_sensitive_key_named_succeeds(graph, app_env):
    graph.stored_secrets[SP_ID].append({"key": "Password", "value": "stored-password-1234"})
    credentials = [
        {"key": "SecretToken", "secretRef": "scim-token"},
        {"key": "Password", "secretRef": "scim-password"},
    ]
    outcome = payload(await call_sp(path_body(credentials=credentials, steps=["saveSecrets"])))
    assert outcome["outcome"] == "succeeded"
    saved = {s["key"]: s["value"] for s in graph.stored_secrets[SP_ID]}
    assert saved == {"BaseAddress": SCIM_URL, "SecretToken": CANARY_TOKEN, "Password": CANARY_PASSWORD}


async def test_replace_secrets_replaces_the_whole_set_without_reading_it(graph):
    graph.stored_secrets[SP_ID].append({"key": "Password", "value": "stored-password-1234"})
    credentials = [{"key": "SecretToken", "secretRef": "scim-token"}]
    body = path_body(credentials=credentials, steps=["saveSecrets"], replaceSecrets=True)
    outcome = payload(await call_sp(body))
    assert outcome["outcome"] == "succeeded"
    assert graph.stored_secrets[SP_ID] == [{"key": "SecretToken", "value": CANARY_TOKEN}]
    assert not [s for s in graph.seen if s.method == "GET"]


async def test_the_stored_set_is_read_on_beta_where_v1_does_not_serve_it(graph):
    graph.secrets_readable_on = {"beta"}
    outcome = payload(await call_sp(path_body(steps=["saveSecrets"])))
    assert outcome["outcome"] == "succeeded"
    gets = [s.path for s in graph.seen if s.method == "GET"]
    assert gets == [
        f"/v1.0/servicePrincipals/{SP_ID}/synchronization/secrets",
        f"/beta/servicePrincipals/{SP_ID}/synchronization/secrets",
    ]


async def test_an_unreadable_stored_set_is_saved_only_with_replace_secrets(graph):
    graph.secrets_readable_on = set()
    refused = payload(await call_sp(path_body(steps=["saveSecrets"])))
    assert refused["error"]["code"] == "secretsUnreadable"
    assert not [s for s in graph.seen if s.method == "PUT"]
    replaced = payload(await call_sp(path_body(steps=["saveSecrets"], replaceSecrets=True)))
    assert replaced["outcome"] == "succeeded"


# ---- jobs ------------------------------------------------------------------------------------------------------------


async def test_start_never_starts_a_running_job(graph):
    outcome = payload(await call_sp(path_body(steps=["startJob"])))
    assert statuses(outcome) == [("startJob", "skipped")]
    assert actions(graph, "start") == []
    assert outcome["job"]["status"] == "Active"


@pytest.mark.parametrize(
    ("code", "quarantined"), [("Paused", None), ("NotRun", None), ("Quarantine", quarantine("TooManyDeletes"))]
)
async def test_start_starts_a_paused_or_quarantined_job(graph, code, quarantined):
    graph.jobs[SP_ID][JOB] = new_job(JOB, code, quarantined)
    outcome = payload(await call_sp(path_body(steps=["startJob"])))
    assert statuses(outcome) == [("startJob", "succeeded")]
    assert actions(graph, "start") == [("start", SP_ID, JOB, None)]
    assert outcome["job"] == {"id": JOB, "status": "Active", "quarantine": None}


async def test_the_outcome_shows_a_quarantined_job_and_why(graph):
    graph.jobs[SP_ID][JOB] = new_job(JOB, "Quarantine", quarantine("EncounteredQuarantineException"))
    outcome = payload(await call_sp(path_body(steps=["validateCredentials"])))
    assert outcome["job"] == {
        "id": JOB,
        "status": "Quarantine",
        "quarantine": {"reason": "EncounteredQuarantineException", "since": "2026-11-18T10:00:00Z"},
    }


async def test_restart_takes_the_safe_scopes_as_graph_spells_them(graph):
    graph.jobs[SP_ID][JOB] = new_job(JOB, "Quarantine", quarantine())
    outcome = payload(await call_sp(path_body(steps=["restartJob"], resetScope="Watermark,Escrows, QuarantineState")))
    assert outcome["outcome"] == "succeeded"
    [seen] = [s for s in graph.seen if s.path.endswith("/restart")]
    assert seen.json() == {"criteria": {"resetScope": "Watermark, Escrows, QuarantineState"}}
    assert outcome["job"]["quarantine"] is None


@pytest.mark.parametrize(
    "scope", ["ForceDeletes", "None", "ConnectorDataStore", "Watermark, ForceDeletes", "Bogus", ""]
)
async def test_restart_refuses_the_unsafe_scopes(graph, scope):
    response = await call_sp(path_body(steps=["restartJob"], resetScope=scope))
    assert response.status_code == 400
    assert "resetScope" in payload(response)["error"]["message"]
    assert graph.seen == []


async def test_the_only_job_is_found_when_no_job_id_is_given(graph):
    await call_sp(path_body(steps=["restartJob"]))
    assert next(s.path for s in graph.seen) == f"/v1.0/servicePrincipals/{SP_ID}/synchronization/jobs"


async def test_no_job_or_several_jobs_refuse_naming_what_was_found(graph):
    graph.jobs[SP_ID] = {}
    none = payload(await call_sp(path_body(steps=["startJob"])))
    assert (none["status"], none["error"]["code"]) == (422, "jobNotFound")
    graph.jobs[SP_ID] = {JOB: new_job(JOB), OTHER_JOB: new_job(OTHER_JOB)}
    several = payload(await call_sp(path_body(steps=["startJob"])))
    assert (several["status"], several["error"]["code"]) == (422, "jobAmbiguous")
    assert JOB in several["error"]["message"]
    assert OTHER_JOB in several["error"]["message"]
    named = payload(await call_sp(path_body(steps=["restartJob"], jobId=OTHER_JOB)))
    assert named["outcome"] == "succeeded"
    assert actions(graph, "restart")[0][2] == OTHER_JOB


async def test_an_unknown_job_id_is_job_not_found(graph):
    outcome = payload(await call_sp(path_body(steps=["startJob"], jobId="scim.nope")))
    assert (outcome["status"], outcome["error"]["code"]) == (422, "jobNotFound")


async def test_job_steps_need_a_service_principal(graph):
    response = await call_app(request_body(servicePrincipalId=None, steps=["acquireAccessToken", "startJob"]))
    assert response.status_code == 400
    assert "startJob need a 'servicePrincipalId'" in payload(response)["error"]["message"]
    ok = await call_app(request_body(servicePrincipalId=None, steps=["acquireAccessToken"]))
    assert payload(ok)["target"] == {"type": "application", "id": APP_ID}


async def test_provision_on_demand_reports_a_summary_without_user_data(graph):
    on_demand = {
        "ruleId": "03f7d90d-bf71-41b1-bda6-aaf0ddbee5d8",
        "subjects": [{"objectId": "u-1", "objectTypeName": "User"}],
    }
    outcome = payload(await call_sp(path_body(steps=["provisionOnDemand"], onDemand=on_demand)))
    assert outcome["outcome"] == "succeeded"
    [seen] = [s for s in graph.seen if s.path.endswith("/provisionOnDemand")]
    assert seen.json() == {"parameters": [on_demand]}
    assert outcome["steps"][0]["result"] == {
        "provisioningSteps": [
            {"name": "EntryImport", "status": "Success"},
            {"name": "EntryExportAdd", "status": "Success"},
        ],
        "succeeded": True,
    }
    assert "someone" not in json.dumps(outcome)


async def test_a_failed_provisioning_report_rejects_the_smoke_test(graph):
    graph.on_demand_report = {"provisioningSteps": [{"name": "EntryExportAdd", "status": "Failure"}]}
    on_demand = {"ruleId": "r", "subjects": [{"objectId": "u-1", "objectTypeName": "User"}]}
    outcome = payload(await call_sp(path_body(steps=["provisionOnDemand"], onDemand=on_demand)))
    assert (outcome["status"], outcome["error"]["code"]) == (422, "provisionOnDemandFailed")
    assert outcome["steps"][0]["result"]["succeeded"] is False


async def test_calls_that_must_not_run_twice_are_not_retried_on_5xx(graph):
    graph.jobs[SP_ID][JOB] = new_job(JOB, "Paused")
    original = graph.handle  # the job list and the job read pass; the start answers 500 once

    def once_500_on_start(seen):
        if seen.path.endswith("/start") and not getattr(once_500_on_start, "done", False):
            once_500_on_start.done = True
            return Reply(500, {"error": {"code": "InternalServerError", "message": "boom"}})
        return original(seen)

    graph.handle = once_500_on_start
    try:
        outcome = payload(await call_sp(path_body(steps=["startJob"])))
    finally:
        del graph.handle
    assert outcome["outcome"] == "failed"
    assert outcome["steps"][0]["graph"]["attempts"] == 1
    assert len([s for s in graph.seen if s.path.endswith("/start")]) == 1


async def test_a_failure_after_a_change_says_what_was_already_applied(graph):
    original = graph.handle

    def throttle_restart(seen):
        if seen.path.endswith("/restart"):
            return Reply(429, {"error": {"code": "TooManyRequests", "message": "slow down"}}, {"Retry-After": "0"})
        return original(seen)

    graph.handle = throttle_restart
    try:
        response = await call_sp(path_body(steps=["saveSecrets", "restartJob"]))
    finally:
        del graph.handle
    outcome = payload(response)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert statuses(outcome) == [("saveSecrets", "succeeded"), ("restartJob", "failed")]
    assert "already applied by earlier steps: saveSecrets" in outcome["error"]["message"]
    assert outcome["retryable"] is True


async def test_graph_echoing_a_secret_in_a_step_error_is_redacted(graph):
    original = graph.handle

    def echo(seen):
        if seen.path.endswith("/validateCredentials"):
            message = "x" * 580 + CANARY_TOKEN
            return Reply(400, {"error": {"code": "CredentialValidationUnavailable", "message": message}})
        return original(seen)

    graph.handle = echo
    try:
        response = await call_sp(path_body(steps=["validateCredentials"]))
    finally:
        del graph.handle
    text = response.get_body().decode()
    assert CANARY_TOKEN[:6] not in text


# ---- other triggers and telemetry ----------------------------------------------------------------------------------


async def test_the_body_route_takes_the_steps_too(graph):
    outcome = payload(await call_body(request_body(steps=["validateCredentials", "acquireAccessToken"])))
    assert statuses(outcome) == [("validateCredentials", "succeeded"), ("acquireAccessToken", "succeeded")]


def queue_message(body: dict, dequeue_count: int = 1) -> QueueMessage:
    return QueueMessage(id="m-1", body=json.dumps(body).encode(), dequeue_count=dequeue_count, pop_receipt="p")


async def test_through_the_queue_a_failed_step_is_retried_and_a_rejected_one_completes(graph, outcomes):
    handler = function_app.acquire_from_queue.build().get_user_function()
    graph.jobs[SP_ID] = {}
    await handler(queue_message(request_body(steps=["startJob"])))  # completes: jobNotFound is rejected
    assert outcomes()[-1]["error"]["code"] == "jobNotFound"
    graph.jobs[SP_ID] = {JOB: new_job(JOB, "Paused")}
    graph.fail_next(*[Reply(503, {"error": {"code": "ServiceUnavailable", "message": "x"}})] * 4)
    with pytest.raises(RetryableFailure):
        await handler(queue_message(request_body(steps=["startJob"]), dequeue_count=2))
    assert outcomes()[-1]["outcome"] == "failed"
    await handler(queue_message(request_body(steps=["startJob"]), dequeue_count=3))
    assert outcomes()[-1]["outcome"] == "succeeded"
    assert actions(graph, "start") == [("start", SP_ID, JOB, None)]


def test_the_cli_runs_the_steps(graph):
    result = cli(
        "acquire",
        "--service-principal",
        SP_ID,
        "--credential",
        f"BaseAddress={SCIM_URL}",
        "--credential",
        "SecretToken=@scim-token",
        "--step",
        "validateCredentials",
        "--step",
        "restartJob",
        "--job-id",
        JOB,
        "--reset-scope",
        "Watermark,QuarantineState",
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert statuses(outcome) == [("validateCredentials", "succeeded"), ("restartJob", "succeeded")]
    assert actions(graph, "restart") == [("restart", SP_ID, JOB, "Watermark, QuarantineState")]


def test_the_cli_refuses_an_unsafe_scope_with_exit_2(graph):
    result = cli("acquire", "--service-principal", SP_ID, "--credential", f"BaseAddress={SCIM_URL}",
                 "--step", "restartJob", "--reset-scope", "ForceDeletes")  # fmt: skip
    assert result.returncode == 2
    assert "ForceDeletes is refused" in result.stdout


async def test_telemetry_carries_the_steps_and_the_job_status(graph, outcomes):
    await call_sp(path_body(steps=["validateCredentials", "startJob"]))
    from shared.outcome import JobState, Outcome, StepResult

    emitted = outcomes()[-1]
    assert statuses(emitted) == [("validateCredentials", "succeeded"), ("startJob", "skipped")]
    dims = dimensions(
        Outcome(
            outcome="succeeded",
            trigger="http",
            steps=(StepResult("validateCredentials", "succeeded"), StepResult("startJob", "skipped")),
            job=JobState(id=JOB, status="Active"),
        )
    )
    assert dims["steps"] == "validateCredentials:succeeded,startJob:skipped"
    assert dims["jobStatus"] == "Active"
