import pytest

from shared.settings import Settings, SettingsError


def test_defaults_follow_the_contract():
    settings = Settings.from_env({})
    assert (settings.graph_endpoint, settings.graph_api_version) == ("https://graph.microsoft.com", "v1.0")
    assert settings.graph_scope == "https://graph.microsoft.com/.default"
    assert settings.secret_cache_seconds == 300
    assert settings.allow_inline_secrets is False
    assert settings.allowed_targets is None
    assert settings.graph_timeout_seconds == 30
    assert settings.graph_max_attempts == 4
    assert settings.request_queue_name == "acquire-access-token"
    assert settings.key_vault_dns_suffix == "vault.azure.net"
    assert settings.key_vault_allowed_hosts == frozenset()
    assert settings.secret_binding == "required"


def test_secret_binding_is_required_or_off_and_health_warns_when_off():
    from shared.health import health

    assert Settings.from_env({"SECRET_BINDING": "OFF"}).secret_binding == "off"
    env = {"SECRET_BINDING": "off", "REQUEST_QUEUE_NAME": "q-1", "SWEEP_SCHEDULE": "0 0 6 * * *"}
    env["CONNECTION_QUEUE_NAME"] = "connection-work"  # the connection-work queue trigger resolves it too
    status, report = health(env, detail=True)
    assert status == 200
    assert any(w.startswith("SECRET_BINDING is off:") for w in report["warnings"])
    assert not any(
        w.startswith("SECRET_BINDING") for w in health({**env, "SECRET_BINDING": ""}, detail=True)[1]["warnings"]
    )


def test_national_clouds_change_the_graph_root_and_the_scope_follows():
    settings = Settings.from_env(
        {"GRAPH_ENDPOINT": "https://microsoftgraph.chinacloudapi.cn/", "GRAPH_API_VERSION": "beta"}
    )
    assert (settings.graph_endpoint, settings.graph_api_version) == ("https://microsoftgraph.chinacloudapi.cn", "beta")
    assert settings.graph_scope == "https://microsoftgraph.chinacloudapi.cn/.default"


def test_allowed_hosts_default_to_the_host_of_key_vault_uri():
    settings = Settings.from_env({"KEY_VAULT_URI": "https://Contoso-KV.vault.azure.net/"})
    assert settings.key_vault_uri == "https://contoso-kv.vault.azure.net"
    assert settings.key_vault_allowed_hosts == {"contoso-kv.vault.azure.net"}


def test_lists_are_comma_separated():
    settings = Settings.from_env(
        {
            "KEY_VAULT_ALLOWED_HOSTS": "a.vault.azure.net, B.vault.azure.net:443",
            "ALLOWED_TARGETS": "0B9E8B8A-8F7E-4F6C-9D0A-3D3C6F6F1A11,",
            "ALLOW_INLINE_SECRETS": "TRUE",
        }
    )
    assert settings.key_vault_allowed_hosts == {"a.vault.azure.net", "b.vault.azure.net:443"}
    assert settings.allowed_targets == {"0b9e8b8a-8f7e-4f6c-9d0a-3d3c6f6f1a11"}
    assert settings.allow_inline_secrets is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GRAPH_ENDPOINT", "http://graph.microsoft.com"),
        ("GRAPH_ENDPOINT", "https://graph.microsoft.com/v1.0"),
        ("GRAPH_API_VERSION", "v2"),
        ("GRAPH_SCOPE", "https://graph.microsoft.com"),
        ("AZURE_CLIENT_ID", "my-identity"),
        ("KEY_VAULT_URI", "contoso-kv"),
        ("KEY_VAULT_ALLOWED_HOSTS", "https://contoso-kv.vault.azure.net"),
        ("KEY_VAULT_DNS_SUFFIX", "localhost"),
        ("SECRET_CACHE_SECONDS", "five"),
        ("SECRET_CACHE_SECONDS", "-1"),
        ("ALLOW_INLINE_SECRETS", "maybe"),
        ("ALLOWED_TARGETS", "sp-1"),
        ("GRAPH_TIMEOUT_SECONDS", "0"),
        ("GRAPH_MAX_ATTEMPTS", "2.5"),
        ("GRAPH_MAX_ATTEMPTS", "0"),
        ("REQUEST_QUEUE_NAME", "Bad_Queue"),
        ("SECRET_BINDING", "optional"),
    ],
)
def test_a_setting_that_cannot_be_parsed_fails_loudly_naming_it(name, value):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert caught.value.setting == name
    assert str(caught.value).startswith(f"app setting {name}: ")


def test_the_connection_string_is_kept_out_of_repr():
    settings = Settings.from_env({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=abc"})
    assert "InstrumentationKey" not in repr(settings)


def test_the_setting_names_are_the_settings_fields_in_their_order():
    from dataclasses import fields

    from shared.settings import SETTING_NAMES

    assert tuple(f.name.upper() for f in fields(Settings)) == SETTING_NAMES
