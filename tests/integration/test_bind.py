"""``python -m shared bind``'s work against the Key Vault stand-in: the two tags on the current version, the other
tags kept, and the app then accepting exactly what the tags say."""

import json
import uuid

import pytest

from shared.bind import bind_secret, binding_tags
from shared.errors import IdentityNotAllowed, InvalidRequest
from shared.pipeline import Invocation
from shared.settings import Settings
from tests.conftest import CANARY_TOKEN, SCIM_URL, SP_ID, request_body


async def test_bind_tags_the_current_version_and_keeps_its_other_tags(pipeline, app_env):
    app_env.keyvault.set_secret("scim-token", CANARY_TOKEN, tags={"CredentialId": "scim-1", "owner": "team-a"})
    before = await pipeline.run(request_body(), Invocation(trigger="cli"))
    assert before.error_code == "secretNotBound"
    result = await bind_secret(
        "scim-token", [SP_ID.upper()], [SCIM_URL], settings=Settings.from_env(), credential=pipeline.credential
    )
    assert result["tags"] == {
        "CredentialId": "scim-1",
        "owner": "team-a",
        "provisioning-targets": SP_ID,
        "provisioning-endpoints": SCIM_URL,
    }
    [(name, version, tags)] = app_env.keyvault.updates
    assert tags == result["tags"]
    assert (name, version) == ("scim-token", app_env.keyvault.secrets["scim-token"][-1].version)
    assert CANARY_TOKEN not in str(result)
    pipeline.resolver._cache.clear()  # a new worker: the tags are read from the version again
    assert (await pipeline.run(request_body(), Invocation(trigger="cli"))).outcome == "succeeded"


async def test_bind_is_refused_where_the_operator_may_not_write_the_secret(pipeline, app_env):
    app_env.keyvault.writers = {str(uuid.uuid4())}
    with pytest.raises(IdentityNotAllowed) as refused:
        await bind_secret("scim-token", [SP_ID], [], settings=Settings.from_env(), credential=pipeline.credential)
    assert "Key Vault Secrets Officer" in refused.value.message
    assert app_env.keyvault.updates == []


@pytest.mark.parametrize(
    ("targets", "endpoints", "said"),
    [
        ([], [SCIM_URL], "--target"),
        (["not-a-guid"], [], "not a list of object ids"),
        ([SP_ID], ["http://scim.example.com"], "--endpoint"),
        ([SP_ID], ["https://user@scim.example.com"], "--endpoint"),
        ([str(uuid.uuid4()) for _ in range(7)], [], "at most 256"),
    ],
)
def test_bad_tags_are_refused_before_anything_is_written(targets, endpoints, said):
    with pytest.raises(InvalidRequest) as invalid:
        binding_tags(targets, endpoints)
    assert said in invalid.value.message


def test_six_targets_fit_in_one_tag():
    tags = binding_tags([str(uuid.uuid4()) for _ in range(6)], [])
    assert len(tags["provisioning-targets"]) <= 256


def test_the_bind_command_tags_the_current_version_and_the_app_then_accepts_it(app_env):
    from tests.test_cli import acquire, cli

    app_env.keyvault.set_secret("scim-token", CANARY_TOKEN, tags={"owner": "team-a"})
    refused = acquire(f"BaseAddress={SCIM_URL}", "SecretToken=@scim-token")
    assert refused.returncode == 3
    assert "secretNotBound" in refused.stdout
    bound = cli("bind", "--secret", "scim-token", "--target", SP_ID, "--endpoint", SCIM_URL)
    assert bound.returncode == 0, bound.stderr
    assert json.loads(bound.stdout)["tags"] == {
        "owner": "team-a",
        "provisioning-targets": SP_ID,
        "provisioning-endpoints": SCIM_URL,
    }
    assert CANARY_TOKEN not in bound.stdout + bound.stderr
    assert acquire(f"BaseAddress={SCIM_URL}", "SecretToken=@scim-token").returncode == 0


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--secret", "scim-token", "--target", "nope"], 2),
        (["--secret", "no-such-secret", "--target", SP_ID], 3),
        (["--secret", "https://other-kv.vault.azure.net/secrets/x", "--target", SP_ID], 3),
    ],
)
def test_the_bind_command_exits_as_acquire_does(app_env, args, code):
    from tests.test_cli import cli

    result = cli("bind", *args)
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("error: ")
    assert app_env.keyvault.updates == []
