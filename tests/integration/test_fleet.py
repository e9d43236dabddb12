"""The fleet (docs/fleet.md): the sweep and large rotations fan out through the connection-work queue, nothing is
lost when an invocation dies, health is read from the job itself, and opted-in connections are recovered by the
playbook of their quarantine reason, at most once per RECOVERY_MIN_HOURS."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time

import pytest
from azure.storage.queue import QueueClient

import function_app
from shared.fleet import MAX_DEQUEUE_COUNT
from standins.graph import new_job, quarantine
from standins.queue_host import QUEUES
from tests.conftest import CANARY_TOKEN, SCIM_URL, SP_ID
from tests.integration.test_connections import (
    JOB,
    NEW_VERSION,
    conn_env,
    connection_body,
    deliver,
    get,
    handler,
    put,
    work_queue,
)
from tests.triggers.test_http_trigger import payload

__all__ = ["conn_env"]


def events(caplog, name: str) -> list[dict]:
    return [
        json.loads(r.getMessage().split(" ", 1)[1])
        for r in caplog.records
        if r.name == "shared.events" and r.getMessage().startswith(name + " ")
    ]


def queued() -> int:
    client = QueueClient.from_connection_string(os.environ["AzureWebJobsStorage"], os.environ["CONNECTION_QUEUE_NAME"])
    return client.get_queue_properties().approximate_message_count


def test_the_app_gives_up_where_the_host_does():
    assert QUEUES["maxDequeueCount"] == MAX_DEQUEUE_COUNT


async def test_a_sweep_of_a_thousand_connections_enqueues_a_thousand_checks_and_returns(conn_env):
    from shared.runtime import get_store
    from shared.store import ConnectionRecord

    store = get_store()
    request = connection_body()
    gate = asyncio.Semaphore(32)

    async def create(n: int) -> None:
        async with gate:
            await store.create(ConnectionRecord(name=f"c-{n:04d}", request=request))

    await asyncio.gather(*(create(n) for n in range(1000)))
    conn_env.graph.reset()
    await handler(function_app.sweep_connections)(None)
    assert queued() == 1000
    assert conn_env.graph.seen == []  # the timer read no job: that is the queue function's work
    assert conn_env.keyvault.listed == []


async def test_each_check_reports_the_jobs_own_health_with_a_score(conn_env, caplog):
    conn_env.graph.jobs[SP_ID] = {JOB: new_job(JOB, "Quarantine", quarantine())}
    await put("sick", connection_body())
    with caplog.at_level(logging.INFO, logger="shared.events"):
        await handler(function_app.sweep_connections)(None)
        await work_queue(conn_env).drain()
    [sick] = events(caplog, "ConnectionHealth")
    assert sick["statusCode"] == "Quarantine"
    assert sick["quarantineReason"] == "EncounteredQuarantineException"
    assert (sick["quarantineSeriesBegan"], sick["quarantineSeriesCount"]) == ("2026-11-18T10:00:00Z", "4")
    assert sick["quarantineNextAttempt"] == "2026-11-25T10:00:00Z"
    assert sick["lastExecutionState"] == "Failed"
    assert sick["lastExecutionEscrowed"] == "3"
    assert sick["lastSuccessfulExecution"]
    assert "steadyStateLastAchievedTime" not in sick  # Graph's 0001-01-01 "never" is no time
    assert int(sick["healthScore"]) <= 40
    assert conn_env.keyvault.listed == ["scim-token"]  # properties, never a value
    assert not [s for s in conn_env.keyvault.seen if s.path == "/secrets/scim-token/"]
    caplog.clear()
    conn_env.graph.jobs[SP_ID] = {JOB: new_job(JOB)}
    with caplog.at_level(logging.INFO, logger="shared.events"):
        await handler(function_app.sweep_connections)(None)
        await work_queue(conn_env).drain()
    [well] = events(caplog, "ConnectionHealth")
    assert (well["statusCode"], well["healthScore"]) == ("Active", "100")
    assert not [s for s in conn_env.graph.seen if s.method != "GET"]  # a check never changes a job


def rotate(env, value: str) -> str:
    version = env.keyvault.set_secret("scim-token", value)
    env.graph.service_principals[SP_ID] = {"BaseAddress": SCIM_URL, "SecretToken": value}
    return version


async def test_a_rotation_of_many_connections_fans_out_and_each_is_applied_once(conn_env, outcomes):
    names = [f"shared-{n}" for n in range(6)]
    for name in names:
        await put(name, connection_body(steps=["saveSecrets"]))
    version = rotate(conn_env, "fanned-out-rotation-value-1")
    conn_env.graph.reset()
    started = time.monotonic()
    await deliver(conn_env.keyvault.event(NEW_VERSION, "scim-token"))
    assert time.monotonic() - started < 10  # Event Grid's delivery ends with one message (it waits 30 s at most)
    assert conn_env.graph.seen == []
    assert queued() == 1  # one fanout message, whatever the number of connections
    host = work_queue(conn_env)
    await host.poll_once()  # the fanout: one rotate message per connection
    assert queued() == len(names)
    await work_queue(conn_env).drain()
    assert len([s for s in conn_env.graph.seen if s.method == "PUT"]) == len(names)
    rotations = [o for o in outcomes() if o["trigger"] == "rotation"]
    assert sorted(o["connection"] for o in rotations) == names
    assert {o["outcome"] for o in rotations} == {"succeeded"}
    secret_id = f"{conn_env.keyvault.url}/secrets/scim-token"
    for name in names:
        assert payload(await get(name))["appliedVersions"][secret_id]["version"] == version
    await deliver(conn_env.keyvault.event(NEW_VERSION, "scim-token"))  # Event Grid redelivers
    await work_queue(conn_env).drain()
    assert len([s for s in conn_env.graph.seen if s.method == "PUT"]) == len(names)  # nothing twice


async def test_an_invocation_killed_mid_rotation_loses_nothing_and_repeats_nothing(conn_env):
    names = [f"killed-{n}" for n in range(5)]
    for name in names:
        await put(name, connection_body(steps=["saveSecrets"]))
    rotate(conn_env, "rotation-survives-a-kill-22")
    conn_env.graph.reset()
    await deliver(conn_env.keyvault.event(NEW_VERSION, "scim-token"))
    original = conn_env.graph.handle
    stalled: list[str] = []

    def stall_once(seen):  # the first Graph call hangs, as on an instance being scaled in
        if not stalled:
            stalled.append(seen.path)
            time.sleep(3)
        return original(seen)

    conn_env.graph.handle = stall_once
    work = handler(function_app.connection_work)

    async def killed_after_a_second(message):
        await asyncio.wait_for(work(message), timeout=1)  # the host's timeout, or a scale-in: cancelled mid-way

    from standins.queue_host import QueueHost

    host = QueueHost(os.environ["AzureWebJobsStorage"], os.environ["CONNECTION_QUEUE_NAME"], killed_after_a_second)
    try:
        await host.drain()
    finally:
        del conn_env.graph.handle
    assert stalled
    assert any(isinstance(e, TimeoutError) for e in host.errors)  # one invocation died holding its claim
    assert host.remaining() == []
    assert host.poisoned() == []
    await asyncio.sleep(3)  # the stalled request finishes at the stand-in; it was a read, and changed nothing
    puts = [s for s in conn_env.graph.seen if s.method == "PUT"]
    assert len(puts) == len(names)  # every connection applied, each exactly once


async def test_a_claim_held_by_another_delivery_is_retried_not_reported_done(conn_env, monkeypatch):
    from shared import rotation
    from shared.runtime import get_store

    names = [f"held-{n}" for n in range(4)]
    for name in names:
        await put(name, connection_body(steps=["saveSecrets"]))
    version = rotate(conn_env, "claimed-elsewhere-value-333")
    store = get_store()
    record = await store.get("held-0")
    from dataclasses import replace

    from shared.store import now

    claim = {"secretId": f"{conn_env.keyvault.url}/secrets/scim-token", "version": version, "at": now(), "owner": "x"}
    await store.replace(replace(record, claim=claim), etag=record.etag)
    conn_env.graph.reset()
    await deliver(conn_env.keyvault.event(NEW_VERSION, "scim-token"))
    host = work_queue(conn_env)
    await host.poll_once()  # the fanout
    await host.poll_once()  # the four connections
    assert len([s for s in conn_env.graph.seen if s.method == "PUT"]) == 3
    assert len(host.remaining()) == 1  # held-0 back on the queue, not done
    monkeypatch.setattr(rotation, "CLAIM_SECONDS", 0)  # the other delivery's claim expires
    await host.drain()
    assert len([s for s in conn_env.graph.seen if s.method == "PUT"]) == 4
    assert payload(await get("held-0"))["appliedVersions"]


async def test_a_connection_that_keeps_failing_goes_to_the_poison_queue_and_is_reported(conn_env, caplog):
    for n in range(4):
        await put(f"doomed-{n}", connection_body(steps=["saveSecrets"]))
    rotate(conn_env, "poisoned-rotation-value-44")
    await deliver(conn_env.keyvault.event(NEW_VERSION, "scim-token"))
    conn_env.identity.graph_roles = []  # Graph refuses the app: failed, retryable, every time
    host = work_queue(conn_env)
    with caplog.at_level(logging.INFO, logger="shared.events"):
        await host.drain()
    assert host.remaining() == []
    assert len(host.poisoned()) == 4
    failed = events(caplog, "ConnectionWorkFailed")
    assert sorted(e["connection"] for e in failed) == [f"doomed-{n}" for n in range(4)]
    assert {e["dequeueCount"] for e in failed} == {str(MAX_DEQUEUE_COUNT)}


@pytest.mark.parametrize(
    ("reason", "actions"),
    [
        ("EncounteredQuarantineException", ["validateCredentials", "saveSecrets", "restart:QuarantineState"]),
        ("EncounteredBaseEscrowThreshold", ["restart:Escrows"]),
        ("EncounteredTotalEscrowThreshold", ["restart:Escrows"]),
        ("EncounteredEscrowProportionThreshold", ["restart:Escrows"]),
        ("TooManyDeletes", []),
    ],
)
async def test_a_quarantine_is_recovered_by_its_reasons_playbook_once_per_window(
    conn_env, caplog, outcomes, reason, actions
):
    conn_env.graph.jobs[SP_ID] = {JOB: new_job(JOB, "Quarantine", quarantine(reason))}
    await put("opted-in", connection_body(recovery=True))
    await put("not-opted-in", connection_body())
    with caplog.at_level(logging.INFO, logger="shared.events"):
        for _ in range(3):  # the sweep sees the quarantine three times
            conn_env.graph.jobs[SP_ID][JOB]["status"]["quarantine"] = quarantine(reason)
            conn_env.graph.jobs[SP_ID][JOB]["status"]["code"] = "Quarantine"
            await handler(function_app.sweep_connections)(None)
            await work_queue(conn_env).drain()
    done = [
        a[0] if a[0] != "restart" else f"restart:{a[3]}"
        for a in conn_env.graph.actions
        if a[0] in ("validateCredentials", "saveSecrets", "restart", "start")
    ]
    assert done == actions  # once, whatever how often the quarantine was seen
    recovered = events(caplog, "ConnectionRecovery")
    if actions:
        [outcome] = [o for o in outcomes() if o["trigger"] == "recovery"]
        assert (outcome["connection"], outcome["outcome"]) == ("opted-in", "succeeded")
        assert {(e["connection"], e["reason"], e["result"]) for e in recovered} == {("opted-in", reason, "succeeded")}
        assert payload(await get("opted-in"))["lastRecovery"]["outcome"] == "succeeded"
    else:
        assert [o for o in outcomes() if o["trigger"] == "recovery"] == []
        assert {(e["connection"], e["result"]) for e in recovered} == {("opted-in", "needsPerson")}
    assert CANARY_TOKEN not in json.dumps(recovered)


async def test_a_recovery_is_due_again_after_recovery_min_hours(conn_env, monkeypatch):
    conn_env.graph.jobs[SP_ID] = {JOB: new_job(JOB, "Quarantine", quarantine("EncounteredBaseEscrowThreshold"))}
    await put("again", connection_body(recovery=True))
    await handler(function_app.sweep_connections)(None)
    await work_queue(conn_env).drain()
    monkeypatch.setenv("RECOVERY_MIN_HOURS", "0")
    from shared import runtime

    runtime.reset()  # a new worker, with the new setting
    conn_env.graph.jobs[SP_ID][JOB]["status"]["quarantine"] = quarantine("EncounteredBaseEscrowThreshold")
    await handler(function_app.sweep_connections)(None)
    await work_queue(conn_env).drain()
    assert [a[3] for a in conn_env.graph.actions if a[0] == "restart"] == ["Escrows", "Escrows"]


async def test_a_forged_rotate_message_naming_an_old_version_rolls_nothing_back(conn_env):
    from shared.work import WorkItem

    await put("forward-only", connection_body(steps=["saveSecrets"]))
    old = rotate(conn_env, "the-older-version-value-55")
    rotate(conn_env, "the-newer-version-value-66")
    conn_env.graph.reset()
    host = work_queue(conn_env)
    forged = WorkItem("rotate", "forward-only", secret_id=f"{conn_env.keyvault.url}/secrets/scim-token", version=old)
    host.queue.send_message(forged.to_json())  # anyone with access to the queue
    await host.drain()
    assert conn_env.graph.seen == []  # superseded: the secret's current version is another
    assert host.poisoned() == []


async def test_a_dry_run_connection_is_never_recovered(conn_env):
    conn_env.graph.jobs[SP_ID] = {JOB: new_job(JOB, "Quarantine", quarantine("EncounteredBaseEscrowThreshold"))}
    await put("just-a-test", connection_body(recovery=True, dryRun=True))
    await handler(function_app.sweep_connections)(None)
    await work_queue(conn_env).drain()
    assert [a for a in conn_env.graph.actions if a[0] == "restart"] == []
