"""Secret bindings, tested the way the attack works: an attacker's recording SCIM server on 127.0.0.1 as the
address, the Graph stand-in calling a job's addresses with its secret as Entra's provisioning service does, and an
assertion that nothing reached the attacker and nothing reached Graph.

The victim's secret (``scim-token``) is bound by its owner to the usual targets and to ``SCIM_URL``.
"""

from __future__ import annotations

import json
import ssl
import uuid

import pytest

import function_app
from shared.keys import ADDRESS_KEYS as ADDRESS_KEY_SET
from shared.queueing import encode_message
from standins.graph import new_job, quarantine
from standins.queue_host import QueueHost
from standins.scim import RecordingScim
from tests.conftest import APP_ID, CA, CANARY_TOKEN, SCIM_URL, SP_ID, request_body
from tests.integration.test_connections import JOB, NEW_VERSION, connection_body, deliver, get, put, run
from tests.triggers.test_event_grid_trigger import event_grid_event
from tests.triggers.test_http_trigger import call_body, payload

ADDRESS_KEYS = sorted(ADDRESS_KEY_SET)  # every one of them (tests/unit/test_keys.py pins the set)


@pytest.fixture(scope="module")
def attacker():
    server = RecordingScim(tls=CA.server_context()).start()
    yield server
    server.stop()


@pytest.fixture
def entra(app_env, attacker):
    """The Graph stand-in acts as Entra's provisioning service: it calls a job's addresses with its secret."""
    attacker.reset()
    app_env.graph.provisioning_tls = ssl.create_default_context(cafile=str(CA.bundle))
    app_env.graph.jobs[SP_ID] = {JOB: new_job(JOB)}
    yield app_env
    app_env.graph.provisioning_tls = None


def attack_body(address_key="BaseAddress", address=None, **overrides):
    return request_body(
        credentials=[
            {"key": address_key, "value": address},
            {"key": "SecretToken", "secretRef": "scim-token"},
        ],
        **overrides,
    )


async def acquire(body) -> tuple[int, dict]:
    response = await call_body(body)
    return response.status_code, payload(response)


def assert_nothing_leaked(env, attacker):
    assert attacker.seen == [], "the attacker's server received a request"
    assert not any(CANARY_TOKEN in token for token in attacker.tokens)
    assert env.graph.seen == [], "a refusal happens before any Graph call"


async def test_the_legitimate_flow_reaches_the_bound_endpoint_so_the_detector_works(entra, attacker):
    """Positive control: bound to the recording server, the token does reach it (the test can see a leak)."""
    entra.keyvault.set_secret(
        "scim-token", CANARY_TOKEN, tags={"provisioning-targets": SP_ID, "provisioning-endpoints": attacker.url}
    )
    _status, outcome = await acquire(
        attack_body(address=f"{attacker.url}/scim", steps=["validateCredentials"], dryRun=True)
    )
    assert outcome["outcome"] in ("validated", "rejected"), outcome  # the stand-in's expected values differ
    assert attacker.tokens == [f"Bearer {CANARY_TOKEN}"]


async def test_a_function_key_holder_cannot_send_another_teams_secret_to_their_own_address(entra, attacker):
    body = attack_body(address=f"{attacker.url}/scim", steps=["validateCredentials"], dryRun=True)
    status, outcome = await acquire(body)
    assert (status, outcome["outcome"], outcome["error"]["code"]) == (403, "rejected", "endpointNotBound")
    assert "'BaseAddress'" in outcome["error"]["message"]
    assert attacker.url not in json.dumps(outcome)  # the key is named, never the value
    assert_nothing_leaked(entra, attacker)


async def test_saving_and_starting_with_an_attackers_address_is_refused(entra, attacker):
    body = attack_body(address=f"{attacker.url}/scim", steps=["saveSecrets", "startJob"], replaceSecrets=True)
    status, outcome = await acquire(body)
    assert (status, outcome["error"]["code"]) == (403, "endpointNotBound")
    assert entra.graph.stored_secrets.get(SP_ID) is None
    assert_nothing_leaked(entra, attacker)


