"""Key Vault events are authenticated by their topic (or CloudEvents source) and never roll a secret back."""

from __future__ import annotations

import itertools
import json

import pytest

from tests.conftest import SCIM_URL, SP_ID
from tests.integration.test_connections import NEW_VERSION, conn_env, connection_body, deliver, get, put

__all__ = ["conn_env"]  # the fixture, shared with the connection tests
from tests.triggers.test_http_trigger import payload

VAULT_TOPIC = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/standin-kv"


def with_topic(event_json: str, topic: str) -> str:
    event = json.loads(event_json)
    event["source" if "specversion" in event else "topic"] = topic
    return json.dumps(event)


def rotate(env, value: str) -> str:
    version = env.keyvault.set_secret("scim-token", value)
    env.graph.service_principals[SP_ID] = {"BaseAddress": SCIM_URL, "SecretToken": value}
    return version


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
@pytest.mark.parametrize(
    "topic",
    [
        "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.EventGrid/topics/provisioning",  # the request topic
        "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/another-kv",  # another vault
        "/provisioning",
        "",
    ],
)
async def test_a_key_vault_event_from_a_topic_that_does_not_vouch_for_its_vault_is_ignored(
    conn_env, outcomes, caplog, schema, topic
):
    await put("victim", connection_body(steps=["saveSecrets"]))
    rotate(conn_env, "forged-rotation-value-0001")
    conn_env.graph.reset()
    event = with_topic(conn_env.keyvault.event(NEW_VERSION, "scim-token", schema=schema), topic)
    assert await deliver(event) is None  # completed, never retried
    assert conn_env.graph.seen == []
    assert [o for o in outcomes() if o["trigger"] == "rotation"] == []
    assert any("ignoring Microsoft.KeyVault.SecretNewVersionCreated" in r.getMessage() for r in caplog.records)


async def test_a_vault_whose_host_is_not_allowed_is_ignored_even_with_a_matching_topic(conn_env, monkeypatch):
    monkeypatch.setenv("KEY_VAULT_ALLOWED_HOSTS", conn_env.keyvault.host)  # standin-kv.vault.azure.net not allowed
    await put("victim", connection_body(steps=["saveSecrets"]))
    rotate(conn_env, "rotation-from-unallowed-0002")
    conn_env.graph.reset()
    await deliver(conn_env.keyvault.event(NEW_VERSION, "scim-token"))
    assert conn_env.graph.seen == []


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
async def test_out_of_order_deliveries_of_three_versions_end_on_the_newest(conn_env, outcomes, order):
    await put("ordered", connection_body(steps=["saveSecrets"]))
    versions = [rotate(conn_env, f"rotated-value-number-{n}-xyz") for n in range(3)]
    events = [conn_env.keyvault.event(NEW_VERSION, "scim-token", v) for v in versions]
    for index in order:
        await deliver(events[index])
    for index in order:  # and Event Grid redelivers every one of them later
        await deliver(events[index])
    stored = {s["key"]: s["value"] for s in conn_env.graph.stored_secrets[SP_ID]}
    assert stored["SecretToken"] == "rotated-value-number-2-xyz"
    secret_id = f"{conn_env.keyvault.url}/secrets/scim-token"
    assert payload(await get("ordered"))["appliedVersions"][secret_id]["version"] == versions[2]
    puts = [s for s in conn_env.graph.seen if s.method == "PUT"]
    assert len(puts) == 1  # only the newest, once


async def test_a_forged_event_naming_an_old_version_sets_nothing_back(conn_env):
    await put("forward", connection_body(steps=["saveSecrets"]))
    old = rotate(conn_env, "older-version-value-0003")
    rotate(conn_env, "newer-version-value-0004")
    await deliver(conn_env.keyvault.event(NEW_VERSION, "scim-token"))
    conn_env.graph.reset()
    await deliver(conn_env.keyvault.event(NEW_VERSION, "scim-token", old))
    assert conn_env.graph.seen == []


@pytest.mark.parametrize("spelling", ["upper", "app-service"])
async def test_every_spelling_of_one_secret_is_one_secret_for_rotation(conn_env, spelling):
    # (The stand-in does not listen on 443; the default port's spelling is the unit test below.)
    host = conn_env.keyvault.host
    if spelling == "upper":
        reference = f"https://{host.upper()}/secrets/SCIM-TOKEN"
    else:
        reference = f"@Microsoft.KeyVault(SecretUri=https://{host}/secrets/Scim-Token)"
    credentials = [{"key": "BaseAddress", "value": SCIM_URL}, {"key": "SecretToken", "secretRef": reference}]
    assert (await put("spelled", connection_body(credentials=credentials, steps=["saveSecrets"]))).status_code == 201
    rotate(conn_env, "spelling-rotated-value-05")
    await deliver(conn_env.keyvault.event(NEW_VERSION, "scim-token"))
    stored = {s["key"]: s["value"] for s in conn_env.graph.stored_secrets[SP_ID]}
    assert stored["SecretToken"] == "spelling-rotated-value-05"


def test_secret_ids_drop_the_default_port_and_fold_case():
    from shared.references import secret_id

    assert secret_id("https://Contoso-KV.vault.azure.net:443", "Scim-Token") == (
        "https://contoso-kv.vault.azure.net/secrets/scim-token"
    )
    assert secret_id("https://contoso-kv.vault.azure.net", "scim-token") == (
        "https://contoso-kv.vault.azure.net/secrets/scim-token"
    )
    assert secret_id("https://127.0.0.1:8443", "x") == "https://127.0.0.1:8443/secrets/x"
