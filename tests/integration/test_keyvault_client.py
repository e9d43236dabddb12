"""How the Key Vault client treats the environment: proxies are honoured, a .netrc file is never read."""

import json

from shared.pipeline import Invocation
from shared.references import SecretResolver, proxy_configured
from tests.conftest import request_body


async def test_a_netrc_file_never_lends_its_credentials_to_key_vault_calls(pipeline, app_env, monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-canary-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    outcome = await pipeline.run(json.dumps(request_body(dryRun=True)).encode(), Invocation(trigger="http"))
    assert outcome.outcome == "validated", outcome.to_dict()
    sent = [seen.headers.get("authorization", "") for seen in app_env.keyvault.seen]
    assert sent, "Key Vault was called"
    assert not [value for value in sent if value.lower().startswith("basic")]


def test_the_environment_is_trusted_only_when_it_names_a_proxy(monkeypatch):
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert not proxy_configured()
    assert SecretResolver(object(), cache_seconds=0)._client_options["use_env_settings"] is False  # type: ignore[arg-type]
    monkeypatch.setenv("https_proxy", "http://proxy.example.com:3128")
    assert proxy_configured()
    assert SecretResolver(object(), cache_seconds=0)._client_options["use_env_settings"] is True  # type: ignore[arg-type]