async def test_allowed_targets_alone_did_not_help_and_bindings_do(entra, attacker, monkeypatch):
    monkeypatch.setenv("ALLOWED_TARGETS", SP_ID)
    status, outcome = await acquire(attack_body(address=f"{attacker.url}/scim", steps=["validateCredentials"]))
    assert (status, outcome["error"]["code"]) == (403, "endpointNotBound")
    assert_nothing_leaked(entra, attacker)


@pytest.mark.parametrize("key", ADDRESS_KEYS)
async def test_every_address_key_is_checked(entra, attacker, key):
    address = "127.0.0.1" if key in ("Server", "Domain", "InstanceName") else f"{attacker.url}/x"
    body = request_body(
        credentials=[
            {"key": "BaseAddress", "value": SCIM_URL},
            {"key": key, "value": address} if key != "BaseAddress" else {"key": "Url", "value": f"{attacker.url}/x"},
            {"key": "SecretToken", "secretRef": "scim-token"},
        ],
        steps=["validateCredentials"],
    )
    status, outcome = await acquire(body)
    assert (status, outcome["error"]["code"]) == (403, "endpointNotBound"), outcome
    assert_nothing_leaked(entra, attacker)


async def test_a_secret_sent_to_a_target_its_tag_does_not_list_is_refused(entra, attacker):
    other_sp = str(uuid.uuid4())
    entra.graph.service_principals[other_sp] = {}
    status, outcome = await acquire(attack_body(address=SCIM_URL, servicePrincipalId=other_sp))
    assert (status, outcome["error"]["code"]) == (403, "secretNotBound")
    assert (
        f"is not bound to servicePrincipal {other_sp}: its tag provisioning-targets does not list it"
        in (outcome["error"]["message"])
    )
    assert_nothing_leaked(entra, attacker)


@pytest.mark.parametrize(
    ("tags", "said"),
    [
        (None, "it has no tag provisioning-targets"),
        ({"provisioning-targets": "", "provisioning-endpoints": SCIM_URL}, "its tag provisioning-targets is empty"),
        ({"provisioning-targets": "all", "provisioning-endpoints": SCIM_URL}, "is not a list of object ids"),
        ({"Provisioning-Targets": SP_ID, "provisioning-endpoints": SCIM_URL}, "it has no tag provisioning-targets"),
    ],
)
async def test_an_untagged_empty_or_malformed_secret_is_refused_saying_which(entra, attacker, tags, said):
    entra.keyvault.set_secret("scim-token", CANARY_TOKEN, tags=tags)
    status, outcome = await acquire(attack_body(address=SCIM_URL))
    assert (status, outcome["error"]["code"]) == (403, "secretNotBound")
    assert said in outcome["error"]["message"]
    assert_nothing_leaked(entra, attacker)


async def test_the_binding_is_read_from_the_version_resolved(entra, attacker):
    bound = entra.keyvault.set_secret("scim-token", CANARY_TOKEN)  # bound (the default tags)
    entra.keyvault.set_secret("scim-token", "newest-untagged-value", tags=None)
    status, outcome = await acquire(
        request_body(
            credentials=[
                {"key": "BaseAddress", "value": SCIM_URL},
                {"key": "SecretToken", "secretRef": f"scim-token/{bound}"},
            ]
        )
    )
    assert (status, outcome["outcome"]) == (200, "succeeded"), outcome
    status, outcome = await acquire(attack_body(address=SCIM_URL))
    assert (status, outcome["error"]["code"]) == (403, "secretNotBound")


async def test_stored_addresses_count_for_save_secrets(entra, attacker):
    """An address already stored in Graph goes out with the secrets saveSecrets writes: it is checked too."""
    entra.graph.stored_secrets[SP_ID] = [{"key": "BaseAddress", "value": f"{attacker.url}/scim"}]
    body = request_body(credentials=[{"key": "SecretToken", "secretRef": "scim-token"}], steps=["saveSecrets"])
    status, outcome = await acquire(body)
    assert (status, outcome["error"]["code"]) == (403, "endpointNotBound"), outcome
    assert [s.method for s in entra.graph.seen] == ["GET"]  # read the stored set, wrote nothing
    assert entra.graph.stored_secrets[SP_ID] == [{"key": "BaseAddress", "value": f"{attacker.url}/scim"}]
    assert attacker.seen == []


async def test_inline_secrets_need_no_tag_but_their_addresses_are_checked_against_resolved_secrets(
    entra, attacker, monkeypatch
):
    monkeypatch.setenv("ALLOW_INLINE_SECRETS", "true")
    entra.graph.service_principals[SP_ID] = {"BaseAddress": SCIM_URL, "SecretToken": "callers-own-token-1234"}
    own = request_body(
        credentials=[
            {"key": "BaseAddress", "value": SCIM_URL},
            {"key": "SecretToken", "value": "callers-own-token-1234"},
        ]
    )
    status, outcome = await acquire(own)
    assert (status, outcome["outcome"]) == (200, "succeeded"), outcome
    mixed = request_body(
        credentials=[
            {"key": "BaseAddress", "value": f"{attacker.url}/scim"},
            {"key": "Password", "value": "callers-own-password"},
            {"key": "SecretToken", "secretRef": "scim-token"},
        ]
    )
    entra.graph.reset()
    status, outcome = await acquire(mixed)
    assert (status, outcome["error"]["code"]) == (403, "endpointNotBound")
    assert_nothing_leaked(entra, attacker)


async def test_off_mode_is_the_old_behaviour(entra, attacker, monkeypatch):
    monkeypatch.setenv("SECRET_BINDING", "off")
    entra.keyvault.set_secret("scim-token", CANARY_TOKEN, tags=None)
    status, outcome = await acquire(attack_body(address=SCIM_URL))
    assert (status, outcome["outcome"]) == (200, "succeeded"), outcome


@pytest.mark.parametrize(
    "address",
    [
        "https://user:pw-1234@scim.example.com/v2",
        "https://scim.example.com/v2?api_key=k-1234",
        "https://scim.example.com/v2#k-1234",
    ],
)
async def test_an_address_with_user_information_or_a_query_is_invalid(entra, attacker, address):
    status, outcome = await acquire(attack_body(address=address))
    assert (status, outcome["error"]["code"]) == (400, "invalidRequest")
    assert "1234" not in json.dumps(outcome)
    assert entra.keyvault.seen == []
    assert entra.graph.seen == []


# ---- the other entry points ------------------------------------------------------------------------------------------


async def test_the_queue_path_is_refused_too(entra, attacker, azurite, monkeypatch, outcomes):
    name = f"bind-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("REQUEST_QUEUE_NAME", name)
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    host = QueueHost(azurite.connection_string, name, function_app.acquire_from_queue.build().get_user_function())
    host.create()
    host.queue.send_message(
        encode_message(json.dumps(attack_body(address=f"{attacker.url}/scim", steps=["validateCredentials"])))
    )
    await host.drain()
    assert host.remaining() == []
    assert host.poisoned() == []
    assert [(o["outcome"], o["error"]["code"]) for o in outcomes()] == [("rejected", "endpointNotBound")]
    assert_nothing_leaked(entra, attacker)


async def test_the_event_grid_path_is_refused_too(entra, attacker, outcomes):
    handler = function_app.acquire_from_event_grid.build().get_user_function()
    await handler(event_grid_event(attack_body(address=f"{attacker.url}/scim", steps=["validateCredentials"])))
    assert [(o["outcome"], o["error"]["code"]) for o in outcomes()] == [("rejected", "endpointNotBound")]
    assert_nothing_leaked(entra, attacker)


@pytest.fixture
def conn(entra, azurite, monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("CONNECTIONS_TABLE", "bind" + uuid.uuid4().hex[:12])
    monkeypatch.setenv("CONNECTION_QUEUE_NAME", "bindwork-" + uuid.uuid4().hex[:8])
    monkeypatch.setenv("KEY_VAULT_ALLOWED_HOSTS", f"{entra.keyvault.host},standin-kv.vault.azure.net")
    entra.graph.stored_secrets[SP_ID] = [{"key": "BaseAddress", "value": SCIM_URL}]
    from tests.integration.test_connections import work_queue

    work_queue(entra)
    return entra


async def test_a_connection_re_pointed_at_an_attacker_gets_no_new_version_on_rotation(conn, attacker, outcomes):
    steps = ["validateCredentials", "saveSecrets", "restartJob"]
    assert (await put("victim", connection_body(steps=steps))).status_code == 201
    etag = payload(await get("victim"))["etag"]
    hijacked = attack_body(address=f"{attacker.url}/scim", steps=steps, correlationId=None)
    assert (await put("victim", hijacked, headers={"If-Match": etag})).status_code == 200
    conn.graph.reset()
    conn.graph.jobs[SP_ID] = {JOB: new_job(JOB, "Quarantine", quarantine())}
    conn.keyvault.set_secret("scim-token", "rotated-value-for-victim-5678")
    await deliver(conn.keyvault.event(NEW_VERSION, "scim-token"))
    [rotation] = [o for o in outcomes() if o["trigger"] == "rotation"]
    assert (rotation["outcome"], rotation["error"]["code"]) == ("rejected", "endpointNotBound")
    assert attacker.seen == []
    assert [s for s in conn.graph.seen if s.method != "GET"] == []


async def test_a_rotation_whose_new_version_is_untagged_is_rejected_and_says_how_to_tag(conn, attacker, outcomes):
    assert (await put("plain", connection_body(steps=["saveSecrets"]))).status_code == 201
    assert payload(await run("plain"))["outcome"] == "succeeded"
    conn.graph.reset()
    conn.keyvault.set_secret("scim-token", "rotated-untagged-value-9012", tags=None)
    await deliver(conn.keyvault.event(NEW_VERSION, "scim-token"))
    [rotation] = [o for o in outcomes() if o["trigger"] == "rotation"]
    assert (rotation["outcome"], rotation["error"]["code"]) == ("rejected", "secretNotBound")
    assert "python -m shared bind --secret" in rotation["error"]["message"]
    assert [s for s in conn.graph.seen if s.method != "GET"] == []  # Graph keeps what it had
    assert conn.graph.stored_secrets.get(SP_ID) is None  # nothing was written


async def test_an_application_target_is_checked_like_a_service_principal(entra, attacker):
    status, outcome = await acquire(
        attack_body(address=f"{attacker.url}/scim", servicePrincipalId=None, applicationId=APP_ID)
    )
    assert (status, outcome["error"]["code"]) == (403, "endpointNotBound")
    assert_nothing_leaked(entra, attacker)


async def test_the_sweep_says_binding_missing_for_a_connection_its_current_versions_would_refuse(conn, caplog):
    import logging

    from tests.integration.test_connections import handler, work_queue

    conn.keyvault.set_secret("other-token", "other-team-value-3456", tags=None)
    other = [{"key": "BaseAddress", "value": SCIM_URL}, {"key": "SecretToken", "secretRef": "other-token"}]
    assert (await put("bound", connection_body())).status_code == 201
    assert (await put("unbound", connection_body(credentials=other))).status_code == 201
    with caplog.at_level(logging.INFO, logger="shared.events"):
        await handler(function_app.sweep_connections)(None)
        await work_queue(conn).drain()
    health = {
        event["connection"]: event
        for event in (
            json.loads(r.getMessage().split(" ", 1)[1])
            for r in caplog.records
            if r.name == "shared.events" and r.getMessage().startswith("ConnectionHealth ")
        )
    }
    assert (health["bound"]["bindingMissing"], health["bound"].get("bindingProblem")) == ("false", None)
    assert health["unbound"]["bindingMissing"] == "true"
    assert health["unbound"]["bindingProblem"].startswith("secretNotBound: secret 'other-token'")
    assert "other-team-value" not in json.dumps(health)


@pytest.mark.parametrize("replace", [True, False])
async def test_a_job_cannot_be_re_pointed_without_a_bound_secret(entra, attacker, monkeypatch, replace):
    """No Key Vault secret at all: the addresses saved would be nobody's to allow, so saveSecrets is refused."""
    entra.graph.stored_secrets[SP_ID] = [{"key": "BaseAddress", "value": SCIM_URL}]
    body = request_body(
        credentials=[
            {"key": "BaseAddress", "value": f"{attacker.url}/scim"},
            {"key": "SyncAll", "value": "true"},
        ],
        steps=["saveSecrets", "startJob"],
        replaceSecrets=replace,
    )
    status, outcome = await acquire(body)
    assert (status, outcome["error"]["code"]) == (403, "secretNotBound")
    assert "needs at least one Key Vault secret bound to" in outcome["error"]["message"]
    assert_nothing_leaked(entra, attacker)
    assert entra.graph.stored_secrets[SP_ID] == [{"key": "BaseAddress", "value": SCIM_URL}]
